"""The library's own tables: the transactional outbox and its watermarks.

The root of the library's branch (``satellites``), applied beside an application's own
revisions by ``satellites db upgrade`` (heads). Later library revisions follow it here.

Revision ID: 0001_satellites
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_satellites"
down_revision = None
branch_labels = ("satellites",)

DUE = "cardinality(pending) > 0 AND dead_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "satellites_meta",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_satellites_meta")),
    )
    op.create_table(
        "satellites_outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column(
            "txid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("pending", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_satellites_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_satellites_outbox_event_id")),
    )
    op.execute("ALTER TABLE satellites_outbox ALTER COLUMN payload SET COMPRESSION lz4")
    op.create_index("ix_satellites_outbox_done_at", "satellites_outbox", ["done_at"])
    op.create_index(
        "ix_satellites_outbox_due",
        "satellites_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text(DUE),
    )
    op.create_index("ix_satellites_outbox_txid_seq", "satellites_outbox", ["txid", "seq"])


def downgrade() -> None:
    op.drop_table("satellites_outbox")
    op.drop_table("satellites_meta")
