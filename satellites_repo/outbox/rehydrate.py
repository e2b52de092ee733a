"""Completing changes read back from the outbox with the columns it does not store.

Outbox rows leave out the hidden (vector) columns, which would multiply their size. A
replay (the relay, a follower) that needs them reads the rows' current state from
Postgres in one SELECT per table. Current state is at least as new as the change, and
the projections' version guards make applying it correct; a row that no longer exists
is skipped, since its delete is in the outbox too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from satellites_repo.orm.changeset import Change, Operation

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.orm.registry import EntitySpec, Registry

__all__ = ["Rehydrator", "current_changes", "row_change", "row_columns"]


def row_columns(spec: EntitySpec) -> list[Any]:
    """Every mapped column, labelled with its attribute name, for ``row_change``."""
    return [getattr(spec.model, name).label(name) for name in spec.codec.columns]


def row_change(spec: EntitySpec, row: Mapping[Any, Any], operation: Operation) -> Change:
    """A selected row (``row_columns``, as a mapping) as a change with every column."""
    codec = spec.codec
    values: dict[str, Any] = dict(row)
    key = str(values[codec.primary_key])
    version = int(values.get("version") or 0)
    payload = codec.payload_of_values(values)
    return Change(spec.table, key, operation, version, payload, spec.hidden)


async def current_changes(
    engine: AsyncEngine, spec: EntitySpec, keys: Sequence[str], operation: Operation
) -> dict[str, Change]:
    """The current rows for ``keys`` as changes with every column, by key."""
    if not keys:
        return {}
    codec = spec.codec
    key_column = getattr(spec.model, codec.primary_key)
    typed = [codec.parse_key(key) for key in keys]
    statement = select(*row_columns(spec)).where(key_column.in_(typed))
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    changes = (row_change(spec, row._mapping, operation) for row in rows)
    return {change.key: change for change in changes}


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
