"""The hand-written baselines: what an application would write with the native clients.

``RawStore`` is the careful version (batched writes, one round trip per backend);
``NaiveStore`` is the seed sample's style (one await per entity and per backend). Both
use the started ``DataLayer``'s own clients (asyncpg pool, redis, Elasticsearch), so a
comparison never differs by connection setup, only by what is sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import orjson
from _data import Row
from _model import DIMENSION
from _seed_index import SeedVectorIndex

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as redis
    from elasticsearch import AsyncElasticsearch

__all__ = ["NaiveStore", "NativeClients", "RawStore", "RawTargets"]

_COLUMNS = "id, tenant_id, title, body, embedding, version"
CACHE_TTL = 3600
VERSION = 1


@dataclass(frozen=True, slots=True)
class NativeClients:
    """The started layer's own clients, which the baselines borrow."""

    pool: asyncpg.Pool
    cache: redis.Redis
    search: AsyncElasticsearch


@dataclass(frozen=True, slots=True)
class RawTargets:
    """Where one baseline writes: its own table, key prefix and index."""

    table: str
    key_prefix: str
    index: str

    @property
    def insert(self) -> str:
        return f"INSERT INTO {self.table} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"

    def key(self, entity_id: uuid.UUID | str) -> str:
        return f"{self.key_prefix}{entity_id}"


def _record(row: Row) -> tuple[Any, ...]:
    return (row.id, row.tenant_id, row.title, row.body, row.embedding, VERSION)


class RawStore:
    """Batched hand-written writes and reads; FAISS is an ``IndexIDMap2`` over a flat index.

    A write is one ``executemany`` INSERT (one transaction), then the redis pipeline of
    SETs and the Elasticsearch bulk request concurrently, then ``add_with_ids`` called
    directly on the event loop (no thread hop).
    """

    def __init__(self, clients: NativeClients, targets: RawTargets) -> None:
        self._pool, self._cache, self._search = clients.pool, clients.cache, clients.search
        self._targets = targets
        self._vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
        self._ids: list[uuid.UUID] = []
        self._select_one = f"SELECT {_COLUMNS} FROM {targets.table} WHERE id = $1"
        self._select_many = f"SELECT {_COLUMNS} FROM {targets.table} WHERE id = ANY($1::uuid[])"

    async def write(self, rows: Sequence[Row]) -> None:
        await self._pool.executemany(self._targets.insert, [_record(row) for row in rows])
        await asyncio.gather(self._set_cache(rows), self._index(rows))
        self._add_vectors(rows)

    async def _set_cache(self, rows: Sequence[Row]) -> None:
        pipe = self._cache.pipeline(transaction=False)
        for row in rows:
            pipe.set(self._targets.key(row.id), orjson.dumps(row.as_json(VERSION)), ex=CACHE_TTL)
        await pipe.execute()

    async def _index(self, rows: Sequence[Row]) -> None:
        operations: list[dict[str, Any]] = []
        for row in rows:
            operations.append({"index": {"_index": self._targets.index, "_id": str(row.id)}})
            operations.append(row.document())
        response = await self._search.bulk(operations=operations, refresh="false")
        if response["errors"]:
            raise RuntimeError("the baseline's bulk request had item errors")

    def _add_vectors(self, rows: Sequence[Row]) -> None:
        matrix = np.asarray([row.embedding for row in rows], dtype=np.float32)
        faiss.normalize_L2(matrix)
        labels = np.arange(len(self._ids), len(self._ids) + len(rows), dtype=np.int64)
        self._vectors.add_with_ids(matrix, labels)
        self._ids.extend(row.id for row in rows)

    async def get(self, entity_id: uuid.UUID) -> dict[str, Any] | None:
        raw = await self._cache.get(self._targets.key(entity_id))
        return None if raw is None else _loads(raw)

    async def get_many(self, entity_ids: Sequence[uuid.UUID | str]) -> list[dict[str, Any]]:
        raws = await self._cache.mget([self._targets.key(key) for key in entity_ids])
        return [_loads(raw) for raw in raws if raw is not None]

    async def select(self, entity_id: uuid.UUID) -> dict[str, Any] | None:
        record = await self._pool.fetchrow(self._select_one, entity_id)
        return None if record is None else dict(record)

    async def search(self, text: str, tenant: str, *, limit: int) -> list[dict[str, Any]]:
        """The same request the library sends (highlights included), then one MGET."""
        response = await self._search.search(
            index=self._targets.index,
            query={
                "bool": {
                    "must": [{"multi_match": {"query": text, "fields": ["title", "body"]}}],
                    "filter": [{"term": {"tenant_id": tenant}}],
                }
            },
            size=limit,
            source=False,
            highlight={"fields": {"title": {}, "body": {}}},
            track_total_hits=True,
        )
        return await self.get_many([hit["_id"] for hit in response["hits"]["hits"]])

    async def similar(self, vector: Sequence[float], *, k: int) -> list[dict[str, Any]]:
        """FAISS search (on the loop), then one SELECT of the hits, put back in rank order."""
        query = np.asarray([vector], dtype=np.float32)
        faiss.normalize_L2(query)
        _, labels = self._vectors.search(query, k)
        ranked = [self._ids[label] for label in labels[0].tolist() if label >= 0]
        records = await self._pool.fetch(self._select_many, ranked)
        by_id = {record["id"]: dict(record) for record in records}
        return [by_id[key] for key in ranked if key in by_id]


class NaiveStore:
    """The seed sample's way: per entity, INSERT, then SET, then index, then upsert."""

    def __init__(self, clients: NativeClients, targets: RawTargets) -> None:
        self._clients = clients
        self._targets = targets
        self._vectors = SeedVectorIndex(DIMENSION)

    async def write(self, rows: Sequence[Row]) -> None:
        pool, cache, search = self._clients.pool, self._clients.cache, self._clients.search
        for row in rows:
            await pool.execute(self._targets.insert, *_record(row))
            await cache.set(
                self._targets.key(row.id), orjson.dumps(row.as_json(VERSION)), ex=CACHE_TTL
            )
            await search.index(index=self._targets.index, id=str(row.id), document=row.document())
            await self._vectors.upsert(
                "articles", str(row.id), row.embedding, {"tenant_id": row.tenant_id}
            )


def _loads(raw: bytes | str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value
