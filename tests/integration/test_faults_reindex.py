"""Reindex touches only the indices it created, one at a time per alias (finding 3)."""

from __future__ import annotations

import asyncio

from satellites_repo import DataLayer
from tests.integration.models import Articles
from tests.integration.stores import commit_articles, postgres_versions, search_versions


def alias_of(layer: DataLayer) -> str:
    return f"{layer.config.elasticsearch.index_prefix}articles"


async def test_reindex_beside_an_archive_index_leaves_it_alone(layer: DataLayer) -> None:
    await commit_articles(layer, 20)
    archive = f"{alias_of(layer)}-archive-000001"
    await layer.elasticsearch.indices.create(index=archive)
    try:
        await layer.operations.reindex(Articles, ["elasticsearch"])
        await layer.operations.reindex(Articles, ["elasticsearch"])
        assert await layer.elasticsearch.indices.exists(index=archive)
        await commit_articles(layer, 5)
        assert await search_versions(layer) == await postgres_versions(layer)
    finally:
        await layer.elasticsearch.indices.delete(index=archive, ignore_unavailable=True)


async def test_two_reindexes_at_once_end_with_one_strict_index(layer: DataLayer) -> None:
    await commit_articles(layer, 600)
    reports = await asyncio.gather(
        layer.operations.reindex(Articles, ["elasticsearch"]),
        layer.operations.reindex(Articles, ["elasticsearch"]),
    )
    assert [report.rows for (report,) in reports] == [600, 600]
    alias = alias_of(layer)
    behind = await layer.elasticsearch.indices.get_alias(name=alias)
    assert len(behind.body) == 1
    (name,) = behind.body
    mapping = (await layer.elasticsearch.indices.get_mapping(index=name))[name]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["tenant_id"]["type"] == "keyword"
    every = await layer.elasticsearch.indices.get(index=f"{alias}-*")
    assert list(every) == [name]
    assert await search_versions(layer) == await postgres_versions(layer)
