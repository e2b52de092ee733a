"""Alembic environment: this application's models and the satellites library's tables.

Written by ``satellites init``. The work (an async engine from the SATELLITES_* variables,
an advisory lock, a missing schema created, ``Vector`` columns rendered) is in
``satellites_repo.migrate``; import every module that declares models here.
"""

from __future__ import annotations

import satellites_repo.demo.models  # noqa: F401 - registers its models
from satellites_repo.migrate import run_alembic_env

run_alembic_env()  # Base.metadata: the models imported above and the library's tables
