"""Change capture: the database records every write on projected tables in the outbox.

The library's part (the version sequence, the trigger functions, the outbox's lease
column) and the example application's part (``kb_articles`` is captured; its ``version``
becomes a bigint the capture assigns).

Revision ID: 0003_capture
Revises: 0002_knowledge_base
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from satellites_repo.migrate import install_capture, remove_capture

revision: str = "0003_capture"
down_revision: str | Sequence[str] | None = "0002_knowledge_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "satellites_outbox", sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.alter_column("kb_articles", "version", type_=sa.BigInteger(), existing_nullable=False)
    install_capture("kb_articles", key="id", hidden=["embedding"])


def downgrade() -> None:
    remove_capture("kb_articles")
    op.alter_column("kb_articles", "version", type_=sa.Integer(), existing_nullable=False)
    op.drop_column("satellites_outbox", "leased_until")
