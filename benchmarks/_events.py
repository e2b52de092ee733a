"""Event throughput on RabbitMQ: ``RabbitMQEventBus`` against hand-written aio-pika.

Both sides do the same work over the same broker: publish N events in batches (one
``publish_many`` per batch, as the outbox delivers them) to a durable topic exchange,
persistent, with publisher confirms awaited for every batch; one durable subscriber
consumes them from its durable queue and acknowledges each after its handler ran. The
clock runs from the first publish until the subscriber has acknowledged the last event.
Each side gets its own exchange and queue, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from _environment import Bench
from _stats import Figure, Target

from satellites_repo import DataEvent
from satellites_repo.config import EventsConfig
from satellites_repo.model.codec import json_bytes
from satellites_repo.subscriptions.rabbitmq import RabbitMQEventBus, dead_queue_name, queue_name

__all__ = ["event_throughput"]

BATCH = 100
SUBSCRIBER = "bench"


def _events(count: int) -> list[DataEvent]:
    return [
        DataEvent(
            type="bench_articles.created",
            resource="bench_articles",
            key=str(uuid.uuid4()),
            payload={"title": f"title {n}", "body": "body " * 20, "n": n},
            source="postgres",
            version=1,
        )
        for n in range(count)
    ]


def _batches(events: Sequence[DataEvent]) -> list[Sequence[DataEvent]]:
    return [events[start : start + BATCH] for start in range(0, len(events), BATCH)]


class _Arrivals:
    """Counts handled events; ``all_in`` is set once ``expected`` have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.all_in = asyncio.Event()

    def one(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_in.set()


async def _library(config: EventsConfig, events: Sequence[DataEvent]) -> float:
    arrivals = _Arrivals(len(events))

    async def handler(event: DataEvent) -> None:
        arrivals.one()

    bus = RabbitMQEventBus(config)
    bus.subscribe("*", handler, durable=SUBSCRIBER)
    await bus.start()
    try:
        started = time.perf_counter()
        for batch in _batches(events):
            await bus.publish_many(batch)
        await asyncio.wait_for(arrivals.all_in.wait(), timeout=300)
        return time.perf_counter() - started
    finally:
        await bus.close()


async def _hand_written(config: EventsConfig, events: Sequence[DataEvent]) -> float:
    arrivals = _Arrivals(len(events))
    connection = await aio_pika.connect_robust(config.amqp_url())
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        exchange = await publisher.declare_exchange(
            config.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=config.prefetch)
        queue = await consumer.declare_queue(queue_name(config, SUBSCRIBER), durable=True)
        await queue.bind(exchange, routing_key="#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrivals.one()
            await message.ack()

        await queue.consume(on_message)
        started = time.perf_counter()
        for batch in _batches(events):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            json_bytes({"id": event.id, "type": event.type, **event.payload}),
                            message_id=event.id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=event.type,
                    )
                    for event in batch
                )
            )
        await asyncio.wait_for(arrivals.all_in.wait(), timeout=300)
        return time.perf_counter() - started


async def _cleanup(config: EventsConfig) -> None:
    connection = await aio_pika.connect_robust(config.amqp_url())
    async with connection:
        channel = await connection.channel()
        for name in (queue_name(config, SUBSCRIBER), dead_queue_name(config, SUBSCRIBER)):
            await channel.queue_delete(name)
        await channel.exchange_delete(config.exchange)


async def event_throughput(bench: Bench, repetitions: int, count: int) -> list[Figure]:
    """Seconds for ``count`` events, both sides, alternating which goes first."""
    base = bench.data.config.events
    sides: list[Callable[[EventsConfig, Sequence[DataEvent]], Awaitable[float]]] = [
        _library,
        _hand_written,
    ]
    seconds: list[list[float]] = [[], []]
    for repetition in range(-1, repetitions):  # repetition -1 warms up, unrecorded
        for offset in range(2):
            side = (offset + repetition) % 2
            config = base.replace(
                exchange=f"bench_{bench.run_id}_{side}.events",
                queue_prefix=f"bench_{bench.run_id}_{side}.",
            )
            try:
                elapsed = await sides[side](config, _events(count))
            finally:
                await _cleanup(config)
            if repetition >= 0:
                seconds[side].append(elapsed)
    ours, theirs = seconds
    return [
        Figure(
            name=f"events on RabbitMQ ({count:,}, confirms, one durable subscriber)",
            metric="seconds from first publish to last ack",
            unit="s",
            subject="satellites",
            baseline="aio-pika: topic exchange, confirms, durable queue, ack",
            subject_values=ours,
            baseline_values=theirs,
            target=Target("<=", 1.3),
            notes={
                "events_per_second": [count / s for s in ours],
                "baseline_events_per_second": [count / s for s in theirs],
                "batch": BATCH,
            },
        )
    ]
