"""Never lose a projection: the outbox, the relay and the FAISS follower under faults."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from satellites_repo.backends.redis import CachedRow
from satellites_repo.migrate import create_tables
from tests.integration.conftest import subprocess_environment
from tests.integration.models import REPOSITORIES, Articles, IntegrationModel
from tests.integration.stores import (
    article,
    assert_projections_equal_postgres,
    cache_versions,
    commit_articles,
    postgres_versions,
    search_versions,
    settle_everything,
    vector_versions,
)
from tests.integration.tcp_proxy import TcpProxy


def relay_off(config: DataLayerConfig) -> DataLayerConfig:
    return config.replace(outbox=config.outbox.replace(relay=False))


@pytest.fixture
async def quiet_layer(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """A layer whose background relay is off, so a test decides when the relay runs."""

    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(relay_off(config), repositories=REPOSITORIES) as layer:
        yield layer


async def test_a_commit_settles_its_outbox_rows(layer: DataLayer) -> None:
    await commit_articles(layer, 3)
    rows = await layer.postgres.fetch("SELECT pending, done_at, attempts FROM satellites_outbox")
    assert len(rows) == 3
    assert all(row["pending"] == [] and row["done_at"] is not None for row in rows)
    status = await layer.operations.outbox.status()
    assert (status.pending, status.dead, status.done) == (0, 0, 3)


async def test_a_rollback_writes_no_outbox_row(layer: DataLayer) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(1))
        uow.emit(DataEvent(type="x.y", resource="x", key="1", payload={}, source="app"))
        await uow.flush()
    assert await layer.postgres.fetchval("SELECT count(*) FROM satellites_outbox") == 0


async def test_replayed_events_keep_their_ids(quiet_layer: DataLayer) -> None:
    seen: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        seen.append(event)

    quiet_layer.events.subscribe_all(record)
    async with quiet_layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(1))
        uow.emit(
            DataEvent(
                type="billing.due", resource="invoices", key="9", payload={"n": 1}, source="app"
            )
        )
        await uow.commit()
    await quiet_layer.operations.settled()
    first = [(event.id, event.type) for event in seen]
    # Owe the events again, as if the publishing process had died before settling.
    await quiet_layer.postgres.execute("UPDATE satellites_outbox SET pending = '{events}'")
    await settle_everything(quiet_layer)
    replayed = [(event.id, event.type) for event in seen[len(first) :]]
    assert [kind for _, kind in first] == ["articles.created", "billing.due"]
    assert replayed == first
    assert seen[-1].payload == {"n": 1}


async def test_killed_after_commit_the_relay_delivers_everything(
    quiet_layer: DataLayer, config: DataLayerConfig
) -> None:
    environment = subprocess_environment(
        config,
        SATELLITES_FAISS__INDEX_PATH=str(Path(config.faiss.index_path) / "crashed"),
        SATELLITES_OUTBOX__RELAY="false",
    )
    crashed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.crash_after_commit",
        "25",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await crashed.communicate()
    assert crashed.returncode == -signal.SIGKILL, stderr.decode()
    committed = stdout.decode().split()
    assert len(committed) == 25
    truth = await postgres_versions(quiet_layer)
    assert sorted(truth) == sorted(committed)
    assert await cache_versions(quiet_layer, committed) == {}
    assert await search_versions(quiet_layer) == {}

    received: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        received.append(event)

    quiet_layer.events.subscribe_all(record)  # events are relayed where they have subscribers
    await settle_everything(quiet_layer)

    await assert_projections_equal_postgres(quiet_layer)
    assert (await quiet_layer.operations.outbox.status()).pending == 0
    assert sorted(event.key for event in received) == sorted(committed)


@pytest.fixture
async def proxied(config: DataLayerConfig) -> AsyncIterator[dict[str, TcpProxy]]:
    es_url = config.elasticsearch.hosts[0].rsplit(":", 1)
    proxies = {
        "redis": TcpProxy(config.redis.host, config.redis.port),
        "elasticsearch": TcpProxy(es_url[0].split("//")[1], int(es_url[1])),
    }
    for proxy in proxies.values():
        await proxy.start()
    yield proxies
    for proxy in proxies.values():
        await proxy.close()


@pytest.fixture
async def proxied_layer(
    config: DataLayerConfig, proxied: dict[str, TcpProxy]
) -> AsyncIterator[DataLayer]:

    await create_tables(config, IntegrationModel.metadata)
    through_proxies = relay_off(config).replace(
        redis=config.redis.replace(host="127.0.0.1", port=proxied["redis"].port, timeout=2.0),
        elasticsearch=config.elasticsearch.replace(
            hosts=[f"http://127.0.0.1:{proxied['elasticsearch'].port}"], timeout=2.0
        ),
    )
    async with DataLayer(through_proxies, repositories=REPOSITORIES) as layer:
        yield layer


async def test_elasticsearch_down_for_500_commits_then_catching_up(
    proxied_layer: DataLayer, proxied: dict[str, TcpProxy]
) -> None:
    layer = proxied_layer
    first = await commit_articles(layer, 20, batch=20)
    await proxied["elasticsearch"].cut()
    for n in range(500):
        async with layer.unit_of_work() as uow:
            if n % 5 == 0:
                target = await uow.repository(Articles).get(first[n % 20].id)
                assert target is not None
                target.views += 1
            else:
                await uow.repository(Articles).add(article(n))
            await uow.commit()
    await layer.operations.settled()
    status = await layer.operations.outbox.status()
    assert status.by_target == {"elasticsearch": 400}  # the 100 view bumps are not its
    assert await layer.postgres.fetchval("SELECT count(*) FROM articles") == 420

    await proxied["elasticsearch"].restore()
    await settle_everything(layer)

    await assert_projections_equal_postgres(layer)
    assert (await layer.operations.outbox.status()).pending == 0


async def test_redis_down_reads_fall_back_and_writes_commit(
    proxied_layer: DataLayer, proxied: dict[str, TcpProxy]
) -> None:
    layer = proxied_layer
    (kept,) = await commit_articles(layer, 1)
    await proxied["redis"].cut()

    async with layer.unit_of_work() as uow:
        articles = uow.repository(Articles)
        loaded = await articles.get(kept.id)
        assert loaded is not None
        assert loaded.title == kept.title
        loaded.title = "changed while Redis was down"
        await articles.add(article(99))
        await uow.commit()
    await layer.operations.settled()
    assert (await layer.operations.outbox.status()).by_target == {"redis": 2}

    await proxied["redis"].restore()
    await settle_everything(layer)
    await assert_projections_equal_postgres(layer)
    async with layer.unit_of_work() as uow:
        reloaded = await uow.repository(Articles).get(kept.id)
        assert reloaded is not None
        assert reloaded.title == "changed while Redis was down"


async def test_two_relays_on_2000_pending_rows(
    proxied_layer: DataLayer, proxied: dict[str, TcpProxy], config: DataLayerConfig
) -> None:
    await proxied["elasticsearch"].cut()
    await proxied["redis"].cut()
    await commit_articles(proxied_layer, 2000, batch=250)
    assert (await proxied_layer.operations.outbox.status()).pending == 2000
    await proxied["elasticsearch"].restore()
    await proxied["redis"].restore()
    await proxied_layer.operations.outbox.retry_now()

    small_batches = relay_off(config).replace(
        outbox=relay_off(config).outbox.replace(batch_size=100)
    )
    async with DataLayer(small_batches, repositories=REPOSITORIES) as second:
        claimed = await asyncio.gather(
            proxied_layer.operations.relay.drain(), second.operations.relay.drain()
        )

    assert sum(claimed) == 2000
    assert all(count > 0 for count in claimed)
    attempts = await proxied_layer.postgres.fetch(
        "SELECT attempts, count(*) AS n FROM satellites_outbox GROUP BY attempts"
    )
    assert [(row["attempts"], row["n"]) for row in attempts] == [(2, 2000)]
    await proxied_layer.operations.follow()
    await assert_projections_equal_postgres(proxied_layer)


async def test_a_row_that_keeps_failing_is_dead_lettered(quiet_layer: DataLayer) -> None:
    alias = f"{quiet_layer.config.elasticsearch.index_prefix}articles"
    await quiet_layer.elasticsearch.indices.close(index=alias)
    await commit_articles(quiet_layer, 1)
    for _ in range(quiet_layer.config.outbox.max_attempts):
        await quiet_layer.operations.outbox.retry_now()
        await quiet_layer.operations.relay.drain()
    status = await quiet_layer.operations.outbox.status()
    assert (status.pending, status.dead) == (0, 1)
    error = await quiet_layer.postgres.fetchval("SELECT last_error FROM satellites_outbox")
    assert "elasticsearch" in error

    await quiet_layer.elasticsearch.indices.open(index=alias)
    assert await quiet_layer.operations.outbox.retry_dead() == 1
    await quiet_layer.operations.relay.drain()
    await assert_projections_equal_postgres(quiet_layer)


async def test_another_instance_follows_vector_changes(
    layer: DataLayer, config: DataLayerConfig, tmp_path: Path
) -> None:
    other_config = config.replace(faiss=config.faiss.replace(index_path=tmp_path / "other"))
    async with DataLayer(other_config, repositories=REPOSITORIES) as other:
        (created,) = await commit_articles(layer, 1)
        found = await _eventually(lambda: other.vectors.get("articles", str(created.id)))
        assert found is not None
        assert found.version == 1
        async with layer.unit_of_work() as uow:
            await uow.repository(Articles).delete(created.id)
            await uow.commit()
        gone = await _eventually(
            lambda: _absent(other, str(created.id)), until=lambda value: value is True
        )
        assert gone is True


async def _absent(layer: DataLayer, key: str) -> bool:
    return await layer.vectors.get("articles", key) is None


async def _eventually(
    probe: Any, until: Any = lambda value: value is not None, attempts: int = 100
) -> Any:
    """Poll ``probe`` until ``until`` holds (bounded); returns the last value."""
    value = None
    for _ in range(attempts):
        value = await probe()
        if until(value):
            return value
        await asyncio.sleep(0.1)
    return value


def _truncate_every_file(folder: Path) -> int:
    files = [path for path in folder.rglob("*") if path.is_file()]
    for path in files:
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    return len(files)


async def test_a_corrupt_snapshot_is_rebuilt_from_postgres(config: DataLayerConfig) -> None:

    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(config, repositories=REPOSITORIES) as first:
        created = await commit_articles(first, 30)
    assert _truncate_every_file(Path(config.faiss.index_path)) > 0

    async with DataLayer(config, repositories=REPOSITORIES) as restarted:
        assert await restarted.vectors.count("articles") == 30
        keys = [str(entity.id) for entity in created]
        assert await vector_versions(restarted, keys) == {
            str(entity.id): entity.version for entity in created
        }


async def test_a_restart_follows_from_the_snapshot_position(config: DataLayerConfig) -> None:

    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(config, repositories=REPOSITORIES) as first:
        await commit_articles(first, 5)
    # Changes made while no instance of this FAISS index was running.
    async with DataLayer(
        config.replace(faiss=config.faiss.replace(index_path=Path(config.faiss.index_path) / "x")),
        repositories=REPOSITORIES,
    ) as elsewhere:
        await commit_articles(elsewhere, 7)
    async with DataLayer(config, repositories=REPOSITORIES) as restarted:
        assert await restarted.vectors.count("articles") == 12


async def test_a_failed_local_vector_apply_is_followed_later(
    layer: DataLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = layer.vectors.upsert_many
    calls = 0

    async def fails_once(*args: Any, **kwargs: Any) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("FAISS hiccup")
        return await original(*args, **kwargs)

    monkeypatch.setattr(layer.vectors, "upsert_many", fails_once)
    (created,) = await commit_articles(layer, 1)
    await layer.operations.follow()
    record = await layer.vectors.get("articles", str(created.id))
    assert record is not None
    assert record.version == 1
    assert calls == 2


async def test_vectors_stay_out_of_outbox_rows_and_events_but_replays_have_them(
    quiet_layer: DataLayer,
) -> None:
    seen: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        seen.append(event)

    quiet_layer.events.subscribe_all(record)
    (created,) = await commit_articles(quiet_layer, 1)
    stored = await quiet_layer.postgres.fetchval("SELECT payload::text FROM satellites_outbox")
    assert '"title"' in stored
    assert "embedding" not in stored
    assert "embedding" not in seen[0].payload

    key = f"{quiet_layer.config.redis.key_prefix}articles:{created.id}"
    await quiet_layer.redis.delete(key)
    await quiet_layer.postgres.execute("UPDATE satellites_outbox SET pending = '{redis}'")
    await settle_everything(quiet_layer)
    cached = await quiet_layer.redis.get(key)
    assert isinstance(cached, bytes)
    entry = CachedRow.parse(cached)
    assert entry is not None
    codec = quiet_layer.operations.spec(Articles).codec
    assert codec.loads(entry.body)["embedding"] == [1.0, 1.0, 0.0, 0.0]
