"""What a replayed outbox row projects: the row's current state in Postgres.

A row read back from the outbox (by the relay, a follower, a rebuild's replay) is never
projected from its stored payload: that may be older than what the projections hold,
and, once tombstones are gone (Redis ``tombstone_ttl``, Elasticsearch
``index.gc_deletes``), applying it would bring a deleted row back. Instead the rows'
current state is read in one SELECT per table: a row that exists is projected as it is
now (at its current version), and a row that no longer exists becomes a delete, at a
version above any it had when the replayed change was made (its delete, and any later
re-creation, took newer versions from the database sequence). So a late delivery can
only ever move a projection to what Postgres holds, whatever the tombstone lifetimes.

Only the committing process's fast path projects its in-memory changes (``whole``): they
are the committed state, delivered within ``OutboxConfig.delivery_timeout``. A row whose
search document embeds related rows is always read back, after its document version is
taken, together with those related rows (``outbox.related``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from satellites_repo.model import Change, Operation
from satellites_repo.model.rows import current_changes
from satellites_repo.outbox.related import attach_related, document_version

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.model import Registry
    from satellites_repo.outbox.records import OutboxRecord

__all__ = ["Rehydrator", "as_current"]


class Rehydrator:
    """Turns outbox rows into the changes to project: their rows' current state."""

    def __init__(self, engine: AsyncEngine, registry: Registry) -> None:
        self._engine = engine
        self._registry = registry

    async def complete(self, records: Sequence[OutboxRecord]) -> list[Change]:
        """One change per entity row of ``records`` (custom events have none), current."""
        rows = [record for record in records if record.change is not None]
        related = any(self._related(record) for record in rows)
        version = await document_version(self._engine) if related else None
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in rows:
            if self._registry.spec_of_table(record.entity) and (
                record.whole is None or self._related(record)
            ):
                wanted[record.entity].add(record.key)
        current: dict[tuple[str, str], Change] = {}
        for table, keys in wanted.items():
            spec = self._registry.spec_of_table(table)
            assert spec is not None
            found = await current_changes(self._engine, spec, sorted(keys), Operation.UPDATED)
            current.update(((table, key), change) for key, change in found.items())
        changes = [self._projected(record, current) for record in rows]
        if version is None:
            return changes
        return await attach_related(self._engine, self._registry, changes, version)

    def _related(self, record: OutboxRecord) -> bool:
        spec = self._registry.spec_of_table(record.entity)
        return spec is not None and bool(spec.related)

    def _projected(self, record: OutboxRecord, current: dict[tuple[str, str], Change]) -> Change:
        change = record.change
        assert change is not None
        if self._registry.spec_of_table(record.entity) is None:
            return change
        if record.whole is not None and not self._related(record):
            return change
        return as_current(change, current.get((record.entity, record.key)))


def as_current(change: Change, now: Change | None) -> Change:
    """``change`` replaced by its row's current state ``now`` (``None``: the row is gone)."""
    if now is not None:
        operation = Operation.UPDATED if change.operation is Operation.DELETED else change.operation
        changed = change.changed  # later changes of the row are delivered on their own rows
        return Change(
            now.table, now.key, operation, now.version, now.payload, now.hidden, changed=changed
        )
    if change.operation is Operation.DELETED:
        return change
    return Change(
        change.table,
        change.key,
        Operation.DELETED,
        change.version + 1,
        change.payload,
        change.hidden,
    )
