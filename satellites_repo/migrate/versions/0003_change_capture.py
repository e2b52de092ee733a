"""Change capture, the library's part: the version sequence, the trigger functions and the
outbox's lease column. Each application revision then captures its own tables with
``satellites_repo.migrate.install_capture`` (after this one: ``depends_on``).

Revision ID: 0003_change_capture
Revises: 0002_event_subscriptions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from satellites_repo.outbox.capture import function_statements

revision = "0003_change_capture"
down_revision = "0002_event_subscriptions"


def upgrade() -> None:
    op.add_column(
        "satellites_outbox", sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True)
    )
    for statement in function_statements():
        op.execute(statement)


def downgrade() -> None:
    op.drop_column("satellites_outbox", "leased_until")
