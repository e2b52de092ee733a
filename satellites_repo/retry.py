"""Failing work, handled one way: the one backoff policy, and one way of logging repeats.

The outbox's next attempt of a failed row, the relay's and settler's pauses after a failed
pass, and reindex's retried bulk requests all wait ``Backoff.delay(attempt)``, so a
backend coming back after an outage is not hit by every process at once. Background loops
report through ``FailureLog``: the first failure with its traceback, then a count, so an
outage is visible without a log line per second. ``BackgroundTasks`` owns such loops: a
loop that stops on an error is logged, and ``close()`` always cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["BackgroundTasks", "Backoff", "FailureLog", "wait_until"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """``initial * 2**(attempt - 1)``, capped at ``maximum``, plus up to ``initial`` of jitter."""

    initial: float
    maximum: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        exponent = min(max(attempt, 1) - 1, 62)
        base = min(self.initial * 2.0**exponent, self.maximum)
        return min(base + random.uniform(0, self.initial), self.maximum)

    async def run(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        attempts: int,
        retry_on: tuple[type[Exception], ...],
    ) -> T:
        """``await work()``, retried after ``delay`` on ``retry_on`` errors; the last one raises."""
        for attempt in range(1, attempts):
            try:
                return await work()
            except retry_on:
                await asyncio.sleep(self.delay(attempt))
        return await work()


class FailureLog:
    """Counts failures of one recurring piece of work and logs them without flooding.

    The first failure is logged at WARNING with its traceback; the first of each later
    streak at WARNING without it; the rest at DEBUG with the running count; the first
    success after a streak at INFO. ``then`` says what happens next (``"retrying"``,
    ``"using Postgres"``).
    """

    def __init__(self, logger: logging.Logger, what: str, *, then: str = "retrying") -> None:
        self._logger = logger
        self._what = what
        self._then = then
        self.total = 0
        self.streak = 0

    def failed(self, error: BaseException, *, fields: Mapping[str, object] | None = None) -> None:
        """Count a failure; ``fields`` go to the log record as ``extra`` (table, key, txid)."""
        self.total += 1
        self.streak += 1
        if self.streak == 1:
            self._logger.warning(
                "%s failed (%s); %s",
                self._what,
                f"{type(error).__name__}: {error}".rstrip(": "),
                self._then,
                exc_info=error if self.total == 1 else None,
                extra=fields,
            )
        else:
            self._logger.debug(
                "%s failed again (%d in a row): %s", self._what, self.streak, error, extra=fields
            )

    def succeeded(self) -> None:
        if self.streak:
            self._logger.info("%s works again after %d failure(s)", self._what, self.streak)
        self.streak = 0


class BackgroundTasks:
    """Named background tasks: a crash is logged with its traceback, ``close`` ends them all."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"satellites {name}")
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def close(self) -> None:
        """Cancel every task and wait until each has stopped."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def _report_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("background task %s stopped", task.get_name(), exc_info=error)


async def wait_until(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; whether it was set.

    ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` can swallow
    a cancellation that races the event being set, and a background loop built on it then
    never stops (``DataLayer.stop()`` hangs awaiting it).
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
