"""A changed ``SearchIndex`` between two starts of the layer, against the real Elasticsearch.

Additive: the column is migrated, the next start puts the field into the live index and
the new field is written and searched at once. Incompatible: start fails naming the
fields and the command to run; that command (``satellites reindex``) starts despite the
conflict and fixes it, after which start succeeds.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from satellites_repo import (
    DataLayer,
    DataLayerConfig,
    Range,
    Repository,
    SearchIndex,
    StartupError,
)
from satellites_repo.migrate import create_tables
from tests.integration.conftest import run_cli
from tests.integration.models import (
    Call,
    CallModel,
    Calls,
    ChannelCall,
    ChannelCalls,
    RetypedCalls,
)

LOGGER = "satellites_repo.backends.elasticsearch"


async def add(layer: DataLayer, repository: type[Repository[Any]], *rows: Any) -> None:
    async with layer.unit_of_work() as uow:
        await uow.repository(repository).add_many(rows)
        await uow.commit()
    await layer.operations.settled()


async def search(
    layer: DataLayer, repository: type[Repository[Any]], text: str, **filters: Any
) -> list[int]:
    async with layer.unit_of_work() as uow:
        page = await uow.repository(repository).search(text, filters=filters or None)
    return sorted(hit.entity.id for hit in page)


async def live_properties(layer: DataLayer) -> dict[str, Any]:
    alias = f"{layer.config.elasticsearch.index_prefix}calls"
    found = await layer.elasticsearch.indices.get_mapping(index=alias)
    ((_, body),) = found.body.items()
    return dict(body["mappings"]["properties"])


@pytest.fixture
async def calls(config: DataLayerConfig) -> DataLayerConfig:
    """The ``calls`` table and its index as first declared, holding one row."""
    await create_tables(config, CallModel.metadata)
    async with DataLayer(config, repositories=[Calls]) as first:
        await add(first, Calls, Call(id=1, subject="printer jam", priority=2))
    return config


async def test_a_column_added_to_the_model_and_its_index_is_put_at_the_next_start(
    calls: DataLayerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with DataLayer(calls, repositories=[Calls]) as first:
        await first.postgres.execute("ALTER TABLE calls ADD COLUMN channel text")  # migrated
    assert "added" not in caplog.text  # an unchanged declaration puts nothing

    async with DataLayer(calls, repositories=[ChannelCalls]) as second:
        assert "added channel to search index" in caplog.text
        assert (await live_properties(second))["channel"] == {"type": "keyword"}
        row = ChannelCall(id=2, subject="printer offline", priority=1, channel="phone")
        await add(second, ChannelCalls, row)
        assert await search(second, ChannelCalls, "printer", channel="phone") == [2]
        assert await search(second, ChannelCalls, "printer") == [1, 2]
        assert (await second.operations.outbox.status()).dead == 0

    caplog.clear()
    async with DataLayer(calls, repositories=[ChannelCalls]):
        pass
    assert "added" not in caplog.text
    warned = [
        r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno >= logging.WARNING
    ]
    assert not warned


async def test_a_changed_type_or_analyzer_fails_start_naming_the_fields_and_the_fix(
    calls: DataLayerConfig,
) -> None:
    with pytest.raises(StartupError) as failed:
        await DataLayer(calls, repositories=[RetypedCalls]).start()
    message = str(failed.value)
    assert "SearchIndex 'calls'" in message
    assert "field 'priority' is {'type': 'keyword'} in the index, declared {'type': 'integer'}" in (
        message
    )
    assert "field 'subject' is {'type': 'text'} in the index" in message
    assert "'analyzer': 'whitespace'" in message
    assert "`satellites reindex --repository RetypedCalls --target elasticsearch`" in message

    async with DataLayer(calls, repositories=[Calls]) as unchanged:  # nothing was put
        assert (await live_properties(unchanged))["priority"] == {"type": "keyword"}


async def test_after_the_reindex_the_message_names_start_succeeds(
    calls: DataLayerConfig,
) -> None:
    code, output, errors = await run_cli(
        calls,
        "tests.integration.models:RetypedCalls",
        "reindex",
        "--repository",
        "RetypedCalls",
        "--target",
        "elasticsearch",
    )
    assert code == 0, output + errors
    assert "RetypedCalls elasticsearch: 1 row(s)" in output

    async with DataLayer(calls, repositories=[RetypedCalls]) as reindexed:
        assert (await live_properties(reindexed))["priority"] == {"type": "integer"}
        await add(reindexed, RetypedCalls, Call(id=3, subject="Printer-B down", priority=7))
        assert await search(reindexed, RetypedCalls, "jam", priority=Range(gte=2)) == [1]
        assert await search(reindexed, RetypedCalls, "Printer-B") == [3]
        assert await search(reindexed, RetypedCalls, "printer-b") == []  # whitespace analyzer


async def test_on_mapping_conflict_warn_starts_on_the_index_as_it_is(
    calls: DataLayerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    tolerant = calls.replace(elasticsearch=calls.elasticsearch.replace(on_mapping_conflict="warn"))
    async with DataLayer(tolerant, repositories=[RetypedCalls]) as started:
        assert "field 'priority' is {'type': 'keyword'} in the index" in caplog.text
        assert "running on the index as it is" in caplog.text
        assert await search(started, RetypedCalls, "jam") == [1]


async def test_a_field_elasticsearch_refuses_to_add_fails_start_naming_it(
    calls: DataLayerConfig,
) -> None:
    class OddCalls(Repository[ChannelCall]):
        search = SearchIndex(
            "calls",
            fields={"subject": "text", "priority": "keyword", "channel": ("keyword", {"odd": 1})},
        )

    async with DataLayer(calls, repositories=[Calls]) as first:
        await first.postgres.execute("ALTER TABLE calls ADD COLUMN channel text")
    with pytest.raises(StartupError) as failed:
        await DataLayer(calls, repositories=[OddCalls]).start()
    message = str(failed.value)
    assert "Elasticsearch refused to add channel" in message
    assert "unknown parameter [odd]" in message
    assert "satellites reindex --repository OddCalls" in message
