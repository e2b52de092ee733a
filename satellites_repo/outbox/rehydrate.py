"""Completing changes read back from the outbox with the columns it does not store.

Outbox rows leave out the hidden (vector) columns, which would multiply their size. A
replay (the relay, a follower) that needs them reads the rows' current state from
Postgres in one SELECT per table. Current state is at least as new as the change, and
the projections' version guards make applying it correct; a row that no longer exists
is skipped, since its delete is in the outbox too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from satellites_repo.model import Change, Operation
from satellites_repo.model.rows import current_changes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.model import Registry

__all__ = ["Rehydrator"]


class Rehydrator:
    """Fills in hidden columns of replayed changes from Postgres."""

    def __init__(self, engine: AsyncEngine, registry: Registry) -> None:
        self._engine = engine
        self._registry = registry

    async def complete(self, changes: Sequence[Change]) -> list[Change]:
        """``changes`` with every column; replayed changes whose row is gone are dropped."""
        wanted: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            if self._incomplete(change):
                wanted[change.table].append(change)
        if not wanted:
            return list(changes)
        current: dict[tuple[str, str], Change] = {}
        for table, group in wanted.items():
            spec = self._registry.spec_of_table(table)
            assert spec is not None
            found = await current_changes(
                self._engine, spec, [change.key for change in group], Operation.UPDATED
            )
            current.update(((table, key), change) for key, change in found.items())
        completed = []
        for change in changes:
            if not self._incomplete(change):
                completed.append(change)
            elif (now := current.get((change.table, change.key))) is not None:
                completed.append(
                    Change(
                        now.table, now.key, change.operation, now.version, now.payload, now.hidden
                    )
                )
        return completed

    def _incomplete(self, change: Change) -> bool:
        if change.operation is Operation.DELETED:
            return False
        spec = self._registry.spec_of_table(change.table)
        return spec is not None and not spec.hidden <= change.payload.keys()
