"""The benchmark's entity: the design's ``Article`` with a 384-d embedding.

Kept apart from the test models (4-d) so ``Base.metadata.create_all`` in the benchmark's
own schema creates only this table and the library's (outbox, meta).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import (
    Base,
    CachePolicy,
    Repository,
    SearchIndex,
    TenantScoped,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.model.policies import FieldType

__all__ = [
    "DIMENSION",
    "NAMESPACE",
    "SEARCH_FIELDS",
    "BenchArticle",
    "BenchArticles",
    "BenchTenantArticle",
    "BenchTenantArticles",
]

DIMENSION = 384
NAMESPACE = "bench_articles"
SEARCH_FIELDS: dict[str, FieldType] = {"title": "text", "body": "text", "tenant_id": "keyword"}
"""The Elasticsearch fields, shared with the hand-written baseline's index."""


class BenchArticle(Base, Versioned):
    """About 8 KB of JSON per row, almost all of it the embedding."""

    __tablename__ = "bench_articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str]
    body: Mapped[str]
    tenant_id: Mapped[str] = mapped_column(index=True)
    embedding: Mapped[list[float]] = mapped_column(Vector(DIMENSION))


class BenchArticles(Repository[BenchArticle]):
    # A TTL longer than a whole run, so no read benchmark ever meets an expired key.
    cache = CachePolicy(ttl=3600, tombstone_ttl=60)
    search = SearchIndex("bench_articles", fields=SEARCH_FIELDS)
    vectors = VectorField("embedding", namespace=NAMESPACE, metadata=("tenant_id",))


class BenchTenantArticle(Base, Versioned, TenantScoped):
    """``BenchArticle`` as a ``TenantScoped`` model: what the cost of scoping is measured on."""

    __tablename__ = "bench_tenant_articles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str]
    body: Mapped[str]
    embedding: Mapped[list[float]] = mapped_column(Vector(DIMENSION))


class BenchTenantArticles(Repository[BenchTenantArticle]):
    cache = BenchArticles.cache
    search = SearchIndex("bench_tenant_articles", fields=SEARCH_FIELDS)
    vectors = VectorField("embedding", namespace="bench_tenant_articles", metadata=("tenant_id",))
