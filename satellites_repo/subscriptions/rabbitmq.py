"""``RabbitMQEventBus``: the ``EventBus`` on a RabbitMQ broker, through aio-pika.

Install ``satellites-repo[rabbitmq]``; aio-pika is imported only when a bus starts.

- Publishing: every event goes to one durable topic exchange (``EventsConfig.exchange``)
  with the event type as routing key, persistent, on a channel with publisher confirms.
  ``publish_many`` returns once the broker confirmed every event of the batch, or raises;
  the outbox keeps the events owed until then, so a crash or an outage after COMMIT
  only delays them (the relay publishes them again; a replay keeps the event's id).
- Durable subscribers (``subscribe(..., durable="name")``): one durable queue per name,
  ``<queue_prefix><name>``, with the broker's single-active-consumer flag: however many
  processes subscribe the name, one consumes at a time (the next takes over when it goes
  away), so each event is handled once per name and in publish order. A message is
  acknowledged after its handler returned; a failing handler is retried in place with
  ``Backoff`` up to ``max_attempts``, then the message is dead-lettered into
  ``<queue_prefix><name>.dead`` (``satellites events retry`` moves it back).
- Plain subscribers: a bus with any has one exclusive, auto-deleted queue bound to every
  event, so every process sees every event; its handlers run as on the in-process bus
  (best effort, isolated from each other). The queue is bound by ``start()`` when plain
  handlers were subscribed before it; one subscribed later is bound in the background a
  moment after ``subscribe`` returns, and sees the events published from then on.

``aio_pika.connect_robust`` reconnects after a broker restart and declares the exchange,
queues, bindings and consumers again. Messages the broker confirmed are persistent in
durable queues, so they survive the restart; one being handled when the connection
broke is delivered again (handlers de-duplicate on ``DataEvent.id``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from satellites_repo.errors import LifecycleError
from satellites_repo.events import (
    DataEvent,
    DurableSubscription,
    EventHandler,
    InProcessEventBus,
    durable_subscription,
)
from satellites_repo.model.codec import json_bytes
from satellites_repo.outbox.records import event_row_payload, stored_event
from satellites_repo.retry import BackgroundTasks, Backoff
from satellites_repo.subscriptions.registry import SubscriberStatus

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
        AbstractRobustConnection,
    )

    from satellites_repo.config import EventsConfig

__all__ = ["RabbitMQAdmin", "RabbitMQEventBus", "decode_event", "encode_event"]

logger = logging.getLogger(__name__)

_WILDCARD_CHARS = frozenset("*?[#")


def _aio_pika() -> Any:
    try:
        import aio_pika
    except ImportError as exc:
        raise ImportError(
            "RabbitMQEventBus needs aio-pika: install the extra satellites-repo[rabbitmq]"
        ) from exc
    return aio_pika


def encode_event(event: DataEvent) -> bytes:
    """An event as the JSON body of a message: the outbox's stored form, plus its id."""
    return json_bytes({"id": event.id, **event_row_payload(event)})


def decode_event(body: bytes) -> DataEvent:
    """The event a message carries; ``ValueError`` names what is wrong with it."""
    try:
        data = orjson.loads(body)
        return stored_event(data, data["id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a DataEvent message: {type(exc).__name__}: {exc}") from exc


def queue_name(config: EventsConfig, subscriber: str) -> str:
    return f"{config.queue_prefix}{subscriber}"


def dead_queue_name(config: EventsConfig, subscriber: str) -> str:
    return f"{queue_name(config, subscriber)}.dead"


async def _declare_durable(
    channel: AbstractChannel, config: EventsConfig, subscriber: str
) -> AbstractQueue:
    """The subscriber's queue (and its dead-letter queue), as every process declares it."""
    dead = dead_queue_name(config, subscriber)
    await channel.declare_queue(dead, durable=True)
    return await channel.declare_queue(
        queue_name(config, subscriber),
        durable=True,
        arguments={
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )


class RabbitMQEventBus:
    """``EventBus`` over RabbitMQ; see the module docstring for the guarantees.

    Subscribe durable handlers before ``start()``; plain ones any time.
    """

    def __init__(self, config: EventsConfig) -> None:
        _aio_pika()  # fail at construction, naming the extra, not at the first publish
        self._config = config
        self._backoff = Backoff(config.backoff_initial, config.backoff_max)
        self._local = InProcessEventBus()
        self._durable: dict[str, DurableSubscription] = {}
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._tasks = BackgroundTasks()
        self._plain_wanted = False
        self._closed = False

    def subscribe(
        self, event_type: str, handler: EventHandler, *, durable: str | None = None
    ) -> None:
        if durable is None:
            self._local.subscribe(event_type, handler)
            self._want_plain_queue()
            return
        if not event_type:
            raise ValueError("event_type must not be empty; use subscribe_all for every event")
        if self._connection is not None:
            raise LifecycleError(
                f"durable subscriber {durable!r}: subscribe durable handlers before start()"
            )
        self._durable[durable] = durable_subscription(durable, event_type, handler, self._durable)

    def subscribe_all(self, handler: EventHandler, *, durable: str | None = None) -> None:
        self.subscribe("*", handler, durable=durable)

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None:
        """Remove a plain subscription; durable consumers run until the bus closes."""
        self._local.unsubscribe(event_type, handler)

    async def publish(self, event: DataEvent) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[DataEvent]) -> None:
        """Publish in order; returns once the broker confirmed every event, else raises."""
        exchange = self._require_exchange(events)
        aio_pika = _aio_pika()
        async with asyncio.timeout(self._config.confirm_timeout):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            encode_event(event),
                            message_id=event.id,
                            type=event.type,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=event.type,
                        mandatory=False,
                    )
                    for event in events
                )
            )

    async def start(self) -> None:
        """Connect, declare the exchange and queues, start consuming."""
        if self._closed:
            raise LifecycleError("this RabbitMQEventBus was closed; create a new one")
        if self._connection is not None:
            return
        aio_pika = _aio_pika()
        config = self._config
        connection = await aio_pika.connect_robust(
            config.amqp_url(), timeout=config.confirm_timeout
        )
        self._connection = connection
        try:
            publisher = await connection.channel(publisher_confirms=True)
            self._exchange = await publisher.declare_exchange(
                config.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            for subscription in self._durable.values():
                await self._consume_durable(connection, subscription)
            if self._plain_wanted:
                self._tasks.spawn("rabbitmq plain subscribers", await self._consume_plain())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closed = True
        await self._tasks.close()
        connection, self._connection = self._connection, None
        self._exchange = None
        if connection is not None:
            await connection.close()
        await self._local.close()

    async def check(self) -> None:
        """Raise unless the broker answers (a passive declare of the exchange)."""
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("not connected to RabbitMQ")
        async with self._connection.channel() as channel:
            await channel.get_exchange(self._config.exchange, ensure=True)

    # -- consuming --------------------------------------------------------------------------

    async def _consume_durable(
        self, connection: AbstractRobustConnection, subscription: DurableSubscription
    ) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self._config.prefetch)
        queue = await _declare_durable(channel, self._config, subscription.name)
        exact = _WILDCARD_CHARS.isdisjoint(subscription.pattern)
        await queue.bind(self._config.exchange, routing_key=subscription.pattern if exact else "#")
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put)
        self._tasks.spawn(
            f"rabbitmq durable subscriber {subscription.name}",
            self._durable_loop(subscription, inbox),
        )

    def _want_plain_queue(self) -> None:
        """The first plain subscription brings the process's queue (not before: a queue
        bound to every event costs the broker as much as a subscriber)."""
        if self._plain_wanted:
            return
        self._plain_wanted = True
        if self._connection is not None:
            self._tasks.spawn("rabbitmq plain subscribers", self._plain_after_start())

    async def _plain_after_start(self) -> None:
        await (await self._consume_plain())

    async def _consume_plain(self) -> Coroutine[Any, Any, None]:
        """Declare, bind and consume the plain queue; returns the loop to run."""
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._config.prefetch)
        name = f"{self._config.queue_prefix}plain.{uuid.uuid4().hex}"
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(self._config.exchange, routing_key="#")
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put, no_ack=True)
        return self._plain_loop(inbox)

    async def _plain_loop(self, inbox: asyncio.Queue[AbstractIncomingMessage]) -> None:
        while True:
            message = await inbox.get()
            try:
                event = decode_event(message.body)
            except ValueError:
                logger.exception("dropping an undecodable message %s", message.message_id)
                continue
            await self._local.publish(event)

    async def _durable_loop(
        self, subscription: DurableSubscription, inbox: asyncio.Queue[AbstractIncomingMessage]
    ) -> None:
        """One message at a time, in order: acknowledged once handled, else dead-lettered."""
        unacknowledged = 0
        while True:
            message = await inbox.get()
            try:
                event = decode_event(message.body)
            except ValueError:
                logger.exception(
                    "durable subscriber %r: dead-lettering an undecodable message %s",
                    subscription.name,
                    message.message_id,
                )
                await _settle(message.reject(requeue=False))
                continue
            if not subscription.matches(event.type) or await self._handled(subscription, event):
                # One ack for the messages handled so far, when nothing else is waiting
                # or half the prefetch window is held.
                unacknowledged += 1
                if inbox.empty() or unacknowledged * 2 >= self._config.prefetch:
                    await _settle(message.ack(multiple=True))
                    unacknowledged = 0
            else:
                await _settle(message.reject(requeue=False))

    async def _handled(self, subscription: DurableSubscription, event: DataEvent) -> bool:
        """Up to ``max_attempts`` tries, ``Backoff`` apart; whether one succeeded."""
        attempts = self._config.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self._config.handler_timeout):
                    await subscription.handler(event)
                return True
            except Exception as exc:
                final = attempt == attempts
                logger.log(
                    logging.ERROR if final else logging.WARNING,
                    "durable subscriber %r failed on %s (event id %s), attempt %d of %d%s",
                    subscription.name,
                    event.type,
                    event.id,
                    attempt,
                    attempts,
                    ": dead-lettered" if final else "; retrying",
                    exc_info=exc,
                )
                if not final:
                    await asyncio.sleep(self._backoff.delay(attempt))
        return False

    def _require_exchange(self, events: Sequence[DataEvent]) -> AbstractExchange:
        if self._exchange is None:
            state = "closed" if self._closed else "not started"
            first = f" ({events[0].type} {events[0].id})" if events else ""
            raise LifecycleError(f"RabbitMQEventBus is {state}; cannot publish{first}")
        return self._exchange


async def _settle(settling: Any) -> None:
    """Ack or reject; on a channel the broker already closed, the broker redelivers."""
    try:
        await settling
    except Exception as exc:
        logger.info("acknowledging a message failed (the broker will redeliver it): %s", exc)


class RabbitMQAdmin:
    """``satellites events`` on RabbitMQ: the named subscribers' queues and dead letters."""

    def __init__(self, config: EventsConfig) -> None:
        self._config = config

    async def status(self, names: Sequence[str]) -> list[SubscriberStatus]:
        async with await self._connect() as connection:
            channel = await connection.channel()
            statuses = []
            for name in names:
                queue = await _declare_durable(channel, self._config, name)
                dead = await channel.declare_queue(
                    dead_queue_name(self._config, name), passive=True
                )
                statuses.append(
                    SubscriberStatus(
                        name=name,
                        pattern="",
                        pending=_count(queue),
                        dead=_count(dead),
                        done=None,
                        oldest_pending=None,
                        last_error=None,
                    )
                )
            return statuses

    async def retry_dead(self, name: str) -> int:
        """Move the subscriber's dead letters back to its queue (with confirms)."""
        aio_pika = _aio_pika()
        moved = 0
        async with await self._connect() as connection:
            channel = await connection.channel(publisher_confirms=True)
            await _declare_durable(channel, self._config, name)
            dead = await channel.declare_queue(dead_queue_name(self._config, name), passive=True)
            while (message := await dead.get(no_ack=False, fail=False)) is not None:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        message_id=message.message_id,
                        type=message.type,
                        content_type=message.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue_name(self._config, name),
                )
                await message.ack()
                moved += 1
        return moved

    async def purge(self, name: str) -> int:
        """Drop the subscriber's dead letters; returns how many there were."""
        async with await self._connect() as connection:
            channel = await connection.channel()
            dead = await channel.declare_queue(dead_queue_name(self._config, name), passive=True)
            result = await dead.purge()
            return int(result.message_count or 0)

    async def _connect(self) -> AbstractRobustConnection:
        aio_pika = _aio_pika()
        connection: AbstractRobustConnection = await aio_pika.connect_robust(
            self._config.amqp_url(), timeout=self._config.confirm_timeout
        )
        return connection


def _count(queue: AbstractQueue) -> int:
    declared = queue.declaration_result
    return int(declared.message_count or 0)
