"""Durable event subscriptions: subscribers and their deliveries (the publication registry).

In the library's branch (``satellites``), after its outbox tables.

Revision ID: 0002_event_subscriptions
Revises: 0001_satellites
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_event_subscriptions"
down_revision = "0001_satellites"

OWED = "done_at IS NULL AND dead_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "satellites_subscriptions",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_satellites_subscriptions")),
    )
    op.create_table(
        "satellites_deliveries",
        sa.Column("subscriber", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
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
        sa.PrimaryKeyConstraint("subscriber", "seq", name=op.f("pk_satellites_deliveries")),
    )
    op.create_index(
        "ix_satellites_deliveries_due",
        "satellites_deliveries",
        ["subscriber", "next_attempt_at"],
        postgresql_where=sa.text(OWED),
    )
    op.create_index(
        "ix_satellites_deliveries_key",
        "satellites_deliveries",
        ["subscriber", "entity", "key", "seq"],
        postgresql_where=sa.text(OWED),
    )


def downgrade() -> None:
    op.drop_table("satellites_deliveries")
    op.drop_table("satellites_subscriptions")
