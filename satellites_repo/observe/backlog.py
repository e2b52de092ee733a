"""Outbox backlog gauges: owed rows, oldest owed change and dead letters per target.

OpenTelemetry reads observable gauges from its own thread (a Prometheus scrape, a
periodic exporter), where Postgres cannot be awaited. So a process that watches the
outbox (the relay, ``satellites metrics``) reads the backlog on its event loop and
``publish_backlog``\\s it here; the gauges report the latest reading. A process holds one
reading: the outbox is one table, whichever layer read it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.observe import _otel
from satellites_repo.observe.metrics import TARGET
from satellites_repo.retry import FailureLog, wait_until

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["TargetBacklog", "publish_backlog", "watch_backlog"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TargetBacklog:
    """What the outbox owes one target now."""

    target: str
    owed: int
    oldest_age: float
    """Seconds since the oldest owed (not dead) change was written; 0 when none is owed."""
    dead: int


class _Reading:
    """The latest backlog, read by the gauge callbacks."""

    def __init__(self) -> None:
        self.backlog: tuple[TargetBacklog, ...] = ()

    def observe(self, field: str) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [
            Observation(getattr(entry, field), {TARGET: entry.target}) for entry in self.backlog
        ]


@functools.cache
def _reading() -> _Reading:
    reading = _Reading()
    meter = _otel.meter()

    def gauge(name: str, field: str, unit: str, description: str) -> None:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return reading.observe(field)

        meter.create_observable_gauge(name, [callback], unit=unit, description=description)

    gauge("satellites.outbox.depth", "owed", "{row}", "Outbox rows owed to the target")
    gauge(
        "satellites.outbox.oldest_age",
        "oldest_age",
        "s",
        "Age of the oldest change owed to the target",
    )
    gauge("satellites.outbox.dead_letters", "dead", "{row}", "Dead-lettered rows of the target")
    return reading


def publish_backlog(backlog: Sequence[TargetBacklog]) -> None:
    """Make ``backlog`` what the outbox gauges report (a no-op without OpenTelemetry)."""
    if _otel.AVAILABLE:
        _reading().backlog = tuple(backlog)


async def watch_backlog(
    read: Callable[[], Awaitable[Sequence[TargetBacklog]]],
    stop: asyncio.Event,
    *,
    interval: float,
) -> None:
    """Publish ``read()`` every ``interval`` seconds until ``stop``; failures back off quietly."""
    failures = FailureLog(logger, "reading the outbox backlog for its gauges")
    while not stop.is_set():
        try:
            publish_backlog(await read())
            failures.succeeded()
        except Exception as exc:
            failures.failed(exc)
        await wait_until(stop, interval)
