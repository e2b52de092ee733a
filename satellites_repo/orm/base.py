"""The declarative base and the version column every projected entity carries.

Constraint names follow one convention so that Alembic migrations stay stable across
machines (no server-generated names to chase).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, FetchedValue, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

__all__ = [
    "CAPTURED",
    "NAMING_CONVENTION",
    "TENANT_INFO",
    "Base",
    "SoftDelete",
    "TenantScoped",
    "Versioned",
]

CAPTURED = "satellites.captured"
"""``Column.info`` flag on ``Versioned.version``: the table gets the capture triggers."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for application models (and the library's own tables)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Versioned:
    """A ``version`` the database assigns on every INSERT and UPDATE; SQLAlchemy checks it.

    It is optimistic locking (a stale update raises ``ConcurrencyError`` at commit) and
    the order every projection relies on: Redis, Elasticsearch and FAISS refuse a change
    whose version is not newer than the one they hold. The capture trigger takes it from
    one database sequence, whoever writes the row (ORM, bulk SQL, psql), so it grows for
    a key across delete and re-create too; SQLAlchemy reads it back with RETURNING.
    """

    version: Mapped[int] = mapped_column(
        BigInteger,
        FetchedValue(),
        FetchedValue(for_update=True),
        nullable=False,
        info={CAPTURED: True},
    )

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {
            "version_id_col": cls.__table__.c.version,  # type: ignore[attr-defined]
            "version_id_generator": False,
            "eager_defaults": True,
        }


class SoftDelete:
    """A nullable ``deleted_at`` timestamp: the row is soft-deleted once it is set.

    On its repository, ``delete()`` sets it (``purge()`` removes the row), and reads (``get``,
    ``get_many``, ``list``, ``count``, ``page``, ``search``, ``similar``, ``hybrid``) leave
    soft-deleted rows out unless given ``include_deleted=True``; ``restore()`` undeletes.
    """

    soft_delete_column: ClassVar[str] = "deleted_at"
    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, default=None
    )


TENANT_INFO = "satellites.tenant"
"""The ``Column.info`` flag of a ``TenantScoped`` column: migrations put a policy on its table."""


class TenantScoped:
    """A ``tenant_id`` column (indexed, NOT NULL): the model's rows belong to one tenant each.

    Its repository then needs a unit of work opened for a tenant
    (``data.unit_of_work(tenant="acme")``, or ``tenant=ALL_TENANTS``), which confines every
    read and stamps every write; ``create_tables`` and ``satellites_repo.migrate
    .enable_tenant_policies`` add the Postgres row-level security policy behind it.
    """

    tenant_scoped: ClassVar[bool] = True
    tenant_id: Mapped[str] = mapped_column(
        String, nullable=False, index=True, info={TENANT_INFO: True}
    )
