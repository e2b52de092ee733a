"""The library's own tables: the outbox, a small key/value of watermarks, and durable
event subscriptions with their deliveries.

Both live in ``Base.metadata``, so an application's Alembic autogenerate that targets
``Base.metadata`` includes them; the library's migration creates them.

An outbox row is written in the same transaction as the change it describes. ``seq``
orders rows; ``txid`` (the writing transaction's id) lets a follower read every committed
row exactly once in order of completion: rows of transactions older than the snapshot's
xmin can no longer appear, so a follower's position is an xmin, not a ``seq``.
``leased_until``: a relay that claimed the row holds it until then; ``outbox retry``
leaves such rows alone. ``changed``: the columns a captured UPDATE changed (NULL: unknown).

A durable subscriber of the in-process bus is a row of ``satellites_subscriptions`` (its
pattern and its position in the outbox, an xmin as a follower's) and one row of
``satellites_deliveries`` per matching outbox row, until it is done: the event
publication registry. The outbox keeps a row while a subscriber still owes it, or has
not read it yet.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection

from satellites_repo.orm.base import Base

__all__ = [
    "NOTIFY_PAYLOAD",
    "OUTBOX_CHANNEL",
    "VERSION_SEQUENCE",
    "delivery_table",
    "meta_table",
    "outbox_table",
    "subscription_table",
]

OUTBOX_CHANNEL = "satellites_outbox"
"""The NOTIFY channel a commit with outbox rows signals, waking followers at once."""

NOTIFY_PAYLOAD = "pg_current_xact_id()::text"
"""What the NOTIFY says: the committing transaction's id, so the committing process's own
follower, whose fast path applies that transaction itself, need not wake for it."""

VERSION_SEQUENCE = "satellites_version"
"""The one sequence every captured row's ``version`` comes from (see ``outbox.capture``)."""

CURRENT_TXID = text("(pg_current_xact_id()::text)::bigint")

outbox_table = Table(
    "satellites_outbox",
    Base.metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("txid", BigInteger, nullable=False, server_default=CURRENT_TXID),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("entity", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("pending", ARRAY(Text), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("leased_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("dead_at", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    Column("changed", ARRAY(Text)),
    Index(
        "ix_satellites_outbox_due",
        "next_attempt_at",
        postgresql_where=text("cardinality(pending) > 0 AND dead_at IS NULL"),
    ),
    Index("ix_satellites_outbox_txid_seq", "txid", "seq"),
    Index("ix_satellites_outbox_done_at", "done_at"),
)


@event.listens_for(outbox_table, "after_create")
def _compress_payloads(target: Table, connection: Connection, **_: Any) -> None:
    """Payloads carry whole rows (vectors included): lz4 compresses them several times
    faster than Postgres's default pglz. The library's migration sets the same."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(f"ALTER TABLE {target.name} ALTER COLUMN payload SET COMPRESSION lz4")
        )


meta_table = Table(
    "satellites_meta",
    Base.metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

subscription_table = Table(
    "satellites_subscriptions",
    Base.metadata,
    Column("name", Text, primary_key=True),
    Column("pattern", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

OWED = "done_at IS NULL AND dead_at IS NULL"

delivery_table = Table(
    "satellites_deliveries",
    Base.metadata,
    Column("subscriber", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("txid", BigInteger, nullable=False),
    Column("entity", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("dead_at", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("subscriber", "seq"),
    Index(
        "ix_satellites_deliveries_due",
        "subscriber",
        "next_attempt_at",
        postgresql_where=text(OWED),
    ),
    Index(
        "ix_satellites_deliveries_key",
        "subscriber",
        "entity",
        "key",
        "seq",
        postgresql_where=text(OWED),
    ),
)
