"""A hung backend never stalls the app (finding 4): with Redis or Elasticsearch paused, a
read falls back to Postgres and a commit returns within its deadline, the work left to the
relay; after the resume everything converges. Latencies are printed, never asserted."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.models import REPOSITORIES, Article, Articles, IntegrationModel
from tests.integration.servers import free_port, start_redis, wait_for_redis
from tests.integration.stores import (
    article,
    assert_projections_equal_postgres,
    commit_articles,
    settle_everything,
)
from tests.integration.tcp_proxy import TcpProxy

ROUNDS = 20


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) * 1000


def report(what: str, figures: dict[str, list[float]]) -> None:
    for name, values in figures.items():
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        print(
            f"{what}: {name} p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, "
            f"max {ordered[-1]:.1f} ms over {len(ordered)}"
        )


async def exercise(layer: DataLayer, known: Article) -> dict[str, list[float]]:
    """``get`` of a cached row and ``commit`` of a new one, ROUNDS times, checked."""
    figures: dict[str, list[float]] = {"get": [], "commit": []}

    async def get() -> None:
        async with layer.unit_of_work() as uow:
            found = await uow.repository(Articles).get(known.id)
            assert found is not None
            assert found.title == known.title  # from Postgres when the cache is away

    async def commit() -> None:
        async with layer.unit_of_work() as uow:
            await uow.repository(Articles).add(article(1000))
            await uow.commit()

    for _ in range(ROUNDS):
        figures["get"].append(await timed(get))
        figures["commit"].append(await timed(commit))
    return figures


@pytest.fixture
async def paused_redis(
    config: DataLayerConfig, tmp_path: Path
) -> AsyncIterator[tuple[DataLayer, int]]:
    port = free_port()
    server = start_redis(port, tmp_path)
    try:
        await wait_for_redis(port)
        private = config.replace(redis=config.redis.replace(host="127.0.0.1", port=port))
        await create_tables(private, IntegrationModel.metadata)
        async with DataLayer(private, repositories=REPOSITORIES) as layer:
            yield layer, server.pid
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
        server.wait()


async def test_redis_paused_reads_fall_back_and_commits_return(
    paused_redis: tuple[DataLayer, int],
) -> None:
    layer, pid = paused_redis
    (known,) = await commit_articles(layer, 1)
    os.kill(pid, signal.SIGSTOP)
    try:
        figures = await exercise(layer, known)
    finally:
        os.kill(pid, signal.SIGCONT)
    report(
        f"Redis paused (call_timeout {layer.config.redis.call_timeout}s, "
        f"delivery_timeout {layer.config.outbox.delivery_timeout}s)",
        figures,
    )
    await settle_everything(layer)
    await assert_projections_equal_postgres(layer)


@pytest.fixture
async def paused_search(config: DataLayerConfig) -> AsyncIterator[tuple[DataLayer, TcpProxy]]:
    proxy = TcpProxy("127.0.0.1", 9200)
    await proxy.start()
    try:
        hosts = [f"http://127.0.0.1:{proxy.port}"]
        proxied = config.replace(elasticsearch=config.elasticsearch.replace(hosts=hosts))
        await create_tables(proxied, IntegrationModel.metadata)
        async with DataLayer(proxied, repositories=REPOSITORIES) as layer:
            yield layer, proxy
    finally:
        proxy.resume()
        await proxy.close()


async def test_elasticsearch_paused_commits_return_and_converge(
    paused_search: tuple[DataLayer, TcpProxy],
) -> None:
    layer, proxy = paused_search
    (known,) = await commit_articles(layer, 1)
    proxy.pause()
    try:
        figures = await exercise(layer, known)
    finally:
        proxy.resume()
    report(
        f"Elasticsearch paused (delivery_timeout {layer.config.outbox.delivery_timeout}s)", figures
    )
    await settle_everything(layer)
    await assert_projections_equal_postgres(layer)
