"""DataEvents and the bus that carries them after a commit.

``EventBus`` is the seam for transports (``RabbitMQEventBus`` in
``satellites_repo.subscriptions.rabbitmq``); ``InProcessEventBus`` is the default for one
process. Handlers are isolated from each other: one that raises is logged and the rest
still receive the event.

Two kinds of subscription:

- plain (``subscribe(pattern, handler)``): best effort. The handler is called once per
  event published in this process; if it raises, the failure is logged and the event is
  gone for that handler.
- durable (``subscribe(pattern, handler, durable="name")``): at least once per subscriber
  name across every process, in commit order per entity key, retried with backoff and
  dead-lettered after ``EventsConfig.max_attempts``. The in-process bus hands its durable
  subscriptions to the data layer (``DurableSubscriptions``), which delivers them from
  Postgres; a broker bus keeps them in the broker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol, runtime_checkable

from satellites_repo.errors import LifecycleError

__all__ = [
    "CheckedBus",
    "DataEvent",
    "DurableSubscription",
    "DurableSubscriptions",
    "EventBus",
    "EventHandler",
    "InProcessEventBus",
    "durable_subscription",
]

logger = logging.getLogger(__name__)

_WILDCARD_CHARS = frozenset("*?[")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class DataEvent:
    """Something that happened to a resource, published only once it is durable.

    ``id`` is unique per event; an event replayed from the outbox keeps its id, so
    consumers de-duplicate on it. ``timestamp`` is timezone-aware UTC.
    """

    type: str
    resource: str
    key: str
    payload: Mapping[str, Any]
    source: str
    timestamp: datetime = field(default_factory=_utc_now)
    version: int | None = None
    id: str = field(default_factory=_new_event_id)


EventHandler = Callable[[DataEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DurableSubscription:
    """A handler that must see every matching committed event: one per name."""

    name: str
    pattern: str
    handler: EventHandler

    def matches(self, event_type: str) -> bool:
        return fnmatchcase(event_type, self.pattern)


class EventBus(Protocol):
    """What the data layer needs from a bus: subscriptions, publishing and a lifecycle.

    The seed's four methods (``durable=`` is an optional keyword on top), plus ``start``
    (a broker-backed bus opens its connection there; the layer calls it from
    ``DataLayer.start()``), ``close`` and ``publish_many`` (one call per delivery of
    outbox rows, in commit order, so a broker can batch its confirms).
    """

    def subscribe(
        self, event_type: str, handler: EventHandler, *, durable: str | None = None
    ) -> None: ...

    def subscribe_all(self, handler: EventHandler, *, durable: str | None = None) -> None: ...

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None: ...

    async def publish(self, event: DataEvent) -> None: ...

    async def publish_many(self, events: Sequence[DataEvent]) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class DurableSubscriptions(Protocol):
    """A bus whose durable subscriptions the data layer delivers itself, from Postgres.

    ``durable_subscriptions`` is read when the layer starts; ``on_published`` gives the
    bus a callback to ring after each ``publish_many``, so this process's durable
    deliveries start at once instead of at the next poll.
    """

    def durable_subscriptions(self) -> Sequence[DurableSubscription]: ...

    def on_published(self, wake: Callable[[], None]) -> None: ...


@runtime_checkable
class CheckedBus(Protocol):
    """A bus with a server behind it: ``check`` raises when the server does not answer.

    ``DataLayer.health()`` reports it as ``events``.
    """

    async def check(self) -> None: ...


class InProcessEventBus:
    """Pub/sub within one process.

    ``event_type`` may be an exact type (``"articles.created"``) or a shell-style pattern
    (``"articles.*"``); ``subscribe_all`` is the pattern ``"*"``. The handlers of one event
    run concurrently and ``publish`` returns when all have finished; a failing handler is
    logged with the event id and never stops the others or the publisher.

    A durable subscription is not called by ``publish``: the data layer delivers it from
    the outbox (see the module docstring), so subscribe durable handlers before
    ``DataLayer.start()``.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list[EventHandler]] = {}
        self._patterns: dict[str, list[EventHandler]] = {}
        self._durable: dict[str, DurableSubscription] = {}
        self._wakes: list[Callable[[], None]] = []
        self._closed = False

    def subscribe(
        self, event_type: str, handler: EventHandler, *, durable: str | None = None
    ) -> None:
        """``durable``: the subscriber's name, the same in every process that runs it."""
        if not event_type:
            raise ValueError("event_type must not be empty; use subscribe_all for every event")
        if durable is not None:
            self._durable[durable] = durable_subscription(
                durable, event_type, handler, self._durable
            )
            return
        self._table_for(event_type).setdefault(event_type, []).append(handler)

    def subscribe_all(self, handler: EventHandler, *, durable: str | None = None) -> None:
        self.subscribe("*", handler, durable=durable)

    def durable_subscriptions(self) -> Sequence[DurableSubscription]:
        return list(self._durable.values())

    def on_published(self, wake: Callable[[], None]) -> None:
        self._wakes.append(wake)

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None:
        """Remove one subscription; removing one that does not exist is a no-op.

        A durable subscription removed after the layer started still runs until it stops.
        """
        for name, subscription in list(self._durable.items()):
            if (subscription.pattern, subscription.handler) == (event_type, handler):
                del self._durable[name]
        table = self._table_for(event_type)
        handlers = table.get(event_type, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            table.pop(event_type, None)

    @property
    def subscribed(self) -> bool:
        """Whether anything is subscribed: a bus without subscribers delivers to no one."""
        return bool(self._exact or self._patterns)

    def handlers_for(self, event_type: str) -> list[EventHandler]:
        """The handlers an event of this type reaches, exact subscriptions first."""
        matched = list(self._exact.get(event_type, ()))
        for pattern, handlers in self._patterns.items():
            if fnmatchcase(event_type, pattern):
                matched.extend(handlers)
        return matched

    async def publish(self, event: DataEvent) -> None:
        if self._closed:
            raise LifecycleError(f"event bus is closed; cannot publish {event.type} {event.id}")
        handlers = self.handlers_for(event.type)
        if len(handlers) == 1:
            await self._deliver(handlers[0], event)
            return
        await asyncio.gather(*(self._deliver(handler, event) for handler in handlers))

    async def publish_many(self, events: Sequence[DataEvent]) -> None:
        """Publish each event in order (handlers of one event run concurrently)."""
        for event in events:
            await self.publish(event)
        for wake in self._wakes:
            wake()

    async def start(self) -> None:
        """Nothing to open in one process; a closed bus stays closed."""

    async def close(self) -> None:
        """Refuse further publishing; subscriptions are dropped."""
        self._closed = True
        self._exact.clear()
        self._patterns.clear()
        self._durable.clear()
        self._wakes.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def _table_for(self, event_type: str) -> dict[str, list[EventHandler]]:
        if _WILDCARD_CHARS.isdisjoint(event_type):
            return self._exact
        return self._patterns

    @staticmethod
    async def _deliver(handler: EventHandler, event: DataEvent) -> None:
        try:
            await handler(event)
        except Exception:
            logger.exception(
                "event handler %s failed for %s (event id %s)",
                getattr(handler, "__qualname__", repr(handler)),
                event.type,
                event.id,
            )


def durable_subscription(
    name: str, pattern: str, handler: EventHandler, taken: Mapping[str, DurableSubscription]
) -> DurableSubscription:
    """A validated durable subscription; one name is one subscriber, with one handler."""
    if not name.strip():
        raise ValueError("a durable subscription needs a non-blank name")
    if name in taken:
        raise ValueError(
            f"durable subscriber {name!r} is already subscribed (to {taken[name].pattern!r}); "
            "one name is one subscriber with one pattern and one handler"
        )
    return DurableSubscription(name, pattern, handler)
