"""Events: the seed's DataEvent and bus, plus wildcards and handler isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime

import pytest

from satellites_repo import DataEvent, EventHandler, InProcessEventBus, LifecycleError


def make_event(event_type: str = "user.created", **changes: object) -> DataEvent:
    fields: dict[str, object] = {
        "type": event_type,
        "resource": "users",
        "key": "user-123",
        "payload": {"name": "Alice"},
        "source": "postgres",
    }
    fields.update(changes)
    return DataEvent(**fields)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.events: list[DataEvent] = []

    async def __call__(self, event: DataEvent) -> None:
        self.events.append(event)


def test_data_event_creation() -> None:
    event = make_event()
    assert (event.type, event.resource, event.key, event.source) == (
        "user.created",
        "users",
        "user-123",
        "postgres",
    )
    assert event.payload["name"] == "Alice"
    assert event.version is None


def test_timestamp_is_timezone_aware_utc() -> None:
    before = datetime.now(UTC)
    event = make_event()
    assert event.timestamp.tzinfo is not None
    assert event.timestamp.utcoffset() == UTC.utcoffset(None)
    assert before <= event.timestamp <= datetime.now(UTC)


def test_every_event_has_its_own_id_unless_given() -> None:
    first, second = make_event(), make_event()
    assert first.id != second.id
    assert make_event(id="fixed").id == "fixed"


def test_data_event_is_immutable() -> None:
    event = make_event(version=42)
    assert event.version == 42
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.type = "changed"  # type: ignore[misc]


async def test_subscribe_and_publish() -> None:
    bus, recorder = InProcessEventBus(), Recorder()
    bus.subscribe("user.created", recorder)
    event = make_event()
    await bus.publish(event)
    assert recorder.events == [event]


async def test_subscribe_all_receives_every_type() -> None:
    bus, recorder = InProcessEventBus(), Recorder()
    bus.subscribe_all(recorder)
    await bus.publish(make_event())
    await bus.publish(make_event("doc.deleted", resource="documents"))
    assert [event.type for event in recorder.events] == ["user.created", "doc.deleted"]


async def test_unsubscribe_stops_delivery() -> None:
    bus, recorder = InProcessEventBus(), Recorder()
    bus.subscribe("user.created", recorder)
    bus.unsubscribe("user.created", recorder)
    bus.unsubscribe("user.created", recorder)
    await bus.publish(make_event())
    assert recorder.events == []


async def test_multiple_handlers_each_get_the_event() -> None:
    bus, first, second = InProcessEventBus(), Recorder(), Recorder()
    bus.subscribe("user.created", first)
    bus.subscribe("user.created", second)
    await bus.publish(make_event())
    assert len(first.events) == len(second.events) == 1


async def test_publishing_without_handlers_is_fine() -> None:
    await InProcessEventBus().publish(make_event())


async def test_wildcard_patterns_match_by_prefix() -> None:
    bus, articles, everything = InProcessEventBus(), Recorder(), Recorder()
    bus.subscribe("articles.*", articles)
    bus.subscribe("*.deleted", everything)
    await bus.publish(make_event("articles.created"))
    await bus.publish(make_event("articles.deleted"))
    await bus.publish(make_event("tags.deleted"))
    await bus.publish(make_event("articlesX.created"))
    assert [e.type for e in articles.events] == ["articles.created", "articles.deleted"]
    assert [e.type for e in everything.events] == ["articles.deleted", "tags.deleted"]


async def test_unsubscribe_a_pattern() -> None:
    bus, recorder = InProcessEventBus(), Recorder()
    bus.subscribe("articles.*", recorder)
    bus.unsubscribe("articles.*", recorder)
    await bus.publish(make_event("articles.created"))
    assert recorder.events == []


async def test_a_failing_handler_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus, before, after = InProcessEventBus(), Recorder(), Recorder()

    async def broken(event: DataEvent) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe("user.created", before)
    bus.subscribe("user.created", broken)
    bus.subscribe_all(after)
    event = make_event()
    with caplog.at_level(logging.ERROR, logger="satellites_repo.events"):
        await bus.publish(event)
    assert before.events == [event]
    assert after.events == [event]
    assert event.id in caplog.text
    assert "handler bug" in caplog.text


async def test_handlers_of_one_event_run_concurrently() -> None:
    """Each handler waits for the other to start: run one after the other, both time out
    (the bus logs that and goes on), and neither gets past the barrier."""
    bus = InProcessEventBus()
    both_started = asyncio.Barrier(2)
    passed: list[str] = []

    def waits_for_the_other(name: str) -> EventHandler:
        async def handler(event: DataEvent) -> None:
            async with asyncio.timeout(2):
                await both_started.wait()
            passed.append(name)

        return handler

    bus.subscribe("user.created", waits_for_the_other("first"))
    bus.subscribe("user.created", waits_for_the_other("second"))
    await bus.publish(make_event())
    assert sorted(passed) == ["first", "second"]


async def test_publish_after_close_raises() -> None:
    bus = InProcessEventBus()
    await bus.close()
    with pytest.raises(LifecycleError, match="closed"):
        await bus.publish(make_event())


def test_subscribe_to_an_empty_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        InProcessEventBus().subscribe("", Recorder())
