"""A small multi-tenant model used by the integration tests (4-d vectors keep them fast).

The models live on a ``MetaData`` of their own, which also holds the library's tables, so
an integration schema gets exactly these tables: never those of the examples or of the
unit tests, which register on ``Base.metadata`` or their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, MetaData, func
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


REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags]


class EsArticle(IntegrationModel, Versioned):
    """``Article`` again, with its vectors in Elasticsearch instead of FAISS."""

    __tablename__ = "es_articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class EsArticles(Repository[EsArticle]):
    cache = CachePolicy(ttl=300, tombstone_ttl=60)
    search = SearchIndex(
        "es-articles", fields={"title": "text", "body": "text", "tenant_id": "keyword"}
    )
    vectors = VectorField(
        "embedding",
        engine="elasticsearch",
        metadata=("tenant_id",),
        index_options={"type": "int8_hnsw"},
    )


class Snippet(IntegrationModel, Versioned):
    """Vectors only: the Elasticsearch engine gives it a document index of its own."""

    __tablename__ = "snippets"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(DIMENSION), nullable=True)


class Snippets(Repository[Snippet]):
    vectors = VectorField("embedding", engine="elasticsearch", metadata=("tenant_id",))


ENGINE_REPOSITORIES: list[type[Repository[Any]]] = [Articles, EsArticles, Snippets]
"""Both vector engines side by side (the engine tests)."""
