"""DataEvents and the bus that carries them after a commit.

``EventBus`` is the seam for other transports (a RabbitMQ bus is the planned next one);
``InProcessEventBus`` is the default for one process. Handlers are isolated from each
other: one that raises is logged and the rest still receive the event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from satellites_repo.errors import LifecycleError

__all__ = ["DataEvent", "EventBus", "EventHandler", "InProcessEventBus"]

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


class EventBus(Protocol):
    """What the data layer needs from a bus: subscriptions, publishing and a lifecycle.

    The seed's four methods, plus ``start`` (a broker-backed bus opens its connection
    there; the layer calls it from ``DataLayer.start()``), ``close`` and ``publish_many``
    (one call per commit, in commit order, so a broker can batch its confirms).
    """

    def subscribe(self, event_type: str, handler: EventHandler) -> None: ...

    def subscribe_all(self, handler: EventHandler) -> None: ...

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None: ...

    async def publish(self, event: DataEvent) -> None: ...

    async def publish_many(self, events: Sequence[DataEvent]) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class InProcessEventBus:
    """Pub/sub within one process.

    ``event_type`` may be an exact type (``"articles.created"``) or a shell-style pattern
    (``"articles.*"``); ``subscribe_all`` is the pattern ``"*"``. The handlers of one event
    run concurrently and ``publish`` returns when all have finished; a failing handler is
    logged with the event id and never stops the others or the publisher.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list[EventHandler]] = {}
        self._patterns: dict[str, list[EventHandler]] = {}
        self._closed = False

    def subscribe(self, event_type: str, handler: EventHandler) -> None:
        if not event_type:
            raise ValueError("event_type must not be empty; use subscribe_all for every event")
        self._table_for(event_type).setdefault(event_type, []).append(handler)

    def subscribe_all(self, handler: EventHandler) -> None:
        self.subscribe("*", handler)

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None:
        """Remove one subscription; removing one that does not exist is a no-op."""
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

    async def start(self) -> None:
        """Nothing to open in one process; a closed bus stays closed."""

    async def close(self) -> None:
        """Refuse further publishing; subscriptions are dropped."""
        self._closed = True
        self._exact.clear()
        self._patterns.clear()

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
