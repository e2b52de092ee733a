"""A small multi-tenant model used by the integration tests (4-d vectors keep them fast).

The models live on a ``MetaData`` of their own, which also holds the library's tables, so
an integration schema gets exactly these tables: never those of the examples or of the
unit tests, which register on ``Base.metadata`` or their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, ForeignKey, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satellites_repo import (
    CachePolicy,
    Repository,
    SearchIndex,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.orm.base import NAMING_CONVENTION
from satellites_repo.outbox.table import meta_table, outbox_table

DIMENSION = 4


class IntegrationModel(DeclarativeBase):
    """The integration tests' declarative base, with the library's tables beside theirs."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in (outbox_table, meta_table):
    _table.to_metadata(IntegrationModel.metadata)


class Article(IntegrationModel, Versioned):
    __tablename__ = "articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[str]
    views: Mapped[int] = mapped_column(default=0)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Articles(Repository[Article]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex(
        "articles", fields={"title": "text", "body": "text", "tenant_id": "keyword"}
    )
    vectors = VectorField("embedding", namespace="articles", metadata=("tenant_id",))


class Tag(IntegrationModel):
    """Not projected: events only."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Tags(Repository[Tag]):
    pass


class Customer(IntegrationModel):
    """Not projected: its tickets go with it by ``ON DELETE CASCADE``."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Ticket(IntegrationModel, Versioned):
    """Cached and searched, with short tombstone lifetimes (Redis and Elasticsearch) so
    tests can outlive them."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    subject: Mapped[str]
    open: Mapped[bool] = mapped_column(default=True)


class Tickets(Repository[Ticket]):
    cache = CachePolicy(ttl=300, tombstone_ttl=1)
    search = SearchIndex(
        "tickets",
        fields={"subject": "text", "open": "boolean"},
        settings={"index.gc_deletes": "0s"},
    )


REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags]
CAPTURE_REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags, Tickets]
