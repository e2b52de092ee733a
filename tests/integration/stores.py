"""What the integration tests share: committing articles and reading every store's versions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
    truth = await postgres_versions(layer)
    keys = sorted(truth)
    cached = await cache_versions(layer, keys)
    assert cached == truth, {k: (v, cached.get(k)) for k, v in truth.items() if cached.get(k) != v}

    assert await search_versions(layer) == truth
    assert await vector_versions(layer, keys) == truth
    assert await layer.vectors.count("articles") == len(truth)


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
