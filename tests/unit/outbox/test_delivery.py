"""Delivering outbox rows: pending targets applied, events published in one call, and what
stays owed settled per row."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from satellites_repo.model import Operation, Registry
from satellites_repo.outbox.delivery import deliver
from satellites_repo.outbox.dispatch import Dispatcher
from satellites_repo.outbox.records import EVENTS_TARGET
from satellites_repo.outbox.rehydrate import Rehydrator
from satellites_repo.outbox.store import Settlement
from satellites_repo.testing.fakes import FakeBackend, RecordingBus
from tests.unit.models import Notes, note_change, outbox_record

REGISTRY = Registry([Notes])
# Every change below is complete (the fast path's), so nothing is read from Postgres.
REHYDRATOR = Rehydrator(cast(Any, None), REGISTRY)


async def test_pending_targets_are_applied_and_events_published_in_one_call() -> None:
    cache, search, bus = FakeBackend("redis"), FakeBackend("elasticsearch"), RecordingBus()
    records = [
        outbox_record(1, note_change("a"), "redis", "elasticsearch"),
        outbox_record(2, note_change("b"), "redis"),
    ]
    delivery = await deliver(records, Dispatcher([cache, search], REGISTRY), bus, REHYDRATOR)
    assert [change.key for change in cache.changes] == ["a", "b"]
    assert [change.key for change in search.changes] == ["a"]
    assert bus.calls == 1
    assert [event.id for event in bus.published] == ["event-1", "event-2"]
    assert delivery.settlements == [Settlement((1, 2), (), None, 1)]
    assert delivery.local_failures == frozenset()


async def test_a_failed_target_stays_owed_for_its_rows_only() -> None:
    cache, search, bus = FakeBackend("redis"), FakeBackend("elasticsearch"), RecordingBus()
    search.failure = TimeoutError("slow")
    records = [
        outbox_record(1, note_change("a"), "redis", "elasticsearch"),
        outbox_record(2, note_change("b"), "redis"),
    ]
    delivery = await deliver(records, Dispatcher([cache, search], REGISTRY), bus, REHYDRATOR)
    owed = {s.seqs: (s.remaining, s.error) for s in delivery.settlements}
    assert owed == {
        (1,): (("elasticsearch",), "elasticsearch: TimeoutError: slow"),
        (2,): ((), None),
    }


async def test_a_failed_publish_leaves_every_event_of_the_batch_owed() -> None:
    bus = RecordingBus()
    bus.failure = ConnectionError("broker away")
    records = [outbox_record(1, note_change("a")), outbox_record(2, note_change("b"))]
    delivery = await deliver(records, Dispatcher([], REGISTRY), bus, REHYDRATOR)
    assert [(s.seqs, s.remaining) for s in delivery.settlements] == [((1, 2), (EVENTS_TARGET,))]


async def test_local_targets_are_applied_but_never_owed() -> None:
    local, bus = FakeBackend("faiss", shared=False), RecordingBus()
    local.failure = RuntimeError("index busy")
    records = [outbox_record(1, note_change("a"))]
    delivery = await deliver(
        records, Dispatcher([local], REGISTRY), bus, REHYDRATOR, local_targets=["faiss"]
    )
    assert delivery.local_failures == frozenset({"faiss"})
    assert delivery.settlements == [Settlement((1,), (), None, 1)]


async def test_rows_already_applied_everywhere_only_publish() -> None:
    cache, bus = FakeBackend("redis"), RecordingBus()
    records = [outbox_record(1, note_change("a"))]
    await deliver(records, Dispatcher([cache], REGISTRY), bus, REHYDRATOR)
    assert cache.applied == []
    assert len(bus.published) == 1


async def test_a_row_no_pending_target_needs_is_settled_without_reading_postgres() -> None:
    """An update of a column the index does not hold, read back by the relay: no row is
    read from Postgres for it (the rehydrator here has no engine), nothing is sent."""
    search, bus = FakeBackend("elasticsearch", columns=["title"]), RecordingBus()
    bump = note_change("a", 2, Operation.UPDATED)
    record = dataclasses.replace(
        outbox_record(1, bump, "elasticsearch"), whole=None, changed=frozenset({"views"})
    )
    delivery = await deliver([record], Dispatcher([search], REGISTRY), bus, REHYDRATOR)
    assert search.applied == []
    assert [event.id for event in bus.published] == ["event-1"]
    assert delivery.settlements == [Settlement((1,), (), None, 1)]
