"""The façade against the real servers: the seed's sample tests, lifecycle and health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from satellites_repo import (
    DataEvent,
    DataLayer,
    DataLayerConfig,
    LifecycleError,
    RedisConfig,
    StartupError,
)
from tests.integration.servers import free_port, start_redis, wait_for_redis


async def test_redis_operations(data: DataLayer, config: DataLayerConfig) -> None:
    key = f"{config.redis.key_prefix}seed"
    await data.redis.set(key, b"test-value")
    assert await data.redis.get(key) == b"test-value"
    await data.redis.delete(key)
    assert await data.redis.get(key) is None


async def test_postgres_operations(data: DataLayer) -> None:
    assert await data.postgres.fetchval("SELECT 1 + 1") == 2
    await data.postgres.execute("CREATE TABLE seed_users (id SERIAL PRIMARY KEY, name TEXT)")
    await data.postgres.execute("INSERT INTO seed_users (name) VALUES ($1)", "Alice")
    row = await data.postgres.fetchrow("SELECT * FROM seed_users WHERE name = $1", "Alice")
    assert row is not None
    assert row["name"] == "Alice"


async def test_engine_shares_the_database_and_schema(data: DataLayer) -> None:
    await data.postgres.execute("CREATE TABLE shared_probe (n int)")
    await data.postgres.execute("INSERT INTO shared_probe VALUES (7)")
    async with data.engine.connect() as connection:
        result = await connection.exec_driver_sql("SELECT n FROM shared_probe")
        assert result.scalar_one() == 7


async def test_elasticsearch_operations(data: DataLayer, config: DataLayerConfig) -> None:
    index = f"{config.elasticsearch.index_prefix}seed-docs"
    await data.elasticsearch.index(
        index=index,
        id="doc-1",
        document={"title": "Hello World", "content": "This is a test document"},
        refresh=True,
    )
    result = await data.elasticsearch.search(index=index, query={"match": {"content": "test"}})
    assert result["hits"]["total"]["value"] == 1
    assert result["hits"]["hits"][0]["_id"] == "doc-1"


async def test_vector_operations(data: DataLayer) -> None:
    await data.vectors.upsert("embeddings", "vec-1", [1.0, 0.0, 0.0, 0.0], {"source": "test"})
    results = await data.vectors.query("embeddings", [1.0, 0.0, 0.0, 0.0], top_k=1)
    assert [(match.id, match.metadata) for match in results] == [("vec-1", {"source": "test"})]


async def test_event_system(data: DataLayer) -> None:
    received: list[DataEvent] = []

    async def handler(event: DataEvent) -> None:
        received.append(event)

    data.events.subscribe("test.event", handler)
    event = DataEvent(
        type="test.event", resource="test", key="key-1", payload={"d": 1}, source="postgres"
    )
    await data.events.publish(event)
    assert received == [event]


async def test_health_check(data: DataLayer) -> None:
    health = await data.health()
    assert health.ok is True
    assert set(health.details) == {"redis", "postgres", "elasticsearch", "faiss"}
    for entry in health.details.values():
        assert entry["status"] == "ok"
        assert entry["error"] is None
        assert entry["latency_ms"] >= 0


async def test_clients_refuse_use_before_start_and_after_stop(config: DataLayerConfig) -> None:
    layer = DataLayer(config)
    with pytest.raises(LifecycleError, match="not started"):
        _ = layer.redis
    await layer.start()
    assert await layer.redis.ping() is True
    await layer.stop()
    await layer.stop()
    with pytest.raises(LifecycleError, match="stopped"):
        _ = layer.postgres
    with pytest.raises(LifecycleError, match="create a new one"):
        await layer.start()


async def test_health_before_start_reports_down_without_raising(config: DataLayerConfig) -> None:
    health = await DataLayer(config).health()
    assert health.ok is False
    assert health.details["redis"]["status"] == "down"


async def test_unreachable_backend_fails_start_naming_it_and_closes_the_rest(
    config: DataLayerConfig,
) -> None:
    broken = config.replace(redis=config.redis.replace(port=free_port(), timeout=1.0))
    layer = DataLayer(broken)
    with pytest.raises(StartupError) as caught:
        await layer.start()
    assert set(caught.value.failures) == {"redis"}
    assert "redis" in str(caught.value)
    with pytest.raises(LifecycleError):
        _ = layer.postgres
    with pytest.raises(LifecycleError):
        _ = layer.elasticsearch


async def test_every_failing_backend_is_named(config: DataLayerConfig) -> None:
    broken = config.replace(
        redis=config.redis.replace(port=free_port(), timeout=1.0),
        postgres=config.postgres.replace(port=free_port(), password="pw-never-shown", timeout=1.0),
    )
    with pytest.raises(StartupError) as caught:
        await DataLayer(broken).start()
    assert set(caught.value.failures) == {"redis", "postgres"}
    assert "pw-never-shown" not in str(caught.value)


async def test_a_wrong_password_is_never_echoed(config: DataLayerConfig) -> None:
    wrong = config.replace(postgres=config.postgres.replace(password="wrong-pw-xyz"))
    with pytest.raises(StartupError) as caught:
        await DataLayer(wrong).start()
    assert "postgres" in caught.value.failures
    assert "wrong-pw-xyz" not in str(caught.value)
    assert "wrong-pw-xyz" not in repr(wrong)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A Redis server of this test's own, so stopping it disturbs no other test."""
    port = free_port()
    server = start_redis(port, tmp_path)
    try:
        yield port
    finally:
        server.kill()
        server.wait()


@pytest.fixture
async def layer_on_private_redis(
    config: DataLayerConfig, private_redis: int
) -> AsyncIterator[tuple[DataLayer, int]]:
    await wait_for_redis(private_redis)
    redis_config = RedisConfig(host="127.0.0.1", port=private_redis, timeout=1.0)
    async with DataLayer(config.replace(redis=redis_config)) as layer:
        yield layer, private_redis


async def test_redis_stopped_mid_run_is_reported_down_then_recovers(
    layer_on_private_redis: tuple[DataLayer, int], tmp_path: Path
) -> None:
    layer, port = layer_on_private_redis
    assert (await layer.health()).ok is True

    shutdown = redis_asyncio.Redis(port=port)
    try:
        await shutdown.shutdown(nosave=True)
    except redis_asyncio.ConnectionError:
        pass  # the server closes the connection as it exits
    finally:
        await shutdown.aclose()

    health = await layer.health()
    assert health.ok is False
    assert health.details["redis"]["status"] == "down"
    assert health.details["redis"]["error"]
    for backend in ("postgres", "elasticsearch", "faiss"):
        assert health.details[backend]["status"] == "ok"

    restarted = start_redis(port, tmp_path)
    try:
        await wait_for_redis(port)
        assert (await layer.health()).ok is True
    finally:
        restarted.kill()
        restarted.wait()
