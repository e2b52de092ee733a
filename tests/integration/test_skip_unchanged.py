"""Skip what did not change: an update reaches only the backends that hold a column it
changed, counted at the real servers and clients (issue 17)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.backends.redis import CachedRow
from satellites_repo.migrate import create_tables
from satellites_repo.outbox.capture import capture_statements
from tests.integration.models import REPOSITORIES, Article, Articles, IntegrationModel
from tests.integration.stores import assert_projections_equal_postgres, settle_everything


@dataclass
class Sent:
    """Requests the layer made: bulk requests to Elasticsearch, upsert calls into FAISS."""

    bulk: int = 0
    upserts: int = 0
    calls: list[str] = field(default_factory=list)


def counting(sent: Sent, name: str, call: Callable[..., Awaitable[Any]]) -> Any:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        setattr(sent, name, getattr(sent, name) + 1)
        return await call(*args, **kwargs)

    return counted


@pytest.fixture
async def quiet(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """Relay off: the test decides when rows written outside a unit of work are delivered."""
    await create_tables(config, IntegrationModel.metadata)
    quiet_config = config.replace(outbox=config.outbox.replace(relay=False))
    async with DataLayer(quiet_config, repositories=REPOSITORIES) as layer:
        yield layer


@pytest.fixture
def sent(quiet: DataLayer, monkeypatch: pytest.MonkeyPatch) -> Sent:
    counts = Sent()
    search = quiet.operations.backend("elasticsearch")
    vectors = quiet.operations.backend("faiss")
    assert isinstance(search, ElasticsearchBackend)
    assert isinstance(vectors, FaissBackend)
    monkeypatch.setattr(search.client, "bulk", counting(counts, "bulk", search.client.bulk))
    monkeypatch.setattr(
        vectors.index, "upsert_many", counting(counts, "upserts", vectors.index.upsert_many)
    )
    return counts


async def add_article(layer: DataLayer) -> str:
    async with layer.unit_of_work() as uow:
        added = await uow.repository(Articles).add(
            Article(tenant_id="acme", title="printer", body="jams", embedding=[1.0, 0, 0, 0])
        )
        await uow.commit()
    await layer.operations.settled()
    return str(added.id)


async def change(layer: DataLayer, key: str, **values: Any) -> None:
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(uuid.UUID(key))
        assert loaded is not None
        for name, value in values.items():
            setattr(loaded, name, value)
        await uow.commit()
    await layer.operations.settled()


@dataclass(frozen=True)
class Held:
    """What each server holds for one article."""

    postgres: int
    redis: int
    views_cached: int
    es_version: int
    es_seq_no: int
    es_indexed_total: int
    faiss: int | None


async def held(layer: DataLayer, key: str) -> Held:
    postgres = await layer.postgres.fetchval(
        "SELECT version FROM articles WHERE id = $1::uuid", key
    )
    cached = await layer.redis.get(f"{layer.config.redis.key_prefix}articles:{key}")
    assert isinstance(cached, bytes)
    entry = CachedRow.parse(cached)
    assert entry is not None
    alias = f"{layer.config.elasticsearch.index_prefix}articles"
    document = await layer.elasticsearch.get(index=alias, id=key)
    stats = await layer.elasticsearch.indices.stats(index=alias, metric="indexing")
    record = await layer.vectors.get("articles", key)
    return Held(
        postgres=postgres,
        redis=entry.version,
        views_cached=int(orjson.loads(entry.body)["views"]),
        es_version=document["_version"],
        es_seq_no=document["_seq_no"],
        es_indexed_total=stats["_all"]["primaries"]["indexing"]["index_total"],
        faiss=None if record is None else record.version,
    )


async def test_a_view_counter_bump_reaches_redis_only(quiet: DataLayer, sent: Sent) -> None:
    key = await add_article(quiet)
    before = await held(quiet, key)
    sent.bulk = sent.upserts = 0

    await change(quiet, key, views=41)

    after = await held(quiet, key)
    assert (sent.bulk, sent.upserts) == (0, 0)
    assert after.postgres > before.postgres
    assert (after.redis, after.views_cached) == (after.postgres, 41)
    assert (after.es_version, after.es_seq_no) == (before.es_version, before.es_seq_no)
    assert after.es_indexed_total == before.es_indexed_total
    assert after.faiss == before.faiss == before.postgres
    assert all(drift.clean for drift in await quiet.operations.verify(Articles))
    assert (await quiet.operations.outbox.status()).pending == 0


async def test_a_title_reaches_the_index_and_a_vector_reaches_faiss_each_alone(
    quiet: DataLayer, sent: Sent
) -> None:
    key = await add_article(quiet)
    before = await held(quiet, key)
    sent.bulk = sent.upserts = 0

    await change(quiet, key, title="scanner")
    renamed = await held(quiet, key)
    assert (sent.bulk, sent.upserts) == (1, 0)
    assert renamed.es_version == renamed.postgres == renamed.redis
    assert renamed.faiss == before.faiss

    await change(quiet, key, embedding=[0.0, 1.0, 0, 0])
    moved = await held(quiet, key)
    assert (sent.bulk, sent.upserts) == (1, 1)
    assert moved.faiss == moved.postgres == moved.redis
    assert moved.es_seq_no == renamed.es_seq_no
    await assert_projections_equal_postgres(quiet)
    assert all(drift.clean for drift in await quiet.operations.verify(Articles))


async def test_raw_sql_bumps_reach_redis_through_the_relay_and_nothing_else(
    quiet: DataLayer, sent: Sent
) -> None:
    """Trigger-only changes (no unit of work): the relay and this process's follower read
    them from the outbox, with the columns the trigger found changed."""
    keys = [await add_article(quiet) for _ in range(3)]
    before = {key: await held(quiet, key) for key in keys}
    sent.bulk = sent.upserts = 0

    await quiet.postgres.execute("UPDATE articles SET views = views + 1")
    await settle_everything(quiet)

    assert (sent.bulk, sent.upserts) == (0, 0)
    for key in keys:
        after = await held(quiet, key)
        assert (after.redis, after.views_cached) == (after.postgres, 1)
        assert after.es_seq_no == before[key].es_seq_no
        assert after.faiss == before[key].faiss
    await assert_projections_equal_postgres(quiet)
    # Only the events stay owed (to a process with subscribers): no backend is owed a row.
    assert set((await quiet.operations.outbox.status()).by_target) == {"events"}

    await quiet.postgres.execute("UPDATE articles SET title = 'renamed raw', views = views + 1")
    await settle_everything(quiet)
    assert (sent.bulk, sent.upserts) == (1, 0)  # one bulk request for the three documents
    await assert_projections_equal_postgres(quiet)


async def test_verify_compares_a_lagging_entry_by_content(quiet: DataLayer) -> None:
    """After a skipped update, Elasticsearch and FAISS hold an older version: that is clean
    while their content is the row's, stale as soon as it is not."""
    key = await add_article(quiet)
    first = await held(quiet, key)
    await change(quiet, key, views=7)
    assert all(drift.clean for drift in await quiet.operations.verify(Articles))

    alias = f"{quiet.config.elasticsearch.index_prefix}articles"
    await quiet.elasticsearch.index(  # same version, other content: a write gone wrong
        index=alias,
        id=key,
        document={"title": "tampered", "body": "jams", "tenant_id": "acme", "@key": key},
        version=first.es_version,
        version_type="external_gte",
        refresh=True,
    )
    await quiet.vectors.delete("articles", key)  # then the same version, another vector
    await quiet.vectors.upsert(
        "articles", key, [0.0, 0, 1.0, 0], {"tenant_id": "acme"}, version=first.faiss
    )
    drifts = {drift.target: drift for drift in await quiet.operations.verify(Articles)}
    assert drifts["elasticsearch"].stale == [key]
    assert drifts["faiss"].stale == [key]
    assert drifts["redis"].clean
    assert await quiet.operations.repair(Articles, list(drifts.values())) == 2
    await settle_everything(quiet)
    assert all(drift.clean for drift in await quiet.operations.verify(Articles))
    await assert_projections_equal_postgres(quiet)


async def test_the_capture_records_the_columns_each_update_changed(quiet: DataLayer) -> None:
    """Typed where equality is the value's, as text otherwise (json has no equality, and an
    interval of '1 day' equals '24 hours'), NULL where the key changed."""
    statements = [
        "CREATE TABLE scratch (id int PRIMARY KEY, doc json, span interval, tags text[], "
        "price numeric, at timestamptz, version bigint NOT NULL DEFAULT 0)",
        *capture_statements("scratch", "id"),
        "INSERT INTO scratch VALUES (1, '{\"a\": 1}', '1 day', '{x}', 1.5, now())",
        "UPDATE scratch SET doc = '{\"a\": 2}'",
        "UPDATE scratch SET span = '24 hours', price = 1.5",
        "UPDATE scratch SET tags = '{x,y}', at = at",
        "UPDATE scratch SET id = 2",
    ]
    async with quiet.postgres.acquire() as connection:
        for statement in statements:
            await connection.execute(statement)
        rows = await connection.fetch(
            "SELECT operation, key, changed FROM satellites_outbox "
            "WHERE entity = 'scratch' ORDER BY seq"
        )
    assert [(row["operation"], row["key"], row["changed"]) for row in rows] == [
        ("created", "1", None),
        ("updated", "1", ["doc", "version"]),
        ("updated", "1", ["span", "version"]),
        ("updated", "1", ["tags", "version"]),
        ("updated", "2", None),
        ("deleted", "1", None),
    ]
