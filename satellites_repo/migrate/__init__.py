"""Migrations: the library's tables as an Alembic branch beside the application's own.

``satellites init`` writes an application's ``alembic.ini``, ``migrations/env.py`` and
template; ``satellites db`` (or ``await upgrade(...)`` from async code) runs them, on the
database of the ``SATELLITES_*`` variables. The library's revisions (branch ``satellites``)
ship in this package and are applied with the application's (``heads``). ``create_tables``
is the shortcut for tests and demos that need no history.
"""

from __future__ import annotations

from satellites_repo.migrate.capture import capture_ddl, install_capture, remove_capture
from satellites_repo.migrate.commands import (
    LIBRARY_BRANCH,
    LIBRARY_VERSIONS,
    LIBRARY_VERSIONS_KEY,
    alembic_config,
    new_revision,
    upgrade,
)
from satellites_repo.migrate.env import MIGRATION_LOCK, VERSION_TABLE, render_item, run_alembic_env
from satellites_repo.migrate.related import (
    RelatedCapture,
    install_related_capture,
    remove_related_capture,
)
from satellites_repo.migrate.schema import create_tables
from satellites_repo.migrate.tenancy import (
    disable_tenant_policy,
    enable_tenant_policies,
    enable_tenant_policy,
)

__all__ = [
    "LIBRARY_BRANCH",
    "LIBRARY_VERSIONS",
    "LIBRARY_VERSIONS_KEY",
    "MIGRATION_LOCK",
    "VERSION_TABLE",
    "RelatedCapture",
    "alembic_config",
    "capture_ddl",
    "create_tables",
    "disable_tenant_policy",
    "enable_tenant_policies",
    "enable_tenant_policy",
    "install_capture",
    "install_related_capture",
    "new_revision",
    "remove_capture",
    "remove_related_capture",
    "render_item",
    "run_alembic_env",
    "upgrade",
]
