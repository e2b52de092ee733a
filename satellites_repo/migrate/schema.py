"""The Postgres schema an application works in, created when it is missing.

``SATELLITES_POSTGRES__SCHEMA_NAME`` puts the layer in a schema of its own (its
``search_path``). A fresh environment may not have that schema yet; both ways of making
tables (migrations and ``create_tables``) create it first, so the first table does not fail
with Postgres' "no schema has been selected to create in".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import ConfigurationError
from satellites_repo.migrate.capture import capture_ddl
from satellites_repo.migrate.related import related_capture_ddl
from satellites_repo.migrate.tenancy import enable_tenant_policies
from satellites_repo.orm.base import Base
from satellites_repo.postgres import open_engine

__all__ = ["create_missing_schema", "create_tables"]


def create_missing_schema(connection: Connection, schema: str | None) -> None:
    """``CREATE SCHEMA`` when ``schema`` is set and does not exist yet.

    Looked up first rather than ``CREATE SCHEMA IF NOT EXISTS``, which needs the CREATE
    privilege on the database even when the schema is there: a role that may only use an
    existing schema still migrates.
    """
    if not schema:
        return
    exists = connection.scalar(
        text("SELECT count(*) > 0 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
    )
    if exists:
        return
    quoted = connection.dialect.identifier_preparer.quote_schema(schema)
    try:
        connection.execute(text(f"CREATE SCHEMA {quoted}"))
    except DBAPIError as exc:
        raise ConfigurationError(
            f"Postgres schema {schema!r} (SATELLITES_POSTGRES__SCHEMA_NAME) does not exist "
            f"and could not be created: {exc.orig}"
        ) from exc


async def create_tables(
    config: DataLayerConfig,
    metadata: MetaData | None = None,
    *,
    repositories: Sequence[type[Any]] = (),
) -> None:
    """Create every table of ``metadata`` (default ``Base.metadata``) that does not exist.

    Installs the change capture on every ``Versioned`` table too (``capture_ddl``), and
    the row-level security policy of every tenant-scoped one (``enable_tenant_policy``),
    and the capture of the tables the ``repositories``' search documents embed
    (``related=``; see ``install_related_capture``).
    For tests, demos and quick starts, before ``DataLayer.start()`` (which needs the
    library's outbox table and the capture). Production schemas belong to migrations
    (``satellites db``), whose revisions call ``install_capture``.
    """
    target = metadata or Base.metadata
    engine = await open_engine(config.postgres.replace(min_connections=0, max_connections=1))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(create_missing_schema, config.postgres.schema_name)
            await connection.run_sync(target.create_all)
            for statement in [*capture_ddl(target), *related_capture_ddl(repositories)]:
                await connection.execute(text(statement))
            await connection.run_sync(enable_tenant_policies, target)
    finally:
        await engine.dispose()
