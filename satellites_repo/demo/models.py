"""The knowledge base's tables and repositories: tenants and their articles.

``Articles`` declares every projection: rows are cached in Redis for five minutes, title,
body, tenant and tags are indexed in Elasticsearch, and the embedding is indexed in FAISS
with the tenant beside it so similarity search can stay inside one tenant. Table names
carry a ``kb_`` prefix because every model shares ``Base.metadata`` with other apps' tables.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from satellites_repo import (
    Base,
    CachePolicy,
    Repository,
    SearchIndex,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.demo.embedding import DIM

__all__ = ["SEARCH_INDEX", "VECTOR_NAMESPACE", "Article", "Articles", "Tenant", "Tenants"]

SEARCH_INDEX = "kb-articles"
VECTOR_NAMESPACE = "kb-articles"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tenant(Base):
    """A customer of the SaaS; every article belongs to exactly one."""

    __tablename__ = "kb_tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Article(Base, Versioned):
    """A knowledge-base article. ``version`` orders its changes in every projection."""

    __tablename__ = "kb_articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("kb_tenants.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    embedding: Mapped[list[float]] = mapped_column(Vector(DIM))
    # Never loaded (lazy="raise" refuses hidden I/O); it tells the flush to insert a new
    # tenant before its articles when both are added in one unit of work.
    tenant: Mapped[Tenant] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"<Article {self.id} {self.tenant_id}/{self.title!r} v{self.version}>"


class Tenants(Repository[Tenant]):
    """Plain Postgres access: tenants are few and not searched."""


class Articles(Repository[Article]):
    cache = CachePolicy(ttl=300)
    search = SearchIndex(
        SEARCH_INDEX,
        fields={"title": "text", "body": "text", "tenant_id": "keyword", "tags": "keyword"},
    )
    vectors = VectorField("embedding", namespace=VECTOR_NAMESPACE, metadata=("tenant_id",))


def article_text(title: str, body: str) -> str:
    """What an article's embedding is computed from (the title counts like the body)."""
    return f"{title}\n{body}"
