"""The relay: delivers what the fast path could not, from any process, at least once.

Several relays may run at once (instances of the app, ``satellites outbox relay``): each
claims disjoint rows with ``FOR UPDATE SKIP LOCKED``; versions keep replays harmless
and out-of-order delivery from moving a projection backwards.

A relay whose process has no subscribers (``satellites outbox relay``, ``verify --repair``,
a worker built without the application's handlers) applies the projections only and
leaves the events owed, due at once, for a relay of a process that has subscribers:
publishing them to an empty in-process bus would mark them delivered to no one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from satellites_repo import observe
from satellites_repo.orm.translate import translated
from satellites_repo.outbox.delivery import deliver
from satellites_repo.retry import FailureLog, wait_until

if TYPE_CHECKING:
    from satellites_repo.config import OutboxConfig
    from satellites_repo.events import EventBus
    from satellites_repo.outbox.dispatch import Dispatcher
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.store import Settlement
    from satellites_repo.retry import Backoff

__all__ = ["DueRows", "Relay"]

logger = logging.getLogger(__name__)


class DueRows(Protocol):
    """What the relay needs of the outbox (``OutboxStore``; a fake in unit tests)."""

    @property
    def backoff(self) -> Backoff: ...

    async def claim(
        self, limit: int, lease_seconds: float, *, events: bool = True
    ) -> list[OutboxRecord]: ...

    async def settle(self, settlements: Iterable[Settlement]) -> None: ...


class Relay:
    """Claims due outbox rows, applies their pending targets and records the outcome."""

    def __init__(
        self,
        store: DueRows,
        dispatcher: Dispatcher,
        events: EventBus,
        rehydrator: Rehydrator,
        config: OutboxConfig,
        *,
        publishes: Callable[[], bool] = lambda: True,
    ) -> None:
        """``publishes``: whether this process delivers events (asked at every pass)."""
        self.entity_name = "outbox relay"
        self._publishes = publishes
        self._store = store
        self._dispatcher = dispatcher
        self._events = events
        self._rehydrator = rehydrator
        self._config = config
        self.failures = FailureLog(logger, "relay pass")

    @translated
    async def run_once(self) -> int:
        """Deliver one batch of due rows; returns how many were claimed."""
        publish = self._publishes()
        records = await self._store.claim(
            self._config.batch_size, self._config.lease_seconds, events=publish
        )
        if records:
            with observe.relay_batch((record.stamp for record in records), len(records)):
                delivery = await deliver(
                    records, self._dispatcher, self._events, self._rehydrator, publish=publish
                )
                settlements = delivery.settlements
                await self._store.settle(settlements)
            left = sum(len(s.seqs) for s in settlements if s.remaining)
            logger.info("relay delivered %d row(s), %d still owed", len(records), left)
        return len(records)

    @translated
    async def drain(self) -> int:
        """Deliver until nothing is due; returns the number of rows claimed."""
        total = 0
        while claimed := await self.run_once():
            total += claimed
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; a failing pass (Postgres away) backs off and retries."""
        while not stop.is_set():
            try:
                claimed = await self.run_once()
                self.failures.succeeded()
            except Exception as exc:
                self.failures.failed(exc)
                claimed = 0
            if claimed == self._config.batch_size:
                continue
            pause = (
                self._store.backoff.delay(self.failures.streak)
                if self.failures.streak
                else self._config.relay_interval
            )
            await wait_until(stop, pause)
