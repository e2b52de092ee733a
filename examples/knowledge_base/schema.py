"""Bringing a database schema up to date for the knowledge base, in one place.

The demo, the web app and the tests call ``create_schema`` before they start a
``DataLayer`` (which refuses to start without the library's outbox table). It runs the
project's Alembic migrations (``alembic.ini`` at the top of the checkout): the library's
tables (revision 0001) and the knowledge base's (0002), exactly what
``satellites db upgrade`` does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from satellites_repo import DataLayerConfig

__all__ = ["ALEMBIC_INI", "create_schema"]

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


async def create_schema(config: DataLayerConfig) -> None:
    """Upgrade ``config``'s database (its ``schema_name``, if set) to the latest revision.

    Idempotent, and safe to run from several processes at once (the migration holds an
    advisory lock). Alembic's environment runs its own event loop, hence the thread.
    """
    alembic = Config(str(ALEMBIC_INI))
    alembic.attributes["satellites_config"] = config
    await asyncio.to_thread(command.upgrade, alembic, "head")
