"""Durable subscribers of the in-process bus, delivered from the publication registry.

Each durable subscription gets one loop in each process that subscribes it: derive its
new deliveries from the outbox, claim a batch (at most one per entity key, so handlers
of one batch run concurrently without breaking the order per key), run the handler
under ``EventsConfig.handler_timeout``, record what succeeded and what failed. A failed
delivery is retried after ``Backoff.delay(attempt)`` and dead-lettered after
``max_attempts``. The loop wakes after every local ``publish_many`` and otherwise polls
every ``poll_interval``, so commits of other processes arrive within one interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from satellites_repo.retry import FailureLog, wait_until

if TYPE_CHECKING:
    from satellites_repo.config import EventsConfig
    from satellites_repo.events import DurableSubscription, DurableSubscriptions
    from satellites_repo.subscriptions.registry import Claimed, DeliveryRegistry

__all__ = ["DurableWorker", "DurableWorkers"]

logger = logging.getLogger(__name__)


class DurableWorker:
    """Delivers one durable subscription's events in this process."""

    def __init__(
        self, subscription: DurableSubscription, registry: DeliveryRegistry, config: EventsConfig
    ) -> None:
        self.subscription = subscription
        self._registry = registry
        self._config = config
        # A lease outlives the handler's deadline: no second instance takes an event
        # whose handler may still be running.
        self._lease = 2 * config.handler_timeout
        self._woken = asyncio.Event()
        self.failures = FailureLog(logger, f"durable subscriber {subscription.name!r}")

    def wake(self) -> None:
        self._woken.set()

    async def run_once(self) -> int:
        """Deliver one batch; returns how many deliveries were attempted."""
        name = self.subscription.name
        await self._registry.materialize(self.subscription, self._config.batch_size)
        claimed = await self._registry.claim(name, self._config.batch_size, self._lease)
        errors = await asyncio.gather(*(self._handle(delivery) for delivery in claimed))
        done = [delivery.seq for delivery, error in zip(claimed, errors, strict=True) if not error]
        failed = {
            delivery.seq: (delivery.attempt, error)
            for delivery, error in zip(claimed, errors, strict=True)
            if error
        }
        await self._registry.done(name, done)
        await self._registry.failed(name, failed)
        return len(claimed)

    async def drain(self) -> int:
        """Deliver until nothing is due now; returns the deliveries attempted."""
        total = 0
        while attempted := await self.run_once():
            total += attempted
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; a failing pass (Postgres away) backs off."""
        while not stop.is_set():
            try:
                attempted = await self.run_once()
                self.failures.succeeded()
            except Exception as exc:
                self.failures.failed(exc)
                attempted = 0
            if attempted == self._config.batch_size:
                continue
            pause = (
                self._registry.backoff.delay(self.failures.streak)
                if self.failures.streak
                else self._config.poll_interval
            )
            await wait_until(self._woken, pause)
            self._woken.clear()

    async def _handle(self, delivery: Claimed) -> str | None:
        """Run the handler once; the failure's description, or ``None`` on success."""
        if delivery.event is None:
            return delivery.missing
        event = delivery.event
        try:
            async with asyncio.timeout(self._config.handler_timeout):
                await self.subscription.handler(event)
        except Exception as exc:  # TimeoutError included: the handler overran its deadline
            final = delivery.attempt >= self._config.max_attempts
            logger.log(
                logging.ERROR if final else logging.WARNING,
                "durable subscriber %r failed on %s (event id %s), attempt %d of %d%s",
                self.subscription.name,
                event.type,
                event.id,
                delivery.attempt,
                self._config.max_attempts,
                ": dead-lettered" if final else "; retrying",
                exc_info=exc,
            )
            return f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
        return None


class DurableWorkers:
    """Every durable subscription of a bus, each with its worker."""

    def __init__(
        self, bus: DurableSubscriptions, registry: DeliveryRegistry, config: EventsConfig
    ) -> None:
        self.registry = registry
        self._bus = bus
        self._config = config
        self.workers: list[DurableWorker] = []

    async def open(self) -> Sequence[DurableWorker]:
        """Register the bus's durable subscriptions; returns the workers to run."""
        self.workers = [
            DurableWorker(subscription, self.registry, self._config)
            for subscription in self._bus.durable_subscriptions()
        ]
        for worker in self.workers:
            await self.registry.register(worker.subscription)
        if self.workers:
            self._bus.on_published(self.wake)
        return self.workers

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def drain(self) -> int:
        """Deliver everything due now in this process (tests, ``satellites events``)."""
        return sum([await worker.drain() for worker in self.workers])
