"""The write path against the real servers: commit, then Redis, Elasticsearch and FAISS."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import select

from satellites_repo import (
    ConcurrencyError,
    DataEvent,
    DataLayer,
    NotFoundError,
    SatellitesError,
)
from satellites_repo.backends.redis import CachedRow, RedisBackend
from satellites_repo.model import Change, Operation, as_float32_vector
from tests.integration.models import Article, Articles, Tag, Tags

V1 = [1.0, 0.0, 0.0, 0.0]
V2 = [0.0, 1.0, 0.0, 0.0]
V3 = [0.0, 0.0, 1.0, 0.0]


class Recorder:
    def __init__(self) -> None:
        self.events: list[DataEvent] = []

    async def __call__(self, event: DataEvent) -> None:
        self.events.append(event)


@pytest.fixture
def events(layer: DataLayer) -> Recorder:
    recorder = Recorder()
    layer.events.subscribe_all(recorder)
    return recorder


def article(tenant: str = "acme", title: str = "Hello", **fields: Any) -> Article:
    fields.setdefault("body", "a body of text")
    fields.setdefault("embedding", V1)
    return Article(tenant_id=tenant, title=title, **fields)


async def create(layer: DataLayer, *entities: Article) -> list[Article]:
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add_many(entities)
        await uow.commit()
    return list(entities)


def cache_of(layer: DataLayer) -> RedisBackend:
    backend = layer.operations.backend("redis")
    assert isinstance(backend, RedisBackend)
    return backend


def cache_key(layer: DataLayer, entity_id: uuid.UUID) -> str:
    return f"{layer.config.redis.key_prefix}articles:{entity_id}"


async def raw_cached(layer: DataLayer, entity_id: uuid.UUID) -> bytes | None:
    raw = await layer.redis.get(cache_key(layer, entity_id))
    assert raw is None or isinstance(raw, bytes)
    return raw


def parsed(raw: bytes) -> CachedRow:
    row = CachedRow.parse(raw)
    assert row is not None, raw
    return row


async def cached(layer: DataLayer, entity_id: uuid.UUID) -> tuple[int, dict[str, Any]] | None:
    """(version, row) as Redis holds it, or None; a tombstone reads as (version, {})."""
    raw = await raw_cached(layer, entity_id)
    row = None if raw is None else CachedRow.parse(raw)
    if row is None:
        return None
    return row.version, orjson.loads(row.body) if row.body else {}


async def indexed(layer: DataLayer, entity_id: uuid.UUID) -> tuple[int, dict[str, Any]] | None:
    alias = f"{layer.config.elasticsearch.index_prefix}articles"
    response = await layer.elasticsearch.options(ignore_status=404).get(
        index=alias, id=str(entity_id)
    )
    if not response.body.get("found"):
        return None
    return int(response["_version"]), dict(response["_source"])


async def test_add_reaches_postgres_and_every_projection(
    layer: DataLayer, events: Recorder
) -> None:
    (entity,) = await create(layer, article(title="Quarterly report"))

    row = await layer.postgres.fetchrow(
        "SELECT title, version FROM articles WHERE id = $1", entity.id
    )
    assert row is not None
    assert (row["title"], row["version"]) == ("Quarterly report", 1)
    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert cache_entry[0] == 1
    assert cache_entry[1]["title"] == "Quarterly report"
    assert await indexed(layer, entity.id) == (
        1,
        {
            "title": "Quarterly report",
            "body": "a body of text",
            "tenant_id": "acme",
            "@key": str(entity.id),  # the sort tiebreaker every search uses
        },
    )
    vector = await layer.vectors.get("articles", str(entity.id))
    assert vector is not None
    assert vector.version == 1
    assert vector.metadata == {"tenant_id": "acme"}
    assert [(e.type, e.key, e.version, e.source) for e in events.events] == [
        ("articles.created", str(entity.id), 1, "postgres")
    ]
    assert events.events[0].payload["title"] == "Quarterly report"
    assert events.events[0].payload["id"] == str(entity.id)


async def test_attribute_change_on_a_loaded_entity_is_projected(
    layer: DataLayer, events: Recorder
) -> None:
    (entity,) = await create(layer, article())
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        loaded.title = "Renamed"
        loaded.embedding = V2
        await uow.commit()

    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert (cache_entry[0], cache_entry[1]["title"]) == (2, "Renamed")
    es_entry = await indexed(layer, entity.id)
    assert es_entry is not None
    assert (es_entry[0], es_entry[1]["title"]) == (2, "Renamed")
    matches = await layer.vectors.query("articles", V2, top_k=1)
    assert [(m.id, round(m.score, 5)) for m in matches] == [(str(entity.id), 1.0)]
    assert [(e.type, e.version) for e in events.events] == [
        ("articles.created", 1),
        ("articles.updated", 2),
    ]


async def test_update_through_the_plain_session_is_projected(layer: DataLayer) -> None:
    (entity,) = await create(layer, article())
    async with layer.unit_of_work() as uow:
        loaded = await uow.session.scalar(select(Article).where(Article.id == entity.id))
        assert loaded is not None
        loaded.views = 10
        await uow.commit()
    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert (cache_entry[0], cache_entry[1]["views"]) == (2, 10)


async def test_delete_leaves_no_cache_entry_no_document_no_vector(
    layer: DataLayer, events: Recorder
) -> None:
    first, second = await create(layer, article(), article(title="Other"))
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        await articles.delete(first.id)
        loaded = await articles.get(second.id)
        await uow.session.delete(loaded)
        await uow.commit()

    tombstones = []
    for gone in (first, second):
        tombstone = await cached(layer, gone.id)
        assert tombstone is not None
        assert tombstone[1] == {}
        assert tombstone[0] > gone.version  # a delete takes a version of its own
        tombstones.append((str(gone.id), tombstone[0]))
        assert await indexed(layer, gone.id) is None
        assert await layer.vectors.get("articles", str(gone.id)) is None
    async with layer.unit_of_work() as uow:
        assert await uow.repository(Articles).get(first.id) is None
    deleted = [(e.key, e.version) for e in events.events if e.type == "articles.deleted"]
    assert sorted(deleted) == sorted(tombstones)


async def test_deleting_a_missing_key_raises_not_found(layer: DataLayer) -> None:
    async with layer.unit_of_work() as uow:
        with pytest.raises(NotFoundError, match="Article"):
            await uow.repository(Articles).delete(uuid.uuid4())


async def test_leaving_without_commit_projects_nothing_and_publishes_nothing(
    layer: DataLayer, events: Recorder
) -> None:
    entity = article()
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(entity)
        uow.emit(DataEvent(type="custom.x", resource="x", key="1", payload={}, source="app"))
        await uow.flush()
    await _assert_no_trace(layer, entity, events)


async def test_an_exception_rolls_back_and_projects_nothing(
    layer: DataLayer, events: Recorder
) -> None:
    entity = article()

    async def fails_half_way() -> None:
        async with layer.unit_of_work() as uow:
            await uow.repository(Articles).add(entity)
            await uow.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fails_half_way()
    await _assert_no_trace(layer, entity, events)


async def test_explicit_rollback_projects_nothing(layer: DataLayer, events: Recorder) -> None:
    entity = article()
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(entity)
        await uow.flush()
        await uow.rollback()
        await uow.commit()
    await _assert_no_trace(layer, entity, events)


async def _assert_no_trace(layer: DataLayer, entity: Article, events: Recorder) -> None:
    assert entity.id is not None
    assert await layer.postgres.fetchval("SELECT count(*) FROM articles") == 0
    assert await cached(layer, entity.id) is None
    assert await indexed(layer, entity.id) is None
    assert await layer.vectors.count("articles") == 0
    assert events.events == []


async def test_uncommitted_reads_are_never_cached(layer: DataLayer) -> None:
    (entity,) = await create(layer, article(title="Committed"))
    await layer.redis.delete(cache_key(layer, entity.id))
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        loaded = await articles.get(entity.id)
        assert loaded is not None
        loaded.title = "Uncommitted"
        await uow.flush()
        uow.session.expunge(loaded)
        again = await articles.get(entity.id)
        assert again is not None
        assert again.title == "Uncommitted"
    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert cache_entry[1]["title"] == "Committed"


async def test_custom_events_are_published_after_commit_in_order(
    layer: DataLayer, events: Recorder
) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(Tags).add(Tag(id=1, name="news"))
        uow.emit(
            DataEvent(type="tags.promoted", resource="tags", key="1", payload={}, source="app")
        )
        assert events.events == []
        await uow.commit()
    assert [e.type for e in events.events] == ["tags.created", "tags.promoted"]


async def test_a_handler_that_queries_postgres_sees_the_committed_row(layer: DataLayer) -> None:
    seen: list[str | None] = []

    async def handler(event: DataEvent) -> None:
        seen.append(
            await layer.postgres.fetchval(
                "SELECT title FROM articles WHERE id = $1::uuid", event.key
            )
        )

    layer.events.subscribe("articles.created", handler)
    await create(layer, article(title="Visible"))
    assert seen == ["Visible"]


async def test_get_reads_from_the_cache_and_attaches_to_the_session(layer: DataLayer) -> None:
    (entity,) = await create(layer, article(title="Cached"))
    key = cache_key(layer, entity.id)
    raw = await raw_cached(layer, entity.id)
    assert raw is not None
    # Change only the cached copy: a hit must come from Redis, not from Postgres.
    poisoned = raw.replace(b'"title":"Cached"', b'"title":"From cache"')
    await layer.redis.set(key, poisoned)
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        assert loaded.title == "From cache"
        assert loaded in uow.session
        loaded.views = 3
        await uow.commit()
    assert await layer.postgres.fetchval("SELECT views FROM articles WHERE id=$1", entity.id) == 3


async def test_a_miss_reads_postgres_and_fills_the_cache(layer: DataLayer) -> None:
    (entity,) = await create(layer, article(title="Filled"))
    await layer.redis.delete(cache_key(layer, entity.id))
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        assert loaded.title == "Filled"
    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert (cache_entry[0], cache_entry[1]["title"]) == (1, "Filled")


async def test_a_row_cached_in_another_shape_is_a_miss_and_is_replaced(layer: DataLayer) -> None:
    """A row cached before a migration added ``views`` (another fingerprint, the column
    absent): never an entity whose missing attribute raises, but a read from Postgres, and
    the fill replaces the old shape at the same version."""
    (entity,) = await create(layer, article(title="Shaped", views=7))
    current = parsed(await raw_cached(layer, entity.id) or b"")
    old_body = orjson.dumps({k: v for k, v in orjson.loads(current.body).items() if k != "views"})
    old_shape = CachedRow(current.version, "0ld5hape0000", old_body)
    assert old_shape.fingerprint != current.fingerprint
    await layer.redis.set(cache_key(layer, entity.id), old_shape.value())
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        assert (loaded.title, loaded.views) == ("Shaped", 7)
    replaced = parsed(await raw_cached(layer, entity.id) or b"")
    assert (replaced.version, replaced.fingerprint) == (current.version, current.fingerprint)
    assert orjson.loads(replaced.body)["views"] == 7


async def test_vectors_are_cached_packed_and_read_back_exactly(layer: DataLayer) -> None:
    inexact = [0.1, -0.2, 0.3, 0.7]  # none of them a float32 exactly
    stored = as_float32_vector(inexact, len(inexact))
    (entity,) = await create(layer, article(embedding=inexact))
    row = parsed(await raw_cached(layer, entity.id) or b"")
    assert isinstance(orjson.loads(row.body)["embedding"], str)  # base64 float32
    assert layer.operations.spec(Articles).codec.loads(row.body)["embedding"] == stored
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        assert loaded.embedding == stored


async def test_get_many_keeps_the_input_order(layer: DataLayer) -> None:
    entities = await create(layer, *(article(title=f"n{i}") for i in range(6)))
    await layer.redis.delete(cache_key(layer, entities[2].id))
    missing = uuid.uuid4()
    wanted = [entities[4].id, missing, entities[2].id, entities[0].id, entities[4].id]
    async with layer.unit_of_work() as uow:
        found = await uow.repository(Articles).get_many(wanted)
    assert [e.title for e in found] == ["n4", "n2", "n0", "n4"]


async def test_a_slow_reader_cannot_put_an_older_version_back(layer: DataLayer) -> None:
    (entity,) = await create(layer, article(title="v1"))
    first = entity.version
    async with layer.unit_of_work() as uow:
        stale_row = await raw_cached(layer, entity.id)
        assert stale_row is not None
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        loaded.title = "v2"
        loaded.embedding = [0.0, 1.0, 0.0, 0.0]  # so FAISS, which holds no title, gets it too
        await uow.commit()
        second = loaded.version
    assert second > first

    # The slow reader read the first version before the update and writes it back late;
    # a replayed change of that version reaches every projection again.
    spec = layer.operations.spec(Articles)
    stale_body = parsed(stale_row).body
    await cache_of(layer).fill(spec, [(str(entity.id), first, stale_body)], time.monotonic())
    stale_payload = spec.codec.payload_of_values(spec.codec.loads(stale_body))
    stale = Change("articles", str(entity.id), Operation.UPDATED, first, stale_payload)
    for backend in layer.operations.backends:
        await backend.apply([stale])  # skipped as stale, not an error
    cache_entry = await cached(layer, entity.id)
    es_entry = await indexed(layer, entity.id)
    assert cache_entry is not None
    assert es_entry is not None
    assert (cache_entry[0], cache_entry[1]["title"]) == (second, "v2")
    assert (es_entry[0], es_entry[1]["title"]) == (second, "v2")
    vector = await layer.vectors.get("articles", str(entity.id))
    assert vector is not None
    assert vector.version == second


async def test_cache_writes_load_the_guard_again_after_redis_forgot_it(layer: DataLayer) -> None:
    """Writes call the guard by digest (EVALSHA) without asking Redis first whether it
    knows the script: after a SCRIPT FLUSH (or a restart) they load it and still land."""
    (first,) = await create(layer, article(title="before"))
    await layer.redis.script_flush()
    (second,) = await create(layer, article(title="after"))
    entry = await cached(layer, second.id)
    assert entry is not None
    assert (entry[0], entry[1]["title"]) == (second.version, "after")

    await layer.redis.script_flush()
    stale = Change("articles", str(first.id), Operation.UPDATED, first.version, {"title": "old"})
    await cache_of(layer).apply([dataclasses.replace(stale, version=first.version - 1)])
    entry = await cached(layer, first.id)
    assert entry is not None
    assert (entry[0], entry[1]["title"]) == (first.version, "before")  # still guarded


async def test_a_slow_reader_cannot_resurrect_a_deleted_row(layer: DataLayer) -> None:
    (entity,) = await create(layer, article())
    raw = await raw_cached(layer, entity.id)
    assert raw is not None
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).delete(entity.id)
        await uow.commit()
    spec = layer.operations.spec(Articles)
    body = parsed(raw).body
    await cache_of(layer).fill(spec, [(str(entity.id), entity.version, body)], time.monotonic())
    tombstone = await cached(layer, entity.id)
    assert tombstone is not None
    assert tombstone[1] == {}
    assert tombstone[0] > entity.version


async def test_two_concurrent_updates_give_one_concurrency_error(layer: DataLayer) -> None:
    (entity,) = await create(layer, article(title="start"))
    both_loaded = asyncio.Barrier(2)

    async def update(title: str) -> str:
        async with layer.unit_of_work() as uow:
            loaded = await uow.repository(Articles).get(entity.id)
            assert loaded is not None
            await both_loaded.wait()
            loaded.title = title
            try:
                await uow.commit()
            except ConcurrencyError:
                return "conflict"
            return "committed"

    outcomes = await asyncio.gather(update("first"), update("second"))
    assert sorted(outcomes) == ["committed", "conflict"]
    row = await layer.postgres.fetchrow(
        "SELECT title, version FROM articles WHERE id=$1", entity.id
    )
    assert row is not None
    assert row["version"] == 2
    cache_entry = await cached(layer, entity.id)
    es_entry = await indexed(layer, entity.id)
    assert cache_entry is not None
    assert es_entry is not None
    assert (cache_entry[0], cache_entry[1]["title"]) == (2, row["title"])
    assert (es_entry[0], es_entry[1]["title"]) == (2, row["title"])


async def test_search_filters_by_tenant_and_hydrates_entities(layer: DataLayer) -> None:
    await create(
        layer,
        article("acme", "Invoice overdue", body="pay the invoice"),
        article("acme", "Holiday plan", body="beach"),
        article("globex", "Invoice template", body="invoice layout"),
    )
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        page = await articles.search("invoice", filters={"tenant_id": "acme"})
        assert page.total == 1
        assert [hit.entity.title for hit in page.hits] == ["Invoice overdue"]
        assert page.hits[0].score > 0
        assert "<em>" in " ".join(page.hits[0].highlights.get("title", []))
        everyone = await articles.search("invoice")
        assert everyone.total == 2
        raw = await articles.search({"match": {"body": "beach"}})
        assert [hit.entity.title for hit in raw.hits] == ["Holiday plan"]


# similar and hybrid: tests/integration/test_vector_engines.py, against both engines.


@pytest.mark.parametrize(
    ("embedding", "problem"),
    [([1.0, 2.0], "must have 4 numbers"), ([float("nan"), 0, 0, 1], "NaN"), ([0.0] * 4, "zeros")],
)
async def test_bad_vectors_fail_before_commit(
    layer: DataLayer, events: Recorder, embedding: list[float], problem: str
) -> None:
    async with layer.unit_of_work() as uow:
        with pytest.raises(ValueError, match=problem):
            await uow.repository(Articles).add(article(embedding=embedding))
    assert await layer.postgres.fetchval("SELECT count(*) FROM articles") == 0
    assert events.events == []


async def test_vectors_are_stored_as_exactly_the_float32_values_given(layer: DataLayer) -> None:
    """Vectors travel as array text (shortest float32 decimals): Postgres must hold the
    very float32 values, extreme magnitudes and signed zero included, on INSERT and UPDATE."""

    async def stored(entity_id: uuid.UUID) -> bytes:
        values = await layer.postgres.fetchval(
            "SELECT embedding FROM articles WHERE id = $1", entity_id
        )
        return np.asarray(values, np.float32).tobytes()

    given = [1 / 3, -3.4028234e38, 1.4e-45, -0.0]
    (entity,) = await create(layer, article(embedding=given))
    assert await stored(entity.id) == np.asarray(given, np.float32).tobytes()
    async with layer.unit_of_work() as uow:
        loaded = await uow.repository(Articles).get(entity.id)
        assert loaded is not None
        loaded.embedding = [0.1, 0.2, 0.3, 0.4]
        await uow.commit()
    assert await stored(entity.id) == np.asarray([0.1, 0.2, 0.3, 0.4], np.float32).tobytes()


async def test_a_bad_vector_set_after_add_fails_the_commit_cleanly(
    layer: DataLayer, events: Recorder
) -> None:
    entity = article(id=uuid.uuid4())
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(entity)
        entity.embedding = [1.0, float("inf"), 0.0, 0.0]
        with pytest.raises(ValueError, match="NaN or infinity"):
            await uow.commit()
    await _assert_no_trace(layer, entity, events)


async def test_unknown_filter_fields_are_rejected(layer: DataLayer) -> None:
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        with pytest.raises(ValueError, match="body"):
            await articles.search("x", filters={"body": "y"})
        with pytest.raises(ValueError, match="title"):
            await articles.similar(V1, filters={"title": "y"})


async def test_a_failing_projection_never_fails_the_commit(
    layer: DataLayer, events: Recorder
) -> None:
    alias = f"{layer.config.elasticsearch.index_prefix}articles"
    await layer.elasticsearch.indices.close(index=alias)
    (entity,) = await create(layer, article(title="Still committed"))
    await layer.operations.settled()
    assert await layer.postgres.fetchval("SELECT count(*) FROM articles") == 1
    owed = await layer.postgres.fetchrow(
        "SELECT key, pending, last_error FROM satellites_outbox WHERE entity = 'articles'"
    )
    assert owed is not None
    assert (owed["key"], owed["pending"]) == (str(entity.id), ["elasticsearch"])
    assert "elasticsearch" in owed["last_error"]
    assert (await layer.operations.outbox.status()).by_target == {"elasticsearch": 1}
    cache_entry = await cached(layer, entity.id)
    assert cache_entry is not None
    assert [e.type for e in events.events] == ["articles.created"]


async def test_list_count_and_keyset_pages(layer: DataLayer) -> None:
    await create(layer, *(article("acme", f"t{i:02d}", views=i) for i in range(7)))
    await create(layer, article("globex", "elsewhere"))
    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        assert await articles.count(Article.tenant_id == "acme") == 7
        top = await articles.list(
            Article.tenant_id == "acme", order_by=Article.views.desc(), limit=2, offset=1
        )
        assert [a.views for a in top] == [5, 4]
        seen: list[int] = []
        cursor = None
        while True:
            page = await articles.page(
                Article.tenant_id == "acme", order_by=Article.views, limit=3, cursor=cursor
            )
            seen.extend(a.views for a in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(range(7))
        with pytest.raises(ValueError, match="cursor"):
            await articles.page(order_by=Article.views, cursor="not-a-cursor")


async def test_errors_share_the_library_root(layer: DataLayer) -> None:
    async with layer.unit_of_work() as uow:
        with pytest.raises(SatellitesError):
            await uow.repository(Articles).delete(uuid.uuid4())
