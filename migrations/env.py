"""Alembic environment: the library's tables and the example knowledge base.

All the work (async engine from SATELLITES_* variables, advisory lock, Vector rendering)
is in ``satellites_repo.migrate``; an application's env.py looks the same with its own
models imported instead of the example's.
"""

from __future__ import annotations

import satellites_repo.demo.models  # noqa: F401 - registers the example's tables
from satellites_repo.migrate import run_alembic_env

run_alembic_env()
