"""The knowledge base's articles are captured: every write on them reaches the projections,
whatever issued it; their ``version`` becomes the bigint the capture assigns.

Revision ID: 0003_knowledge_base_capture
Revises: 0002_knowledge_base
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from satellites_repo.migrate import install_capture, remove_capture

revision: str = "0003_knowledge_base_capture"
down_revision: str | Sequence[str] | None = "0002_knowledge_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0004_changed_columns"


def upgrade() -> None:
    op.alter_column("kb_articles", "version", type_=sa.BigInteger(), existing_nullable=False)
    install_capture("kb_articles", key="id", hidden=["embedding"])


def downgrade() -> None:
    remove_capture("kb_articles")
    op.alter_column("kb_articles", "version", type_=sa.Integer(), existing_nullable=False)
