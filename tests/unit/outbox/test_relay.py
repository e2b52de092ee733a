"""The relay loop against a fake outbox: batches claimed, delivered and settled; a failing
pass backs off and is counted, not logged forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, cast

import pytest

from satellites_repo.config import OutboxConfig
from satellites_repo.model import Registry
from satellites_repo.outbox.dispatch import Dispatcher
from satellites_repo.outbox.records import OutboxRecord
from satellites_repo.outbox.rehydrate import Rehydrator
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.store import Settlement
from satellites_repo.retry import Backoff
from satellites_repo.testing.fakes import FakeBackend, RecordingBus
from tests.unit.models import Notes, note_change, outbox_record

REGISTRY = Registry([Notes])


class FakeOutbox:
    """Due rows in memory; ``down`` makes claiming fail like an unreachable Postgres."""

    def __init__(self, records: list[OutboxRecord]) -> None:
        self.due = list(records)
        self.settled: list[Settlement] = []
        self.settling = asyncio.Event()
        self.down = 0
        self.backoff = Backoff(0.001, 0.002)

    async def claim(
        self, limit: int, lease_seconds: float, *, events: bool = True
    ) -> list[OutboxRecord]:
        if self.down:
            self.down -= 1
            raise ConnectionRefusedError("postgres away")
        taken, self.due = self.due[:limit], self.due[limit:]
        return taken

    async def settle(self, settlements: Iterable[Settlement]) -> None:
        self.settled.extend(settlements)
        self.settling.set()


def relay(outbox: FakeOutbox, *backends: FakeBackend, batch_size: int = 2) -> Relay:
    config = OutboxConfig(batch_size=batch_size, relay_interval=0.01)
    return Relay(
        outbox,
        Dispatcher(backends, REGISTRY),
        RecordingBus(),
        Rehydrator(cast(Any, None), REGISTRY),
        config,
    )


async def test_drain_delivers_every_due_row_in_batches() -> None:
    outbox = FakeOutbox([outbox_record(n, note_change(str(n)), "redis") for n in range(5)])
    cache = FakeBackend("redis")
    assert await relay(outbox, cache).drain() == 5
    assert [len(batch) for batch in cache.applied] == [2, 2, 1]
    assert sorted(seq for s in outbox.settled for seq in s.seqs) == [0, 1, 2, 3, 4]
    assert all(not s.remaining for s in outbox.settled)


async def test_a_failing_pass_is_logged_once_with_its_traceback_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = FakeOutbox([outbox_record(1, note_change("a"), "redis")])
    outbox.down = 3
    cache = FakeBackend("redis")
    worker = relay(outbox, cache)
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG, logger="satellites_repo.outbox.relay")
    task = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(5):
        await outbox.settling.wait()
    stop.set()
    await task
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None
    assert worker.failures.total == 3
    assert worker.failures.streak == 0
    assert [change.key for change in cache.changes] == ["a"]
