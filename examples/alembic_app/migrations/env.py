"""Alembic environment of an application that uses satellites."""

from __future__ import annotations

import examples.alembic_app.models  # noqa: F401 - registers the application's models
from satellites_repo.migrate import run_alembic_env

run_alembic_env()  # Base.metadata: the application's models and the library's tables
