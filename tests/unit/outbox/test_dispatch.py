"""The dispatcher: each covering backend gets one batch, failures are reported, not raised."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from satellites_repo.model import Operation, Registry
from satellites_repo.outbox.dispatch import Dispatcher
from satellites_repo.testing.fakes import FakeBackend
from tests.unit.models import Notes, note_change


def dispatcher(*backends: FakeBackend) -> Dispatcher:
    return Dispatcher(backends, Registry([Notes]))


async def test_each_named_backend_gets_the_batch_in_one_call() -> None:
    cache, search = FakeBackend("redis"), FakeBackend("elasticsearch")
    changes = [note_change("a"), note_change("b")]
    assert await dispatcher(cache, search).dispatch(changes, ["redis", "elasticsearch"]) == []
    assert cache.applied == [changes]
    assert search.applied == [changes]


async def test_only_the_targets_named_are_applied() -> None:
    cache, search = FakeBackend("redis"), FakeBackend("elasticsearch")
    await dispatcher(cache, search).dispatch([note_change("a")], ["elasticsearch"])
    assert cache.applied == []
    assert len(search.applied) == 1


async def test_changes_of_tables_a_backend_does_not_cover_are_left_out() -> None:
    other = FakeBackend("elasticsearch", tables=["somewhere_else"])
    await dispatcher(other).dispatch([note_change("a")], ["elasticsearch"])
    assert other.applied == []


async def test_a_failing_backend_is_reported_and_the_others_still_apply() -> None:
    cache, search = FakeBackend("redis"), FakeBackend("elasticsearch")
    search.failure = ConnectionError("cluster away")
    changes = [note_change("a")]
    failures = await dispatcher(cache, search).dispatch(changes, ["redis", "elasticsearch"])
    assert [(f.target, f.changes, f.error) for f in failures] == [
        ("elasticsearch", tuple(changes), "ConnectionError: cluster away")
    ]
    assert cache.applied == [changes]


async def test_a_failure_log_record_names_the_table_and_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    search = FakeBackend("elasticsearch")
    search.failure = ConnectionError("cluster away")
    with caplog.at_level(logging.WARNING, logger="satellites_repo.outbox.dispatch"):
        await dispatcher(search).dispatch([note_change("a")], ["elasticsearch"])
    (record,) = caplog.records
    assert (record.__dict__["table"], record.__dict__["key"]) == (note_change("a").table, "a")


async def test_backends_apply_concurrently() -> None:
    """Each backend waits for the other to start: applied in turn, both would time out."""
    both = asyncio.Barrier(2)

    class Waiting(FakeBackend):
        async def apply(self, changes: object) -> None:
            async with asyncio.timeout(2):
                await both.wait()
            self.applied.append([])

    first, second = Waiting("redis"), Waiting("elasticsearch")
    failures = await dispatcher(first, second).dispatch(
        [note_change("a")], ["redis", "elasticsearch"]
    )
    assert failures == []
    assert (len(first.applied), len(second.applied)) == (1, 1)


def test_local_targets_are_the_backends_that_are_not_shared() -> None:
    local = FakeBackend("faiss", shared=False)
    assert dispatcher(FakeBackend("redis"), local).local_targets == ("faiss",)
    assert dispatcher().targets_covering(note_change("a")) == []
    assert dispatcher(local).targets_covering(note_change("a")) == ["faiss"]


async def test_an_update_of_columns_a_backend_does_not_hold_is_not_sent_to_it() -> None:
    cache, search = FakeBackend("redis"), FakeBackend("elasticsearch", columns=["title"])
    bump = dataclasses.replace(
        note_change("a", 2, Operation.UPDATED), changed=frozenset({"views", "version"})
    )
    rename = dataclasses.replace(bump, key="b", changed=frozenset({"title", "version"}))
    chosen = dispatcher(cache, search)
    assert await chosen.dispatch([bump, rename], ["redis", "elasticsearch"]) == []
    assert cache.applied == [[bump, rename]]
    assert search.applied == [[rename]]
    assert chosen.wanted(bump, ["redis"])
    assert not chosen.wanted(bump, ["elasticsearch"])
