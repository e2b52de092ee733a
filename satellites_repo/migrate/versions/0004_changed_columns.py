"""The columns each captured UPDATE changed: the outbox's ``changed`` column, and the capture
function that fills it (so a backend holding none of them is not sent the change).

Revision ID: 0004_changed_columns
Revises: 0003_change_capture
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from satellites_repo.outbox.capture import function_statements

revision: str = "0004_changed_columns"
down_revision: str | Sequence[str] | None = "0003_change_capture"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "satellites_outbox", sa.Column("changed", postgresql.ARRAY(sa.Text()), nullable=True)
    )
    for statement in function_statements():
        op.execute(statement)


def downgrade() -> None:
    op.drop_column("satellites_outbox", "changed")
