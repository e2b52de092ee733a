"""Outbox rows as values: what was committed, what is still owed to which target."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from satellites_repo.events import DataEvent
from satellites_repo.model.change import Change, Operation
from satellites_repo.observe import OutboxStamp

__all__ = [
    "EVENTS_TARGET",
    "REPAIR_EVENT_PREFIX",
    "OutboxRecord",
    "event_row_payload",
    "stored_event",
]

EVENTS_TARGET = "events"
"""The pseudo-target for publishing a row's DataEvent on the bus."""

REPAIR_EVENT_PREFIX = "repair:"
"""How the ``event_id`` of a row owed by a repair starts: it re-applies a change to the
projections and announces nothing, so durable subscribers skip it."""

EVENT_OPERATION = "event"
"""``operation`` of a row that carries a custom event given to ``uow.emit``."""


def event_row_payload(event: DataEvent) -> dict[str, Any]:
    """A custom event as stored in the outbox, enough to publish it again unchanged."""
    return {
        "type": event.type,
        "resource": event.resource,
        "key": event.key,
        "payload": dict(event.payload),
        "source": event.source,
        "timestamp": event.timestamp.isoformat(),
        "version": event.version,
    }


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One outbox row. ``pending`` names the shared targets not yet applied."""

    seq: int
    event_id: str
    txid: int
    entity: str
    key: str
    operation: str
    version: int
    payload: Mapping[str, Any]
    pending: tuple[str, ...] = ()
    attempts: int = 0
    changed: frozenset[str] | None = None
    """The columns a captured update changed (``None``: not known); see ``Change.changed``."""
    whole: Change | None = None
    """The change with every column, when this process made the commit (the fast path)."""
    stamp: OutboxStamp | None = None
    """The commit's trace context and write time (``None`` without OpenTelemetry)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxRecord:
        return cls(
            seq=row["seq"],
            event_id=str(row["event_id"]),
            txid=row["txid"],
            entity=row["entity"],
            key=row["key"],
            operation=row["operation"],
            version=row["version"],
            payload=row["payload"],
            pending=tuple(row.get("pending") or ()),
            attempts=row.get("attempts") or 0,
            changed=None if row.get("changed") is None else frozenset(row["changed"]),
            stamp=row.get("stamp"),
        )

    @property
    def change(self) -> Change | None:
        """The entity change this row records; ``None`` for a custom event.

        Read back from the table, its payload lacks the hidden (vector) columns; the
        ``Rehydrator`` completes it from Postgres for the projections that need them.
        """
        if self.operation == EVENT_OPERATION:
            return None
        if self.whole is not None:
            return self.whole
        operation = Operation(self.operation)
        return Change(
            self.entity, self.key, operation, self.version, self.payload, changed=self.changed
        )

    def event(self) -> DataEvent:
        """The row's DataEvent, with the row's stable id so consumers can de-duplicate."""
        change = self.change
        if change is not None:
            return change.event(self.event_id)
        return stored_event(self.payload, self.event_id)


def stored_event(stored: Mapping[str, Any], event_id: str) -> DataEvent:
    """The event ``event_row_payload`` stored, with its id."""
    return DataEvent(
        type=stored["type"],
        resource=stored["resource"],
        key=stored["key"],
        payload=stored["payload"],
        source=stored["source"],
        timestamp=dt.datetime.fromisoformat(stored["timestamp"]),
        version=stored["version"],
        id=event_id,
    )
