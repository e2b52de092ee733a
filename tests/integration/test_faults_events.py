"""Events owed by a commit reach the application's subscribers, whoever relays the rows
(finding 7): a relay in a process without subscribers leaves them owed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.conftest import run_cli
from tests.integration.models import REPOSITORIES, IntegrationModel
from tests.integration.stores import commit_articles


async def satellites_cli(config: DataLayerConfig, *arguments: str) -> str:
    code, output, errors = await run_cli(
        config, "tests.integration.models:REPOSITORIES", *arguments
    )
    assert code == 0, output + errors
    return output + errors


async def test_a_cli_relay_leaves_owed_events_to_the_applications_subscribers(
    config: DataLayerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_tables(config, IntegrationModel.metadata)
    quiet = config.replace(outbox=config.outbox.replace(relay=False))
    async with DataLayer(quiet, repositories=REPOSITORIES) as app:
        received: list[DataEvent] = []

        async def handler(event: DataEvent) -> None:
            received.append(event)

        app.events.subscribe_all(handler)
        publish = app.events.publish_many

        async def bus_down(events: Sequence[DataEvent]) -> None:
            raise ConnectionError("the bus is down for this commit")

        monkeypatch.setattr(app.events, "publish_many", bus_down)
        await commit_articles(app, 8, batch=4)
        monkeypatch.setattr(app.events, "publish_many", publish)
        assert received == []
        await app.operations.outbox.retry_now()

        output = await satellites_cli(config, "outbox", "relay", "--once")
        assert "delivered" in output
        owed = await app.postgres.fetch("SELECT pending, dead_at FROM satellites_outbox")
        assert [row["pending"] for row in owed] == [["events"]] * 8
        assert all(row["dead_at"] is None for row in owed)

        await app.operations.relay.drain()
        assert sorted(event.type for event in received) == ["articles.created"] * 8
        assert (await app.operations.outbox.status()).pending == 0
