"""Writes the fast path's settlements in the background, many commits per statement.

A commit does not wait for its outbox rows to be marked settled: the mark is queued and
written shortly after, merged with those of other commits. A failed write is retried with
the outbox's backoff a few times; if the process dies first or Postgres stays away, the
rows are simply delivered again by the relay, which the version guards make harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from satellites_repo.outbox.store import Settlement
from satellites_repo.retry import FailureLog

if TYPE_CHECKING:
    from satellites_repo.outbox.store import OutboxStore

__all__ = ["Settler"]

logger = logging.getLogger(__name__)

ATTEMPTS = 3
"""Writes of one merged batch before it is left to the relay."""


class Settler:
    """A queue of settlements and the task that writes them."""

    def __init__(self, store: OutboxStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[list[Settlement]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failures = FailureLog(logger, "settling outbox rows")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="satellites settler")

    def submit(self, settlements: list[Settlement]) -> None:
        if settlements:
            self._queue.put_nowait(settlements)

    async def settled(self) -> None:
        """Wait until every settlement submitted so far has been written."""
        await self._queue.join()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batches = [await self._queue.get()]
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            try:
                await self._settle(_merged(batches))
            finally:
                for _ in batches:
                    self._queue.task_done()

    async def _settle(self, settlements: list[Settlement]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._store.settle(settlements)
            except Exception as exc:
                self.failures.failed(exc)
                if attempt < ATTEMPTS:
                    await asyncio.sleep(self._store.backoff.delay(attempt))
                continue
            self.failures.succeeded()
            return
        logger.warning("left %d settlement(s) to the relay", len(settlements))


def _merged(batches: Iterable[list[Settlement]]) -> list[Settlement]:
    """Every fully settled row in one statement; the rest as they came."""
    done: list[int] = []
    owed: list[Settlement] = []
    for batch in batches:
        for settlement in batch:
            if settlement.remaining:
                owed.append(settlement)
            else:
                done.extend(settlement.seqs)
    return ([Settlement(tuple(done), (), None)] if done else []) + owed
