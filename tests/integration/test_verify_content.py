"""``verify`` on content: each kind of drift (missing, extra, stale, different content) made
for real in Redis, Elasticsearch and FAISS, found by kind and mended by ``repair``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.backends.redis import CachedRow
from satellites_repo.model import json_bytes
from satellites_repo.ops import Drift
from tests.integration.conftest import run_cli
from tests.integration.models import REPOSITORIES, Article, Articles
from tests.integration.stores import assert_projections_equal_postgres, commit_articles


async def drifts_of(layer: DataLayer, **options: Any) -> dict[str, Drift]:
    return {drift.target: drift for drift in await layer.operations.verify(Articles, **options)}


async def repaired(layer: DataLayer, drifts: dict[str, Drift]) -> int:
    """Repair, deliver (relay and this process's followers), then verify again."""
    owed = await layer.operations.repair(Articles, list(drifts.values()))
    await layer.operations.relay.drain()
    await layer.operations.follow()
    assert all(drift.clean for drift in await layer.operations.verify(Articles))
    return owed


async def postgres_row(layer: DataLayer, key: str) -> dict[str, Any]:
    row = await layer.postgres.fetchrow(
        "SELECT id::text AS id, version, title FROM articles WHERE id = $1::uuid", key
    )
    assert row is not None
    return dict(row)


def cache_key(layer: DataLayer, key: str) -> str:
    return f"{layer.config.redis.key_prefix}articles:{key}"


def alias(layer: DataLayer) -> str:
    return f"{layer.config.elasticsearch.index_prefix}articles"


def only(drift: Drift, **counts: int) -> None:
    """``drift`` has exactly ``counts`` of the kinds named, none of the others."""
    assert drift.counts == {kind: counts.get(kind, 0) for kind in drift.counts}, drift


async def test_normal_commits_verify_clean_on_content(layer: DataLayer) -> None:
    created = await commit_articles(layer, 5)
    async with layer.unit_of_work() as uow:
        entity = await uow.repository(Articles).get(created[0].id)
        assert entity is not None
        entity.title, entity.views = "edited", 3
        await uow.repository(Articles).delete(created[1].id)
        await uow.commit()
    await layer.operations.settled()
    await layer.operations.follow()
    drifts = await drifts_of(layer)
    assert set(drifts) == {"redis", "elasticsearch", "faiss"}
    for drift in drifts.values():
        only(drift)
        assert drift.checked == 4


async def cached(layer: DataLayer, key: str) -> tuple[int, dict[str, Any]]:
    """(version, row) of a live cache entry."""
    raw = await layer.redis.get(cache_key(layer, key))
    assert isinstance(raw, bytes)
    entry = CachedRow.parse(raw)
    assert entry is not None
    return entry.version, orjson.loads(entry.body)


async def cache(layer: DataLayer, key: str, version: int, row: dict[str, Any]) -> None:
    """An entry in the model's current shape (so only its content can differ)."""
    fingerprint = layer.operations.spec(Articles).codec.fingerprint
    entry = CachedRow(version, fingerprint, json_bytes(row))
    await layer.redis.set(cache_key(layer, key), entry.value())


async def test_redis_different_stale_and_extra_entries_are_found_and_mended(
    layer: DataLayer,
) -> None:
    first, second, third, fourth = (str(a.id) for a in await commit_articles(layer, 4))
    version, row = await cached(layer, first)
    await cache(layer, first, version, {**row, "title": "x"})  # same version, other content
    version, row = await cached(layer, second)
    narrow = {name: value for name, value in row.items() if name != "views"}
    await cache(layer, second, version, narrow)  # another shape: a column missing
    version, row = await cached(layer, third)
    await cache(layer, third, version - 1, row)  # an older version
    stray = str(uuid.uuid4())
    await cache(layer, stray, 7, {**row, "id": stray})  # a key whose row is gone
    await layer.redis.delete(cache_key(layer, fourth))  # not held: a cache need not

    drifts = await drifts_of(layer)

    only(drifts["redis"], different=2, stale=1, extra=1)
    assert sorted(drifts["redis"].different) == sorted([first, second])
    assert drifts["redis"].stale == [third]
    assert drifts["redis"].extra == {stray: 7}
    only(drifts["elasticsearch"])
    only(drifts["faiss"])
    assert await repaired(layer, drifts) == 4
    assert (await cached(layer, first))[1]["title"] == (await postgres_row(layer, first))["title"]
    assert "views" in (await cached(layer, second))[1]
    tombstone = await layer.redis.get(cache_key(layer, stray))
    assert tombstone == b"8:"


async def test_elasticsearch_missing_extra_stale_and_different_documents(
    layer: DataLayer,
) -> None:
    lost, edited = (str(a.id) for a in await commit_articles(layer, 2))
    es = layer.elasticsearch
    lost_row = await postgres_row(layer, lost)
    await es.delete(
        index=alias(layer), id=lost, version=lost_row["version"], version_type="external_gte"
    )
    row = await postgres_row(layer, edited)
    held = (await es.get(index=alias(layer), id=edited))["_source"]
    await es.index(
        index=alias(layer),
        id=edited,
        document={**held, "title": "not what Postgres says"},
        version=row["version"],
        version_type="external_gte",
    )
    stray = str(uuid.uuid4())
    await es.index(
        index=alias(layer),
        id=stray,
        document={"title": "ghost"},
        version=5,
        version_type="external",
    )
    await es.indices.refresh(index=alias(layer))

    drifts = await drifts_of(layer)

    only(drifts["elasticsearch"], missing=1, different=1, extra=1)
    assert drifts["elasticsearch"].missing == [lost]
    assert drifts["elasticsearch"].different == [edited]
    assert drifts["elasticsearch"].extra == {stray: 5}
    only(drifts["redis"])
    only(drifts["faiss"])
    assert await repaired(layer, drifts) == 3
    await assert_projections_equal_postgres(layer)
    document = await es.get(index=alias(layer), id=edited)
    assert document["_source"]["title"] == row["title"]
    assert document["_version"] == row["version"]


async def test_a_write_that_bypassed_the_capture_is_stale_everywhere(layer: DataLayer) -> None:
    (older,) = (str(a.id) for a in await commit_articles(layer, 1))
    async with layer.postgres.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute(
            # The vector too: FAISS holds no title, so a title alone would leave it current.
            "UPDATE articles SET title = 'v2', embedding = '{0,0,0,1}', "
            "version = version + 1000 WHERE id = $1::uuid",
            older,
        )

    drifts = await drifts_of(layer)

    for drift in drifts.values():
        only(drift, stale=1)
        assert drift.stale == [older]
    assert await repaired(layer, drifts) == 3
    await assert_projections_equal_postgres(layer)


async def test_faiss_missing_extra_and_different_vectors_and_metadata(layer: DataLayer) -> None:
    created = [str(a.id) for a in await commit_articles(layer, 4)]
    lost, moved, relabelled = created[0], created[1], created[2]
    async with layer.unit_of_work() as uow:
        plain = await uow.repository(Articles).add(
            Article(tenant_id="acme", title="no vector", body="b", embedding=None)
        )
        await uow.commit()
    await layer.operations.settled()
    vectors = layer.vectors
    await vectors.delete("articles", lost, version=(await postgres_row(layer, lost))["version"])
    for key, vector, metadata in (
        (moved, [0.0, 0.0, 1.0, 0.0], {"tenant_id": "acme"}),
        (relabelled, None, {"tenant_id": "globex"}),
    ):
        record = await vectors.get("articles", key)
        assert record is not None
        assert record.version is not None
        await vectors.upsert_many(
            "articles",
            [key],
            [vector or list(record.vector)],
            [metadata],
            versions=[record.version],
            rewrite=True,
        )
    stray = str(uuid.uuid4())
    await vectors.upsert("articles", stray, [0, 0, 1, 1], {"tenant_id": "x"}, version=3)
    plain_version = (await postgres_row(layer, str(plain.id)))["version"]
    # Its delete left a tombstone at that version: only a rewrite gets past it.
    await vectors.upsert_many(
        "articles", [str(plain.id)], [[1, 1, 0, 0]], [{}], versions=[plain_version], rewrite=True
    )

    drifts = await drifts_of(layer)

    only(drifts["faiss"], missing=1, different=2, extra=2)
    assert drifts["faiss"].missing == [lost]
    assert sorted(drifts["faiss"].different) == sorted([moved, relabelled])
    assert drifts["faiss"].extra == {stray: 3, str(plain.id): plain_version}
    only(drifts["redis"])
    only(drifts["elasticsearch"])
    assert await repaired(layer, drifts) == 5
    assert (await layer.vectors.count("articles")) == 4  # the row without a vector has none
    assert await vectors.get("articles", str(plain.id)) is None
    record = await vectors.get("articles", relabelled)
    assert record is not None
    assert record.metadata == {"tenant_id": "acme"}


async def test_a_sample_checks_that_many_rows_and_finds_extras_among_entries(
    layer: DataLayer,
) -> None:
    await commit_articles(layer, 30)
    drifts = await drifts_of(layer, sample=10)
    for drift in drifts.values():
        only(drift)
        assert (drift.checked, drift.sample) == (10, 10)
    stray = str(uuid.uuid4())
    await layer.vectors.upsert("articles", stray, [0, 0, 1, 1], {"tenant_id": "x"}, version=3)
    # A sample as large as the table sees every row and every entry.
    drifts = await drifts_of(layer, sample=100)
    only(drifts["faiss"], extra=1)
    assert drifts["faiss"].checked == 30
    with pytest.raises(ValueError, match="sample"):
        await layer.operations.verify(Articles, sample=0)


async def test_the_cli_reports_counts_per_kind_and_repairs(
    config: DataLayerConfig, layer: DataLayer
) -> None:
    (article,) = await commit_articles(layer, 1)
    key = str(article.id)
    row = await postgres_row(layer, key)
    await layer.elasticsearch.index(
        index=alias(layer),
        id=key,
        document={"title": "drifted"},
        version=row["version"],
        version_type="external_gte",
        refresh=True,
    )

    async def satellites(*arguments: str) -> tuple[int, str]:
        code, output, errors = await run_cli(
            config, "tests.integration.models:REPOSITORIES", *arguments
        )
        return code, output + errors

    code, output = await satellites("verify", "--sample", "5")
    assert code == 1, output
    assert "different" in output
    assert "(sample)" in output
    line = next(text for text in output.splitlines() if "elasticsearch" in text)
    assert [cell.strip() for cell in line.split("│")][4:9] == ["0", "0", "0", "1", "0"], output
    code, output = await satellites("verify", "--repair")
    assert code == 0, output
    assert "repair: 1 change(s) enqueued" in output
    code, output = await satellites("verify")
    assert code == 0, output
    code, output = await satellites("verify", "--sample", "0")
    assert code == 2, output


async def test_a_faiss_repair_reaches_every_instance_that_follows_the_outbox(
    config: DataLayerConfig, layer: DataLayer, tmp_path: Path
) -> None:
    (article,) = await commit_articles(layer, 1)
    key = str(article.id)
    other = config.replace(faiss=config.faiss.replace(index_path=tmp_path / "other"))
    async with DataLayer(other, repositories=REPOSITORIES) as second:
        for instance in (layer, second):  # the same drift in both copies
            record = await instance.vectors.get("articles", key)
            assert record is not None
            await instance.vectors.upsert_many(
                "articles", [key], [list(record.vector)], [{"tenant_id": "elsewhere"}],
                versions=[record.version], rewrite=True,
            )  # fmt: skip
        assert (await drifts_of(second))["faiss"].different == [key]

        await repaired(layer, await drifts_of(layer))  # from the first instance only
        await second.operations.follow()

        only((await drifts_of(second))["faiss"])
        record = await second.vectors.get("articles", key)
        assert record is not None
        assert record.metadata == {"tenant_id": "acme"}
