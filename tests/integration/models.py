"""A small multi-tenant model used by the integration tests (4-d vectors keep them fast)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, func
from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import (
    Base,
    CachePolicy,
    Repository,
    SearchIndex,
    Vector,
    VectorField,
    Versioned,
)

DIMENSION = 4


class Article(Base, Versioned):
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


class Tag(Base):
    """Not projected: events only."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Tags(Repository[Tag]):
    pass


REPOSITORIES: list[type[Repository[Any]]] = [Articles, Tags]
