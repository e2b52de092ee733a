"""Rebuilding projections from Postgres, and finding and mending drift."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, text

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.migrate import create_tables
from tests.integration.conftest import run_cli
from tests.integration.models import REPOSITORIES, Article, Articles, IntegrationModel
from tests.integration.stores import (
    assert_projections_equal_postgres,
    assert_search_equals_postgres,
    commit_articles,
    postgres_versions,
)


def search_backend(layer: DataLayer) -> ElasticsearchBackend:
    backend = layer.operations.backend("elasticsearch")
    assert isinstance(backend, ElasticsearchBackend)
    return backend


async def bulk_insert_rows(layer: DataLayer, count: int) -> None:
    """Rows straight into Postgres, as a table an index is built for: with the capture
    triggers off for the seeding transaction, so none of them is projected."""
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": "acme" if n % 2 else "globex",
            "title": f"row {n}",
            "body": "seeded directly",
            "views": 0,
            "embedding": [1.0, float(n % 7), 0.0, 1.0],
            "version": 1,
        }
        for n in range(count)
    ]
    async with layer.engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        for start in range(0, count, 5000):
            await connection.execute(insert(Article), rows[start : start + 5000])


@pytest.fixture
async def unrefreshed_layer(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """Commits return without waiting for Elasticsearch's refresh (as in production)."""
    await create_tables(config, IntegrationModel.metadata)
    fast = config.replace(elasticsearch=config.elasticsearch.replace(refresh="false"))
    async with DataLayer(fast, repositories=REPOSITORIES) as started:
        yield started


async def test_reindex_while_300_commits_land_loses_nothing(unrefreshed_layer: DataLayer) -> None:
    layer = unrefreshed_layer
    await commit_articles(layer, 50)
    await bulk_insert_rows(layer, 20_000)
    alias = search_backend(layer).alias(Articles.search)
    await layer.elasticsearch.indices.refresh(index=alias)  # the 50 committed are searchable
    empty_answers = 0
    searches = 0
    finished = asyncio.Event()

    async def search_meanwhile() -> None:
        nonlocal empty_answers, searches
        while not finished.is_set():
            response = await layer.elasticsearch.search(
                index=alias, query={"match_all": {}}, size=0
            )
            searches += 1
            if response["hits"]["total"]["value"] == 0:
                empty_answers += 1
            await asyncio.sleep(0.05)

    async def commit_meanwhile() -> None:
        existing = await commit_articles(layer, 100, batch=1)  # 100 commits, then 200 more
        for n in range(200):
            async with layer.unit_of_work() as uow:
                target = await uow.repository(Articles).get(existing[n % 100].id)
                assert target is not None
                target.views += 1
                await uow.commit()

    async def rebuild() -> None:
        try:
            await layer.operations.reindex(Articles, ["elasticsearch"])
        finally:
            finished.set()

    await asyncio.gather(rebuild(), commit_meanwhile(), search_meanwhile())

    assert searches > 0
    assert empty_answers == 0
    behind, leftovers = await search_backend(layer).indices_of(Articles.search)
    assert len(behind) == 1
    assert behind[0] != f"{alias}-000001"
    assert leftovers == []
    assert len(await postgres_versions(layer)) == 20_150
    await assert_search_equals_postgres(layer)  # the 200 view counts were never sent


async def test_an_interrupted_reindex_leaves_no_trace_and_can_run_again(layer: DataLayer) -> None:
    await commit_articles(layer, 10)
    alias = search_backend(layer).alias(Articles.search)
    await layer.elasticsearch.indices.create(index=f"{alias}-20000101000000000000")  # left over
    (report,) = await layer.operations.reindex(Articles, ["elasticsearch"])
    assert report.rows == 10
    behind, leftovers = await search_backend(layer).indices_of(Articles.search)
    assert len(behind) == 1
    assert behind[0] != f"{alias}-20000101000000000000"
    assert leftovers == []
    (again,) = await layer.operations.reindex(Articles, ["elasticsearch"])
    assert again.rows == 10
    behind_again, leftovers_again = await search_backend(layer).indices_of(Articles.search)
    assert len(behind_again) == 1
    assert behind_again != behind
    assert leftovers_again == []


async def test_reindex_warms_the_cache_and_rebuilds_vectors(layer: DataLayer) -> None:
    await commit_articles(layer, 20)
    keys = [key async for key in layer.redis.scan_iter(f"{layer.config.redis.key_prefix}*")]
    await layer.redis.delete(*keys)
    await layer.vectors.drop("articles")
    reports = await layer.operations.reindex(Articles, ["redis", "faiss"])
    assert [(report.target, report.rows) for report in reports] == [("redis", 20), ("faiss", 20)]
    await assert_projections_equal_postgres(layer)


async def test_verify_finds_drift_and_repair_mends_it(layer: DataLayer) -> None:
    created = await commit_articles(layer, 6)
    assert all(drift.clean for drift in await layer.operations.verify(Articles))

    alias = search_backend(layer).alias(Articles.search)
    older, phantom_vector = (str(entity.id) for entity in created[:2])
    # A change that never reached Elasticsearch, whose outbox row was then purged.
    await layer.elasticsearch.indices.close(index=alias)
    (never_indexed,) = await commit_articles(layer, 1)
    lost = str(never_indexed.id)
    await layer.elasticsearch.indices.open(index=alias, wait_for_active_shards="1")
    await layer.postgres.execute("DELETE FROM satellites_outbox")
    # A write that bypassed the capture (triggers off): every projection holds the old one.
    async with layer.postgres.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute(
            "UPDATE articles SET title = 'v2', embedding = '{0,0,0,1}', "
            "version = version + 1000 WHERE id = $1::uuid",
            older,
        )
    await layer.vectors.delete("articles", phantom_vector)
    stray = str(uuid.uuid4())
    await layer.vectors.upsert("articles", stray, [0, 0, 1, 1], {"tenant_id": "x"}, version=3)
    await layer.elasticsearch.index(
        index=alias,
        id=stray,
        document={"title": "ghost"},
        version=5,
        version_type="external",
        refresh=True,
    )

    drifts = {drift.target: drift for drift in await layer.operations.verify(Articles)}
    assert drifts["elasticsearch"].missing == [lost]
    assert drifts["elasticsearch"].stale == [older]
    assert drifts["elasticsearch"].extra == {stray: 5}
    assert drifts["redis"].stale == [older]
    assert drifts["faiss"].missing == [phantom_vector]
    assert drifts["faiss"].stale == [older]
    assert drifts["faiss"].extra == {stray: 3}

    assert await layer.operations.repair(Articles, list(drifts.values())) == 7
    await layer.operations.relay.drain()
    await layer.operations.follow()
    assert all(drift.clean for drift in await layer.operations.verify(Articles))
    await assert_projections_equal_postgres(layer)


async def test_the_cli_reports_outbox_status_and_verifies(
    config: DataLayerConfig, layer: DataLayer
) -> None:
    await commit_articles(layer, 3)

    async def satellites(*arguments: str) -> tuple[int, str]:
        code, output, errors = await run_cli(
            config, "tests.integration.models:REPOSITORIES", *arguments
        )
        return code, output + errors

    code, output = await satellites("outbox", "status")
    assert code == 0, output
    assert "settled rows" in output
    code, output = await satellites("verify")
    assert code == 0, output
    assert "Drift" in output
    await layer.elasticsearch.delete(
        index=search_backend(layer).alias(Articles.search),
        id=(await layer.postgres.fetchval("SELECT id::text FROM articles LIMIT 1")),
        refresh=True,
    )
    code, output = await satellites("verify", "--repository", "Articles")
    assert code == 1, output
    code, output = await satellites("verify", "--repair")
    assert code == 0, output
    code, output = await satellites("reindex", "--target", "elasticsearch")
    assert code == 0, output
    assert "Articles elasticsearch: 3 row(s)" in output
    code, output = await satellites("outbox", "purge", "--done-older-than", "0s")
    assert code == 0, output
    assert "purged" in output
    code, output = await satellites("reindex", "--target", "nope")
    assert code == 2, output
