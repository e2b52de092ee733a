"""The ChangeSet: what a transaction did to projected entities, computed from its flushes.

It is taken from SQLAlchemy's flush (new, dirty and deleted objects), not from repository
calls, so a plain attribute change on a loaded entity or a ``session.delete`` is projected
too. Several flushes in one transaction fold into one change per entity:

    created then updated  -> created (latest values)
    created then deleted  -> nothing (the row never existed outside the transaction)
    updated then deleted  -> deleted

A ``Change`` is plain data (JSON-safe payload), so it can be stored in the outbox and
replayed by another process.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satellites_repo.events import DataEvent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from satellites_repo.model.spec import Registry

__all__ = ["MAX_KEY_BYTES", "Change", "ChangeSet", "Operation", "RelatedValues", "check_key"]

MAX_KEY_BYTES = 512
"""The longest key (as UTF-8 text) every backend holds: Elasticsearch's ``_id`` limit."""


def check_key(entity: str, key: str) -> None:
    """Refuse a primary key some backend cannot hold (before COMMIT, naming it).

    Refused rather than mapped (say, hashed): the key stays the same text in Postgres,
    Redis, Elasticsearch, FAISS and events, so every projection is found by it.
    """
    if not key:
        raise ValueError(f"{entity}: an empty primary key cannot be projected")
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise ValueError(
            f"{entity}: primary key {key[:40]!r}... is {size} bytes; projected keys are "
            f"at most {MAX_KEY_BYTES} bytes (Elasticsearch's _id limit)"
        )


class Operation(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    REPAIRED = "repaired"
    """Not something a transaction did: ``verify --repair`` re-applying a row as Postgres
    holds it now. Projections take it even over an entry at the same version (whose
    content drifted), never over a newer one; it announces no event."""


@dataclass(frozen=True, slots=True)
class RelatedValues:
    """A document's related fields as read from Postgres, and the version to write it at.

    ``version`` was taken from the database sequence before the rows were read (see
    ``model.related``). ``refused``: why the document cannot be built (a one-to-many
    relationship over its ``max_fanout``), else ``None``.
    """

    version: int
    fields: Mapping[str, Any]
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One entity's net change in a committed transaction.

    ``version`` orders changes of one entity. For a captured table it is the database's
    (the capture trigger's sequence; a delete takes a fresh one, so it wins over every
    earlier write in every projection); a flushed delete carries the last version plus
    one until the captured row's version replaces it. It is 0 for a model that is
    not ``Versioned`` (its events then carry ``version=None``). ``payload`` is the row as
    JSON-safe data (for a delete, the row as it was last seen). ``hidden`` names columns
    (vectors) kept out of what is stored in the outbox and published in events: they are
    bulky, and Postgres has them. ``related``: the related fields of the row's search
    document, read when it is delivered (``None``: not read, or none declared).
    ``changed``: for an update, the columns whose value it changed, as the capture trigger
    compared them (``None``: not known, so every column counts as changed); a backend whose
    projection holds none of them is not sent it.
    """

    table: str
    key: str
    operation: Operation
    version: int
    payload: Mapping[str, Any]
    hidden: frozenset[str] = frozenset()
    related: RelatedValues | None = None
    changed: frozenset[str] | None = None

    def affects(self, columns: frozenset[str] | None) -> bool:
        """Whether a projection made of ``columns`` (``None``: the whole row) must see this.

        Only an update with known changed columns, none of them among ``columns``, leaves
        such a projection as it was: a create or a delete always reaches it.
        """
        if self.operation is not Operation.UPDATED or self.changed is None or columns is None:
            return True
        return not self.changed.isdisjoint(columns)

    @property
    def stored_payload(self) -> dict[str, Any]:
        """The payload without the hidden columns: what the outbox and events carry."""
        return {name: value for name, value in self.payload.items() if name not in self.hidden}

    def event(self, event_id: str | None = None) -> DataEvent:
        """The automatic DataEvent for this change."""
        event = DataEvent(
            type=f"{self.table}.{self.operation.value}",
            resource=self.table,
            key=self.key,
            payload=self.stored_payload,
            source="postgres",
            version=self.version or None,
        )
        return event if event_id is None else dataclasses.replace(event, id=event_id)


class ChangeSet:
    """The folded changes of one unit of work, in the order entities were first touched."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._changes: dict[tuple[str, str], Change] = {}

    def __iter__(self) -> Iterator[Change]:
        return iter(self._changes.values())

    def __len__(self) -> int:
        return len(self._changes)

    def __bool__(self) -> bool:
        return bool(self._changes)

    def touches(self, table: str, key: str) -> bool:
        """Whether this transaction has flushed a change to that row (uncommitted state)."""
        return (table, key) in self._changes

    def clear(self) -> None:
        self._changes.clear()

    def record_flush(self, session: Session) -> None:
        """Fold in what the flush that just ran did; called from ``after_flush``."""
        for entity in session.new:
            self._record(entity, Operation.CREATED)
        for entity in session.dirty:
            if session.is_modified(entity, include_collections=False):
                self._record(entity, Operation.UPDATED)
        for entity in session.deleted:
            self._record(entity, Operation.DELETED)

    def _record(self, entity: object, operation: Operation) -> None:
        spec = self._registry.spec_for(type(entity))
        if spec is None:
            return
        codec = spec.codec
        key = str(codec.key_of(entity))
        if spec.projected:
            check_key(type(entity).__name__, key)
        version = int(getattr(entity, "version", 0) or 0)
        if operation is Operation.DELETED:
            version += 1
        change = Change(codec.table, key, operation, version, codec.payload(entity), spec.hidden)
        self._fold(change)

    def _fold(self, change: Change) -> None:
        slot = (change.table, change.key)
        earlier = self._changes.get(slot)
        if earlier is not None and earlier.operation is Operation.CREATED:
            if change.operation is Operation.DELETED:
                del self._changes[slot]
                return
            change = dataclasses.replace(change, operation=Operation.CREATED)
        self._changes[slot] = change
