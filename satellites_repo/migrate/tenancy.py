"""Row-level security on tenant-scoped tables: Postgres' own wall behind the repository's.

Each table with a ``TenantScoped`` column gets one policy, ``satellites_tenant``: a row is
visible and writable only when its ``tenant_id`` equals the transaction's
``satellites.tenant`` setting, or when that setting is the bypass ``'*'``. The policy is
FORCEd, so it holds the table owner too (most applications connect as the owner).

Who sets what: every connection the library opens starts with ``satellites.tenant = '*'``
(a connection parameter): the relay, reindex, verify and rehydration are unscoped by
design. A unit of work opened for a tenant issues ``SET LOCAL satellites.tenant`` at the
start of each transaction, so raw SQL on its session sees only that tenant's rows; one
without a tenant sets it empty (no tenant's rows). Another client (psql, a reporting job)
that does not set it sees no row of these tables. Superusers bypass row-level security.

In a migration revision::

    from satellites_repo.migrate import enable_tenant_policy

    def upgrade() -> None:
        op.create_table("tickets", ...)
        enable_tenant_policy(op.get_bind(), "tickets")
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import Connection

from satellites_repo.model import BYPASS, TENANT_COLUMN, TENANT_SETTING
from satellites_repo.orm.base import TENANT_INFO

__all__ = [
    "POLICY",
    "disable_tenant_policy",
    "enable_tenant_policies",
    "enable_tenant_policy",
    "tenant_tables",
]

POLICY = "satellites_tenant"
"""The name of the row-level security policy on every tenant-scoped table."""

_CURRENT = f"current_setting('{TENANT_SETTING}', true)"
_ALLOWED = f"({TENANT_COLUMN} = {_CURRENT} OR {_CURRENT} = '{BYPASS}')"


def tenant_tables(metadata: MetaData) -> list[Table]:
    """The tables of ``metadata`` that have a ``TenantScoped`` column."""
    return [
        table
        for table in metadata.sorted_tables
        if any(column.info.get(TENANT_INFO) for column in table.columns)
    ]


def enable_tenant_policy(connection: Connection, table: str) -> None:
    """Turn on (and FORCE) row-level security on ``table`` with the tenant policy.

    Idempotent: an existing policy of that name is replaced, so a revision may run it again.
    """
    name = _quoted(connection, table)
    for statement in (
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON {name}",
        f"CREATE POLICY {POLICY} ON {name} USING {_ALLOWED} WITH CHECK {_ALLOWED}",
    ):
        connection.execute(text(statement))


def disable_tenant_policy(connection: Connection, table: str) -> None:
    """The downgrade of ``enable_tenant_policy``."""
    name = _quoted(connection, table)
    connection.execute(text(f"DROP POLICY IF EXISTS {POLICY} ON {name}"))
    connection.execute(text(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"))
    connection.execute(text(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"))


def enable_tenant_policies(connection: Connection, metadata: MetaData) -> None:
    """``enable_tenant_policy`` on every tenant-scoped table of ``metadata``."""
    for table in tenant_tables(metadata):
        enable_tenant_policy(connection, table.name)


def _quoted(connection: Connection, table: str) -> str:
    return str(connection.dialect.identifier_preparer.quote(table))
