"""Each store read directly, beside the repositories: what the demo shows and checks.

The repositories hide where an article came from; to show that a commit reached every
projection (or that a rollback reached none), ``StoreView`` asks Postgres, Redis,
Elasticsearch and FAISS one by one.
"""

from __future__ import annotations

import uuid
from typing import Any

from satellites_repo import DataLayer
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.demo.models import SEARCH_INDEX, VECTOR_NAMESPACE, Article, Articles

__all__ = ["TABLE", "StoreView", "Stored"]

TABLE = str(Article.__tablename__)

Stored = tuple[int | None, str | None]
"""(version, title) of one article in one store; (None, None) when it is absent."""


class StoreView:
    """What each store of a started layer holds for the knowledge base's articles."""

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer
        cache = layer.operations.backend("redis")
        assert isinstance(cache, RedisBackend)
        self._cache = cache
        self._spec = layer.operations.spec(Articles)
        self.alias = f"{layer.config.elasticsearch.index_prefix}{SEARCH_INDEX}"

    def cache_key(self, key: uuid.UUID | str) -> str:
        """The Redis key of one article."""
        return self._cache.key(self._spec, str(key))

    async def counts(self) -> dict[str, int]:
        """How many articles each store holds."""
        layer = self._layer
        keys = [key async for key in layer.redis.scan_iter(match=self._cache.pattern(self._spec))]
        indexed = await layer.elasticsearch.count(index=self.alias)
        return {
            "postgres": await self.row_count(),
            "redis": len(keys),
            "elasticsearch": int(indexed["count"]),
            "faiss": await layer.vectors.count(VECTOR_NAMESPACE),
        }

    async def stored(self, key: uuid.UUID) -> dict[str, Stored]:
        """(version, title) of one article as each store holds it (FAISS has no title)."""
        row = await self._layer.postgres.fetchrow(
            f"SELECT version, title FROM {TABLE} WHERE id = $1", key
        )
        document = await self._document(key)
        vector = await self._layer.vectors.get(VECTOR_NAMESPACE, str(key))
        return {
            "postgres": (row["version"], row["title"]) if row else (None, None),
            "redis": await self._cached(key),
            "elasticsearch": (
                (document["_version"], document["_source"]["title"]) if document else (None, None)
            ),
            "faiss": (vector.version if vector else None, None),
        }

    async def traces(self, key: uuid.UUID) -> dict[str, bool]:
        """Whether each store holds anything for ``key``."""
        layer = self._layer
        row = await layer.postgres.fetchval(f"SELECT 1 FROM {TABLE} WHERE id = $1", key)
        return {
            "postgres": row is not None,
            "redis": await layer.redis.exists(self.cache_key(key)) > 0,
            "elasticsearch": await self._document(key) is not None,
            "faiss": await layer.vectors.get(VECTOR_NAMESPACE, str(key)) is not None,
        }

    async def row_count(self) -> int:
        count: int = await self._layer.postgres.fetchval(f"SELECT count(*) FROM {TABLE}")
        return count

    async def _cached(self, key: uuid.UUID) -> Stored:
        (row,) = await self._cache.read(self._spec, [str(key)])
        if row is None or row.is_tombstone:
            return None, None
        return row.version, self._spec.codec.loads(row.body).get("title")

    async def _document(self, key: uuid.UUID) -> dict[str, Any] | None:
        response = await self._layer.elasticsearch.options(ignore_status=404).get(
            index=self.alias, id=str(key)
        )
        return dict(response.body) if response.body.get("found") else None
