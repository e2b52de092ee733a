"""The unit tests' declarative base: their tables live on a MetaData of their own, never in
``Base.metadata`` (which an application's migrations and ``create_tables`` use)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satellites_repo import (
    CachePolicy,
    Repository,
    SearchIndex,
    TenantScoped,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.model import Change, Operation
from satellites_repo.outbox.records import EVENTS_TARGET, OutboxRecord


class UnitModel(DeclarativeBase):
    metadata = MetaData()


class Note(UnitModel, Versioned):
    """A projected model for unit tests of delivery and the read path."""

    __tablename__ = "unit_notes"
    id: Mapped[str] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    title: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(3), nullable=True)


class Notes(Repository[Note]):
    cache = CachePolicy()
    search = SearchIndex("notes", fields={"title": "text", "tenant_id": "keyword"})
    vectors = VectorField("embedding", namespace="notes", metadata=("tenant_id",))


class Memo(UnitModel, Versioned, TenantScoped):
    """A cached tenant-scoped model (its cache keys name the tenant)."""

    __tablename__ = "unit_memos"
    id: Mapped[str] = mapped_column(primary_key=True)


class Memos(Repository[Memo]):
    cache = CachePolicy()


def note_change(key: str, version: int = 1, operation: Operation = Operation.CREATED) -> Change:
    """A complete change of one note, as the fast path has it."""
    payload = {"id": key, "tenant_id": "acme", "title": f"note {key}", "embedding": [1.0, 0, 0]}
    return Change("unit_notes", key, operation, version, payload, frozenset({"embedding"}))


def outbox_record(seq: int, change: Change, *pending: str) -> OutboxRecord:
    """An outbox row of ``change`` as the fast path holds it (with the whole change)."""
    return OutboxRecord(
        seq=seq,
        event_id=f"event-{seq}",
        txid=100,
        entity=change.table,
        key=change.key,
        operation=change.operation.value,
        version=change.version,
        payload=change.stored_payload,
        pending=(*pending, EVENTS_TARGET),
        attempts=1,
        whole=change,
    )
