"""Traces and metrics with the OpenTelemetry SDK's in-memory exporters, real servers.

The providers are installed once per process (OpenTelemetry allows one global each);
each test clears the finished spans first and reads metrics as cumulative totals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.conftest import subprocess_environment
from tests.integration.models import REPOSITORIES, Articles, IntegrationModel
from tests.integration.stores import article, commit_articles
from tests.integration.tcp_proxy import TcpProxy

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _telemetry() -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SPANS))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def _fresh_spans() -> None:
    SPANS.clear()


def points(name: str) -> list[Any]:
    """The data points of metric ``name`` collected now (cumulative)."""
    data = READER.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def by_target(name: str) -> dict[str, Any]:
    return {p.attributes["satellites.target"]: p for p in points(name)}


def spans(name: str) -> list[ReadableSpan]:
    return [span for span in SPANS.get_finished_spans() if span.name == name]


async def test_one_commit_yields_the_documented_span_tree(layer: DataLayer) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(1))
        await uow.commit()
    (root,) = spans("satellites.commit")
    children = [
        s
        for s in SPANS.get_finished_spans()
        if s.parent and s.parent.span_id == root.context.span_id
    ]
    names = sorted(child.name for child in children)
    print("span tree:", root.name, names)
    assert names == [
        "COMMIT",
        "INSERT satellites_outbox",
        "apply elasticsearch",
        "apply faiss",
        "apply redis",
        "satellites.flush",
    ]
    insert = next(child for child in children if child.name.startswith("INSERT"))
    assert insert.attributes is not None
    assert insert.attributes["db.system.name"] == "postgresql"
    assert insert.attributes["db.collection.name"] == "satellites_outbox"
    apply_es = next(child for child in children if child.name == "apply elasticsearch")
    assert apply_es.attributes is not None
    assert apply_es.attributes["db.system.name"] == "elasticsearch"
    assert apply_es.attributes["db.collection.name"] == "articles"
    assert apply_es.status.status_code is not StatusCode.ERROR
    assert points("satellites.commit.duration")
    assert set(by_target("satellites.projection.lag")) >= {"redis", "elasticsearch", "faiss"}


async def test_reads_have_spans_with_the_cache_outcome(layer: DataLayer) -> None:
    (saved,) = await commit_articles(layer, 1)
    for _ in range(2):  # the first read may fill the cache, the second hits it
        async with layer.unit_of_work() as uow:
            assert await uow.repository(Articles).get(saved.id) is not None
    gets = spans("get articles")
    assert gets
    assert gets[-1].attributes is not None
    assert gets[-1].attributes["satellites.cache.hit"] is True
    assert gets[-1].attributes["db.collection.name"] == "articles"
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).search("article")
        await uow.repository(Articles).similar([1.0, 0.0, 0.0, 0.0], k=3)
    assert spans("search articles")
    assert spans("similar articles")
    assert sum(p.value for p in points("satellites.cache.hits")) >= 1


@pytest.fixture
async def es_proxy(config: DataLayerConfig) -> AsyncIterator[TcpProxy]:
    host, port = config.elasticsearch.hosts[0].split("//")[1].rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    yield proxy
    await proxy.close()


def through(config: DataLayerConfig, proxy: TcpProxy, **outbox: Any) -> DataLayerConfig:
    """``config`` with Elasticsearch behind ``proxy``, no background relay, quick retries."""
    return config.replace(
        elasticsearch=config.elasticsearch.replace(
            hosts=[f"http://127.0.0.1:{proxy.port}"], timeout=2.0
        ),
        outbox=config.outbox.replace(relay=False, backoff_initial=0.01, backoff_max=0.05, **outbox),
    )


async def test_an_elasticsearch_outage_shows_in_spans_gauges_and_relay_links(
    config: DataLayerConfig, es_proxy: TcpProxy
) -> None:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(through(config, es_proxy), repositories=REPOSITORIES) as layer:
        await es_proxy.cut()
        depths = []
        commits = []
        for n in range(3):
            async with layer.unit_of_work() as uow:
                await uow.repository(Articles).add(article(n))
                await uow.commit()
            commits.append(spans("satellites.commit")[-1])
            await layer.operations.settled()
            await layer.operations.backlog()
            depths.append(by_target("satellites.outbox.depth")["elasticsearch"].value)
        print("outbox depth for elasticsearch while cut:", depths)
        assert depths == [1, 2, 3]
        failed = spans("apply elasticsearch")
        assert len(failed) == 3
        assert all(span.status.status_code is StatusCode.ERROR for span in failed)
        assert by_target("satellites.apply.failures")["elasticsearch"].value >= 3

        await es_proxy.restore()
        await layer.operations.outbox.retry_now()
        assert await layer.operations.relay.drain() == 3
        (batch,) = spans("satellites.relay.batch")
        linked = {(link.context.trace_id, link.context.span_id) for link in batch.links}
        assert linked == {(c.context.trace_id, c.context.span_id) for c in commits}
        applied = [s for s in spans("apply elasticsearch") if s.parent == batch.context]
        assert applied
        assert applied[0].status.status_code is not StatusCode.ERROR
        await layer.operations.backlog()
        assert by_target("satellites.outbox.depth")["elasticsearch"].value == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _satellites(*args: str) -> list[str]:
    return [sys.executable, "-m", "satellites_repo.cli", *args]


async def test_top_once_shows_a_dead_letter(config: DataLayerConfig, es_proxy: TcpProxy) -> None:
    await create_tables(config, IntegrationModel.metadata)
    async with DataLayer(
        through(config, es_proxy, max_attempts=1), repositories=REPOSITORIES
    ) as layer:
        await es_proxy.cut()
        await commit_articles(layer, 1)
        await layer.operations.settled()
        assert (await layer.operations.outbox.status()).dead == 1
    done = await asyncio.to_thread(
        subprocess.run,
        _satellites("top", "--once"),
        env=subprocess_environment(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    outbox = done.stdout.split("Outbox", 1)[1]  # the backlog table follows the health table
    row = next(line for line in outbox.splitlines() if "│ elasticsearch" in line)
    assert row.split("│")[-2].strip() == "1", row


@pytest.fixture
def metrics_process(config: DataLayerConfig) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    process = subprocess.Popen(
        _satellites(
            "metrics",
            "--prometheus",
            f"127.0.0.1:{port}",
            "--repositories",
            "tests.integration.models:REPOSITORIES",
        ),
        env=subprocess_environment(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process, port
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
    if process.stdout is not None:
        process.stdout.close()


async def test_the_metrics_endpoint_serves_the_documented_names(
    layer: DataLayer, metrics_process: tuple[subprocess.Popen[str], int]
) -> None:
    await commit_articles(layer, 2)
    process, port = metrics_process
    body = ""
    async with httpx.AsyncClient() as client:
        for _ in range(120):
            if process.poll() is not None:
                break
            try:
                body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                body = ""
            if "satellites_outbox_depth" in body:
                break
            await asyncio.sleep(0.5)
    assert process.poll() is None, process.stdout.read() if process.stdout else ""
    served = sorted(
        {line.split("{")[0] for line in body.splitlines() if line.startswith("satellites_")}
    )
    print("\n".join(served))
    for name in (
        "satellites_outbox_depth",
        "satellites_outbox_oldest_age_seconds",
        "satellites_outbox_dead_letters",
    ):
        assert name in served
    depth = [line for line in body.splitlines() if line.startswith("satellites_outbox_depth{")]
    assert any('satellites_target="elasticsearch"' in line for line in depth), depth
