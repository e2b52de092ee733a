"""A Postgres outage reaches callers of ``data.operations`` as ``UnavailableError`` naming
Postgres, never as a raw driver error (issue 13, finding 9): the database is cut away
from one layer by a TCP proxy while every other test keeps the shared server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from satellites_repo import DataEvent, DataLayer, DataLayerConfig, UnavailableError
from satellites_repo.migrate import create_tables
from satellites_repo.ops import Drift
from tests.integration.models import REPOSITORIES, Articles, IntegrationModel
from tests.integration.stores import commit_articles
from tests.integration.tcp_proxy import TcpProxy

Call = Callable[[DataLayer], Awaitable[Any]]

CALLS: dict[str, Call] = {
    "count": lambda data: data.operations.count(Articles),
    "verify": lambda data: data.operations.verify(Articles),
    "repair": lambda data: data.operations.repair(
        Articles, [Drift("Articles", "redis", missing=[str(uuid.uuid4())])]
    ),
    "reindex elasticsearch": lambda data: data.operations.reindex(Articles, ["elasticsearch"]),
    "reindex faiss": lambda data: data.operations.reindex(Articles, ["faiss"]),
    "reindex redis": lambda data: data.operations.reindex(Articles, ["redis"]),
    "backlog": lambda data: data.operations.backlog(),
    "throughput": lambda data: data.operations.throughput(),
    "follow": lambda data: data.operations.follow(),
    "deliver_durable": lambda data: data.operations.deliver_durable(),
    "outbox.status": lambda data: data.operations.outbox.status(),
    "outbox.retry_dead": lambda data: data.operations.outbox.retry_dead(),
    "outbox.retry_now": lambda data: data.operations.outbox.retry_now(),
    "outbox.purge": lambda data: data.operations.outbox.purge(dt.timedelta(0)),
    "relay.run_once": lambda data: data.operations.relay.run_once(),
    "relay.drain": lambda data: data.operations.relay.drain(),
    "subscriptions.status": lambda data: data.operations.subscriptions.status(),
    "subscriptions.retry_dead": lambda data: data.operations.subscriptions.retry_dead(),
    "subscriptions.purge": lambda data: data.operations.subscriptions.purge(),
}


async def ignore(event: DataEvent) -> None:
    pass


@pytest.fixture
async def cut_away(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """A started layer whose Postgres link is cut (its pool and engine hold dead links)."""
    await create_tables(config, IntegrationModel.metadata)
    proxy = TcpProxy(config.postgres.host, config.postgres.port)
    await proxy.start()
    through = config.replace(
        postgres=config.postgres.replace(host="127.0.0.1", port=proxy.port, timeout=2.0),
        outbox=config.outbox.replace(relay=False),
    )
    layer = DataLayer(through, repositories=REPOSITORIES)
    layer.events.subscribe("articles.*", ignore, durable="audit")  # deliver_durable reads
    try:
        async with layer:
            await commit_articles(layer, 3)
            await proxy.cut()
            yield layer
            await proxy.restore()  # so that stop() closes the pools promptly
    finally:
        await proxy.close()


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_each_operation_names_postgres_when_it_is_cut_away(
    cut_away: DataLayer, name: str
) -> None:
    with pytest.raises(UnavailableError) as raised:
        await CALLS[name](cut_away)
    assert raised.value.backend == "postgres"
    assert "postgres is unavailable" in str(raised.value)
    assert raised.value.__cause__ is not None  # the driver's error stays visible
