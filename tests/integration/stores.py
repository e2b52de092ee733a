"""What the integration tests share: committing articles, reading every store's versions
and content."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from satellites_repo import DataLayer
from tests.integration.models import Article, Articles


def article(n: int, tenant: str = "acme") -> Article:
    return Article(
        tenant_id=tenant, title=f"title {n}", body="body", embedding=[1.0, n + 1.0, 0, 0]
    )


async def commit_articles(layer: DataLayer, count: int, batch: int = 100) -> list[Article]:
    created: list[Article] = []
    for start in range(0, count, batch):
        async with layer.unit_of_work() as uow:
            entities = [article(n) for n in range(start, min(start + batch, count))]
            created.extend(await uow.repository(Articles).add_many(entities))
            await uow.commit()
    await layer.operations.settled()
    return created


async def postgres_versions(layer: DataLayer) -> dict[str, int]:
    rows = await layer.postgres.fetch("SELECT id::text AS id, version FROM articles")
    return {row["id"]: row["version"] for row in rows}


async def cache_versions(layer: DataLayer, keys: list[str]) -> dict[str, int]:
    """Versions of the live rows Redis holds (tombstones left out)."""
    prefix = f"{layer.config.redis.key_prefix}articles:"
    values: list[Any] = await layer.redis.mget([prefix + key for key in keys]) if keys else []
    versions = {}
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            version, _, body = value.partition(b":")
            if body:
                versions[key] = int(version)
    return versions


async def search_versions(layer: DataLayer) -> dict[str, int]:
    alias = f"{layer.config.elasticsearch.index_prefix}articles"
    await layer.elasticsearch.indices.refresh(index=alias)
    versions: dict[str, int] = {}
    after: list[Any] | None = None
    while True:
        response = await layer.elasticsearch.search(
            index=alias, size=5000, version=True, source=False, sort=["_doc"], search_after=after
        )
        hits = response["hits"]["hits"]
        if not hits:
            return versions
        versions.update((hit["_id"], hit["_version"]) for hit in hits)
        after = hits[-1]["sort"]


async def vector_versions(layer: DataLayer, keys: list[str]) -> dict[str, int]:
    found = {}
    for key in keys:
        record = await layer.vectors.get("articles", key)
        if record is not None and record.version is not None:
            found[key] = record.version
    return found


async def assert_projections_equal_postgres(layer: DataLayer) -> None:
    """Every article in every projection, as Postgres holds it.

    Redis caches whole rows, so it holds each at Postgres' version. Elasticsearch and
    FAISS are not sent an update of columns they do not hold (a title change skips FAISS):
    they hold a version no newer than Postgres', and exactly the content its row gives.
    """
    truth = await postgres_versions(layer)
    keys = sorted(truth)
    cached = await cache_versions(layer, keys)
    assert cached == truth, {k: (v, cached.get(k)) for k, v in truth.items() if cached.get(k) != v}
    rows = await assert_search_equals_postgres(layer, truth)
    vectors = await vector_versions(layer, keys)
    assert sorted(vectors) == keys
    assert all(vectors[key] <= truth[key] for key in keys)
    for key, row in rows.items():
        record = await layer.vectors.get("articles", key)
        assert record is not None
        assert record.metadata == {"tenant_id": row["tenant_id"]}
        wanted = np.asarray(row["embedding"], dtype=np.float32)
        assert np.allclose(record.vector, wanted / np.linalg.norm(wanted), atol=1e-6), key
    assert await layer.vectors.count("articles") == len(truth)


async def assert_search_equals_postgres(
    layer: DataLayer, truth: dict[str, int] | None = None
) -> dict[str, Any]:
    """Every article indexed with its row's title, body and tenant, at a version no newer
    than Postgres' (updates of other columns are not sent); returns the rows by key."""
    truth = truth if truth is not None else await postgres_versions(layer)
    keys = sorted(truth)
    indexed = await search_versions(layer)
    assert sorted(indexed) == keys
    assert all(indexed[key] <= truth[key] for key in keys)
    rows = {
        row["id"]: row
        for row in await layer.postgres.fetch(
            "SELECT id::text AS id, tenant_id, title, body, embedding FROM articles"
        )
    }
    assert await search_documents(layer, keys) == {
        key: {"tenant_id": row["tenant_id"], "title": row["title"], "body": row["body"]}
        for key, row in rows.items()
    }
    return rows


async def search_documents(layer: DataLayer, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The indexed articles' declared fields, by key."""
    alias = f"{layer.config.elasticsearch.index_prefix}articles"
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 1000):
        response = await layer.elasticsearch.mget(
            index=alias, ids=keys[start : start + 1000], source=["tenant_id", "title", "body"]
        )
        found.update((doc["_id"], doc["_source"]) for doc in response["docs"] if doc["found"])
    return found


async def settle_everything(layer: DataLayer, within: float = 60.0) -> None:
    """Make every owed row due now and let this process's relay and follower deliver it.

    A row the background relay or a timed-out commit still holds (its attempt was under
    way when the backend came back) is left alone by ``retry_now`` until that attempt
    settles, so this goes round until no projection is owed anything.
    """
    deadline = time.monotonic() + within
    while True:
        await layer.operations.outbox.retry_now()
        await layer.operations.relay.drain()
        await layer.operations.follow()
        status = await layer.operations.outbox.status()
        owed = {target: n for target, n in status.by_target.items() if target != "events"}
        if not any(owed.values()):
            return
        assert time.monotonic() < deadline, f"still owed after {within}s: {owed}"
        await asyncio.sleep(0.2)
