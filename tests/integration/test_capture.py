"""Capture in the database: every committed write on a projected table reaches every
projection, whatever issued it, and replays can only ever move a projection to what
Postgres holds now."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.migrate import create_tables
from tests.integration.conftest import subprocess_environment
from tests.integration.models import (
    CAPTURE_REPOSITORIES,
    Article,
    Articles,
    Customer,
    IntegrationModel,
    SupportTicket,
    SupportTickets,
)
from tests.integration.stores import (
    assert_projections_equal_postgres,
    commit_articles,
    settle_everything,
)


@pytest.fixture
async def quiet(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """Articles and tickets, relay off: a test decides when owed rows are delivered."""
    await create_tables(config, IntegrationModel.metadata)
    quiet_config = config.replace(outbox=config.outbox.replace(relay=False))
    async with DataLayer(quiet_config, repositories=CAPTURE_REPOSITORIES) as layer:
        yield layer


async def ticket_state(layer: DataLayer) -> dict[str, dict[str, Any]]:
    """What Postgres, Redis and Elasticsearch hold for tickets: key -> version, per store."""
    rows = await layer.postgres.fetch("SELECT id, version FROM support_tickets")
    truth = {row["id"]: row["version"] for row in rows}
    prefix = f"{layer.config.redis.key_prefix}support_tickets:"
    cached: dict[str, int] = {}
    async for name in layer.redis.scan_iter(match=f"{prefix}*"):
        value: Any = await layer.redis.get(name) or b""
        version, _, body = value.partition(b":")
        if body:
            cached[name.decode().removeprefix(prefix)] = int(version)
    alias = f"{layer.config.elasticsearch.index_prefix}support-tickets"
    await layer.elasticsearch.indices.refresh(index=alias)
    found = await layer.elasticsearch.search(index=alias, size=1000, version=True)
    indexed = {hit["_id"]: hit["_version"] for hit in found["hits"]["hits"]}
    return {"postgres": truth, "redis": cached, "elasticsearch": indexed}


async def assert_tickets_equal_postgres(layer: DataLayer) -> None:
    state = await ticket_state(layer)
    assert state["redis"] == state["postgres"]
    assert state["elasticsearch"] == state["postgres"]


async def seed_tickets(layer: DataLayer, count: int, customer: int = 1) -> list[SupportTicket]:
    async with layer.unit_of_work() as uow:
        uow.session.add(Customer(id=customer, name=f"customer {customer}"))
        tickets = [
            SupportTicket(id=f"c{customer}-t{n}", customer_id=customer, subject=f"printer {n}")
            for n in range(count)
        ]
        added = await uow.repository(SupportTickets).add_many(tickets)
        await uow.commit()
    await layer.operations.settled()
    return added


async def search_titles(layer: DataLayer, text: str) -> list[str]:
    async with layer.unit_of_work() as uow:
        page = await uow.repository(Articles).search(text, limit=100)
        return sorted(hit.entity.title for hit in page.hits)


async def test_bulk_update_and_delete_through_the_session_are_projected(
    layer: DataLayer,
) -> None:
    created = await commit_articles(layer, 30)
    async with layer.unit_of_work() as uow:
        result = await uow.session.execute(
            update(Article).where(Article.title.like("title 1%")).values(title="renamed")
        )
        await uow.session.execute(delete(Article).where(Article.title == "title 2"))
        await uow.commit()
    await layer.operations.settled()
    assert result.rowcount == 11  # type: ignore[attr-defined]

    await assert_projections_equal_postgres(layer)
    assert await search_titles(layer, "renamed") == ["renamed"] * 11
    gone = next(entity for entity in created if entity.title == "title 2")
    async with layer.unit_of_work() as uow:
        assert await uow.repository(Articles).get(gone.id) is None


async def test_upsert_through_the_session_is_projected(layer: DataLayer) -> None:
    (entity,) = await commit_articles(layer, 1)
    statement = insert(Article).values(
        id=entity.id, tenant_id="acme", title="upserted", body="b", embedding=[0, 0, 1.0, 0]
    )
    async with layer.unit_of_work() as uow:
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[Article.id], set_={"title": statement.excluded.title}
            )
        )
        await uow.commit()
    await layer.operations.settled()
    await assert_projections_equal_postgres(layer)
    assert await search_titles(layer, "upserted") == ["upserted"]


async def test_raw_sql_on_the_native_pool_is_projected(quiet: DataLayer) -> None:
    await commit_articles(quiet, 5)
    await quiet.postgres.execute("UPDATE articles SET title = 'from psql' WHERE views = 0")
    await quiet.postgres.execute(
        "INSERT INTO articles (id, tenant_id, title, body, views, embedding) "
        "VALUES (gen_random_uuid(), 'acme', 'inserted raw', 'b', 1, $1)",
        [0.0, 1.0, 0.0, 0.0],
    )
    await quiet.postgres.execute(
        "DELETE FROM articles WHERE id = "
        "(SELECT id FROM articles WHERE title = 'from psql' ORDER BY id LIMIT 1)"
    )
    await settle_everything(quiet)
    await assert_projections_equal_postgres(quiet)
    assert len(await search_titles(quiet, "psql")) == 4
    assert await search_titles(quiet, "inserted") == ["inserted raw"]


async def test_a_cascade_removes_the_children_from_every_projection(quiet: DataLayer) -> None:
    await seed_tickets(quiet, 5, customer=1)
    await seed_tickets(quiet, 2, customer=2)
    async with quiet.unit_of_work() as uow:
        await uow.session.execute(delete(Customer).where(Customer.id == 1))
        await uow.commit()
    await quiet.operations.settled()
    state = await ticket_state(quiet)
    assert sorted(state["postgres"]) == ["c2-t0", "c2-t1"]
    await assert_tickets_equal_postgres(quiet)
    async with quiet.unit_of_work() as uow:
        assert await uow.repository(SupportTickets).get("c1-t0") is None


async def test_delete_then_recreate_under_the_same_key_is_projected(quiet: DataLayer) -> None:
    key = uuid.uuid4()
    for title in ("first life", "second life"):
        async with quiet.unit_of_work() as uow:
            await uow.repository(Articles).add(
                Article(id=key, tenant_id="acme", title=title, body="b", embedding=[1.0, 0, 0, 0])
            )
            await uow.commit()
        async with quiet.unit_of_work() as uow:
            if title == "first life":
                await uow.repository(Articles).delete(key)
                await uow.commit()
    await quiet.operations.settled()
    await quiet.operations.follow()
    await assert_projections_equal_postgres(quiet)
    assert await search_titles(quiet, "life") == ["second life"]
    vector = await quiet.vectors.get("articles", str(key))
    assert vector is not None
    # The same through raw SQL: the old row's tombstones never block the new one.
    await quiet.postgres.execute("DELETE FROM articles WHERE id = $1", key)
    await quiet.postgres.execute(
        "INSERT INTO articles (id, tenant_id, title, body, views, embedding) "
        "VALUES ($1, 'acme', 'third life', 'b', 0, $2)",
        key,
        [0.0, 0.0, 0.0, 1.0],
    )
    await settle_everything(quiet)
    await assert_projections_equal_postgres(quiet)
    assert await search_titles(quiet, "life") == ["third life"]


async def test_a_primary_key_change_removes_the_old_key_everywhere(quiet: DataLayer) -> None:
    (entity,) = await commit_articles(quiet, 1)
    new_key = uuid.uuid4()
    await quiet.postgres.execute("UPDATE articles SET id = $1 WHERE id = $2", new_key, entity.id)
    await settle_everything(quiet)
    await assert_projections_equal_postgres(quiet)
    assert await quiet.vectors.get("articles", str(entity.id)) is None
    assert await quiet.vectors.get("articles", str(new_key)) is not None
    await seed_tickets(quiet, 1)
    async with quiet.unit_of_work() as uow:
        await uow.session.execute(update(SupportTicket).values(id="renamed"))
        await uow.commit()
    await quiet.operations.settled()
    state = await ticket_state(quiet)
    assert list(state["postgres"]) == ["renamed"]
    await assert_tickets_equal_postgres(quiet)


async def test_truncate_of_a_projected_table_is_refused(layer: DataLayer) -> None:
    await commit_articles(layer, 2)
    with pytest.raises(asyncpg.FeatureNotSupportedError, match="TRUNCATE of articles"):
        await layer.postgres.execute("TRUNCATE articles")
    assert await layer.postgres.fetchval("SELECT count(*) FROM articles") == 2


async def test_an_owed_change_replayed_after_the_delete_and_its_tombstones_resurrects_nothing(
    quiet: DataLayer,
) -> None:
    (ticket,) = await seed_tickets(quiet, 1)
    # Outage: an update is owed (not due yet), then the row is deleted and projected.
    await quiet.postgres.execute("UPDATE support_tickets SET subject = 'stale copy'")
    await quiet.postgres.execute(
        "UPDATE satellites_outbox SET next_attempt_at = now() + interval '1 hour' "
        "WHERE cardinality(pending) > 0"
    )
    await quiet.postgres.execute("DELETE FROM support_tickets")
    await quiet.operations.relay.drain()  # the delete only: the update is not due
    assert (await ticket_state(quiet))["redis"] == {}
    # Past the tombstones' lifetimes (tombstone_ttl=1, index.gc_deletes=0s).
    await asyncio.sleep(1.5)
    alias = f"{quiet.config.elasticsearch.index_prefix}support-tickets"
    await quiet.elasticsearch.indices.flush(index=alias)
    await settle_everything(quiet)

    state = await ticket_state(quiet)
    assert state == {"postgres": {}, "redis": {}, "elasticsearch": {}}
    async with quiet.unit_of_work() as uow:
        assert await uow.repository(SupportTickets).get(ticket.id) is None
        assert (await uow.repository(SupportTickets).search("stale")).total == 0


async def test_a_reader_slower_than_the_tombstone_cannot_put_a_deleted_row_back(
    quiet: DataLayer,
) -> None:
    (ticket,) = await seed_tickets(quiet, 1)
    spec = quiet.operations.spec(SupportTickets)
    cache = quiet.operations.backend("redis")
    assert isinstance(cache, RedisBackend)
    read_at = time.monotonic()
    (row,) = await cache.read(spec, [ticket.id])
    assert row is not None
    async with quiet.unit_of_work() as uow:
        await uow.repository(SupportTickets).delete(ticket.id)
        await uow.commit()
    await quiet.operations.settled()
    await asyncio.sleep(1.5)  # the tombstone (tombstone_ttl=1) is gone
    await cache.fill(spec, [(ticket.id, row.version, row.body)], read_at)
    assert (await ticket_state(quiet))["redis"] == {}


async def test_killed_right_after_a_bulk_update_commit_every_projection_converges(
    quiet: DataLayer, config: DataLayerConfig
) -> None:
    await commit_articles(quiet, 20)
    crashed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.crash_after_commit",
        "0",
        "bulk-update",
        env=subprocess_environment(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(crashed.communicate(), timeout=120)
    assert crashed.returncode == -9, stderr.decode()
    assert await quiet.postgres.fetchval("SELECT count(*) FROM articles WHERE title = 'bulk'") == 20
    await settle_everything(quiet)
    await assert_projections_equal_postgres(quiet)
    assert await search_titles(quiet, "bulk") == ["bulk"] * 20


async def test_outbox_retry_leaves_rows_a_relay_holds(quiet: DataLayer) -> None:
    received: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        received.append(event)

    quiet.events.subscribe_all(record)  # so this relay publishes the events it delivers
    await quiet.postgres.execute(
        "INSERT INTO articles (id, tenant_id, title, body, views, embedding) "
        "SELECT gen_random_uuid(), 'acme', 't' || n, 'b', 0, NULL FROM generate_series(1, 4) n"
    )
    store = quiet.operations.outbox
    held = await store.claim(2, lease_seconds=600)
    assert len(held) == 2
    await quiet.postgres.execute(
        "UPDATE satellites_outbox SET dead_at = now() WHERE seq = "
        "(SELECT max(seq) FROM satellites_outbox)"
    )
    assert await store.retry_dead() == 1
    await store.retry_now()
    due = await quiet.postgres.fetch(
        "SELECT seq FROM satellites_outbox WHERE next_attempt_at <= now() ORDER BY seq"
    )
    assert {row["seq"] for row in due}.isdisjoint(record.seq for record in held)
    assert len(due) == 2
    await quiet.operations.relay.drain()
    assert (await store.status()).pending == 2  # the leased ones wait for their lease


async def test_a_boolean_filter_sent_as_text_is_typed_or_refused(quiet: DataLayer) -> None:
    await seed_tickets(quiet, 3)
    async with quiet.unit_of_work() as uow:
        tickets = uow.repository(SupportTickets)
        assert (await tickets.search("printer", filters={"open": "False"})).total == 0
        assert (await tickets.search("printer", filters={"open": "true"})).total == 3
        with pytest.raises(ValueError, match="filter 'open' of SupportTicket: 'maybe'"):
            await tickets.search("printer", filters={"open": "maybe"})
        with pytest.raises(ValueError, match="filter 'tenant_id' of Article"):
            await uow.repository(Articles).similar([1.0, 0, 0, 0], filters={"tenant_id": 5})
