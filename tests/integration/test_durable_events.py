"""Durable and plain subscribers on both buses, against the real Postgres and RabbitMQ.

Each guarantee is tested on the in-process bus (deliveries from the publication registry
in Postgres) and on ``RabbitMQEventBus``, except those only a broker gives (plain
subscribers in other processes, a broker restart). Faults are real: a consumer process
killed by SIGKILL mid-handler, and a RabbitMQ node of this test's own stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import aio_pika
import pytest

from satellites_repo import DataEvent, DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from satellites_repo.subscriptions import SubscriberStatus
from satellites_repo.subscriptions.rabbitmq import RabbitMQAdmin, dead_queue_name, queue_name
from tests.integration.conftest import subprocess_environment
from tests.integration.models import REPOSITORIES, IntegrationModel

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBERS = ("audit", "mailer", "broken")
WAIT = 60.0


@pytest.fixture(params=["memory", "rabbitmq"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def bus_config(
    config: DataLayerConfig, backend: str, satellites_token: str
) -> AsyncIterator[DataLayerConfig]:
    """This test's bus (own exchange and queue names) with quick retries and polls."""
    events = config.events.replace(
        backend=backend,
        exchange=f"{satellites_token}.events",
        queue_prefix=f"{satellites_token}.",
        poll_interval=0.1,
        handler_timeout=3.0,
        backoff_initial=0.05,
        backoff_max=0.2,
        max_attempts=3,
    )
    outbox = config.outbox.replace(
        grace_seconds=0.5, relay_interval=0.1, backoff_initial=0.1, backoff_max=0.5
    )
    narrowed = config.replace(events=events, outbox=outbox)
    await create_tables(narrowed, IntegrationModel.metadata)
    yield narrowed
    if backend == "rabbitmq":
        await _delete_broker_objects(narrowed)


async def _delete_broker_objects(config: DataLayerConfig) -> None:
    connection = await aio_pika.connect_robust(config.events.amqp_url())
    async with connection:
        channel = await connection.channel()
        for name in SUBSCRIBERS:
            for queue in (queue_name(config.events, name), dead_queue_name(config.events, name)):
                await channel.queue_delete(queue)
        await channel.exchange_delete(config.events.exchange)


@contextlib.asynccontextmanager
async def started(
    config: DataLayerConfig, subscribe: Callable[[DataLayer], None]
) -> AsyncIterator[DataLayer]:
    layer = DataLayer(config, repositories=REPOSITORIES)
    subscribe(layer)
    async with layer:
        yield layer


async def emit(layer: DataLayer, count: int, key: str = "k") -> list[str]:
    """Commit ``count`` probe events, one transaction each; returns their ids."""
    ids = []
    for n in range(count):
        async with layer.unit_of_work() as uow:
            event = DataEvent(
                type="probe.happened", resource="probe", key=key, payload={"n": n}, source="test"
            )
            uow.emit(event)
            await uow.commit()
            ids.append(event.id)
    return ids


async def eventually(check: Callable[[], object], what: str) -> None:
    """Poll ``check`` (sync or async) until it is truthy, for up to ``WAIT`` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                outcome = check()
                if asyncio.iscoroutine(outcome):
                    outcome = await outcome
                if outcome:
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT:g} s: {what}") from None


async def subscriber_status(
    config: DataLayerConfig, layer: DataLayer, name: str
) -> SubscriberStatus:
    if config.events.backend == "rabbitmq":
        return (await RabbitMQAdmin(config.events).status([name]))[0]
    rows = await layer.operations.subscriptions.status()
    return next(row for row in rows if row.name == name)


# -- in one process ---------------------------------------------------------------------------


async def test_a_handler_failing_twice_gets_the_event_three_times(
    bus_config: DataLayerConfig,
) -> None:
    calls: list[str] = []

    async def flaky(event: DataEvent) -> None:
        calls.append(event.id)
        if len(calls) <= 2:
            raise RuntimeError(f"failure {len(calls)}")

    def subscribe(layer: DataLayer) -> None:
        layer.events.subscribe("probe.*", flaky, durable="audit")

    async with started(bus_config, subscribe) as layer:
        [event_id] = await emit(layer, 1)
        await eventually(lambda: len(calls) >= 3, "three attempts")
        if bus_config.events.backend == "memory":
            await eventually(lambda: _done(bus_config, layer, "audit"), "the delivery marked done")
            status = await subscriber_status(bus_config, layer, "audit")
            assert (status.pending, status.dead, status.done) == (0, 0, 1)
        else:
            await eventually(
                lambda: _settled_on_broker(bus_config, layer, "audit"), "the message acked"
            )
        assert calls == [event_id] * 3


async def _done(config: DataLayerConfig, layer: DataLayer, name: str) -> bool:
    status = await subscriber_status(config, layer, name)
    return status.done == 1 and status.pending == 0


async def _settled_on_broker(config: DataLayerConfig, layer: DataLayer, name: str) -> bool:
    status = await subscriber_status(config, layer, name)
    return status.pending == 0 and status.dead == 0


async def test_a_handler_that_always_fails_is_dead_lettered_then_revived(
    bus_config: DataLayerConfig,
) -> None:
    received: list[str] = []
    healthy = asyncio.Event()

    async def broken(event: DataEvent) -> None:
        if not healthy.is_set():
            raise RuntimeError("the mail server is down")
        received.append(event.id)

    def subscribe(layer: DataLayer) -> None:
        layer.events.subscribe("probe.*", broken, durable="broken")

    async with started(bus_config, subscribe) as layer:
        [event_id] = await emit(layer, 1)

        async def dead() -> bool:
            return (await subscriber_status(bus_config, layer, "broken")).dead == 1

        await eventually(dead, "the event dead-lettered")
        status = await subscriber_status(bus_config, layer, "broken")
        assert status.pending == 0
        if bus_config.events.backend == "memory":
            assert status.last_error == "RuntimeError: the mail server is down"

        healthy.set()
        revived = await asyncio.to_thread(
            satellites_cli, bus_config, "events", "retry", "--subscriber", "broken"
        )
        assert "1 dead-lettered event(s) revived" in revived
        await eventually(lambda: received == [event_id], "the revived event handled")
        shown = await asyncio.to_thread(
            satellites_cli, bus_config, "events", "status", "--subscriber", "broken"
        )
        assert "broken" in shown


def satellites_cli(config: DataLayerConfig, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "satellites_repo.cli", *args],
        env=environment(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def environment(config: DataLayerConfig, **extra: str) -> dict[str, str]:
    events = config.events
    return subprocess_environment(
        config,
        SATELLITES_EVENTS__BACKEND=events.backend,
        SATELLITES_EVENTS__EXCHANGE=events.exchange,
        SATELLITES_EVENTS__QUEUE_PREFIX=events.queue_prefix,
        SATELLITES_EVENTS__POLL_INTERVAL=str(events.poll_interval),
        SATELLITES_EVENTS__HANDLER_TIMEOUT=str(events.handler_timeout),
        SATELLITES_EVENTS__BACKOFF_INITIAL=str(events.backoff_initial),
        SATELLITES_EVENTS__BACKOFF_MAX=str(events.backoff_max),
        SATELLITES_EVENTS__MAX_ATTEMPTS=str(events.max_attempts),
        SATELLITES_EVENTS__PORT=str(events.port),
        SATELLITES_OUTBOX__GRACE_SECONDS=str(config.outbox.grace_seconds),
        SATELLITES_OUTBOX__RELAY_INTERVAL=str(config.outbox.relay_interval),
        SATELLITES_OUTBOX__FOLLOW="false",
        **extra,
    )


# -- across processes -------------------------------------------------------------------------


class Consumer:
    """A subprocess running ``event_consumer``; its output lines collected as they come."""

    def __init__(self, config: DataLayerConfig, mode: str, name: str, behaviour: str) -> None:
        self._command = [
            sys.executable,
            "-m",
            "tests.integration.event_consumer",
            mode,
            name,
            behaviour,
        ]
        self._env = environment(config, SATELLITES_FAISS__INDEX_PATH=f"/tmp/{uuid.uuid4().hex}")
        self.lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Consumer:
        self._process = await asyncio.create_subprocess_exec(
            *self._command, env=self._env, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read())
        await eventually(lambda: "ready" in self.lines, "the consumer ready")
        return self

    def handled(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("handled ")]

    def started_on(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("started ")]

    async def kill(self) -> None:
        """SIGKILL, by the pid this object started."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        if self._reader is not None:
            await self._reader

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            self.lines.append(raw.decode().strip())


@contextlib.asynccontextmanager
async def consumers(*started_ones: Consumer) -> AsyncIterator[list[Consumer]]:
    running: list[Consumer] = []
    try:
        for consumer in started_ones:
            running.append(await consumer.start())
        yield running
    finally:
        for consumer in running:
            await consumer.kill()


async def test_a_consumer_killed_mid_handler_gets_the_event_again(
    bus_config: DataLayerConfig,
) -> None:
    hanging = Consumer(bus_config, "durable", "audit", "hang")
    async with consumers(hanging), started(bus_config, lambda layer: None) as layer:
        [event_id] = await emit(layer, 1)
        await eventually(lambda: event_id in hanging.started_on(), "the handler started")
        await hanging.kill()
        async with consumers(Consumer(bus_config, "durable", "audit", "ok")) as [second]:
            await eventually(lambda: event_id in second.handled(), "the event redelivered")
            assert set(second.handled()) == {event_id}


async def test_two_processes_of_one_durable_subscriber_handle_each_event_once(
    bus_config: DataLayerConfig,
) -> None:
    pair = [Consumer(bus_config, "durable", "mailer", "ok") for _ in range(2)]
    async with consumers(*pair), started(bus_config, lambda layer: None) as layer:
        ids = []
        for key in ("a", "b", "c", "d"):
            ids += await emit(layer, 10, key=key)

        def all_handled() -> bool:
            return len(pair[0].handled()) + len(pair[1].handled()) >= len(ids)

        await eventually(all_handled, "every event handled")
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        handled = Counter(pair[0].handled() + pair[1].handled())
        print(f"handled per process: {[len(consumer.handled()) for consumer in pair]}")
        assert set(handled) == set(ids)
        assert max(handled.values()) == 1


@pytest.mark.parametrize("backend", ["rabbitmq"])
async def test_plain_subscribers_in_two_processes_each_see_every_event(
    bus_config: DataLayerConfig,
) -> None:
    pair = [Consumer(bus_config, "plain", "-", "ok") for _ in range(2)]
    async with consumers(*pair), started(bus_config, lambda layer: None) as layer:
        ids = await emit(layer, 20)
        for consumer in pair:
            await eventually(partial(_saw, consumer, ids), "every event in each process")


def _saw(consumer: Consumer, ids: list[str]) -> bool:
    return sorted(consumer.handled()) == sorted(ids)


async def test_events_of_one_key_reach_a_durable_subscriber_in_commit_order(
    bus_config: DataLayerConfig,
) -> None:
    seen: list[str] = []
    failed_once: set[str] = set()

    async def stumbling(event: DataEvent) -> None:
        if event.id not in failed_once and len(failed_once) < 3:
            failed_once.add(event.id)  # a retry must not let a later event of the key overtake
            raise RuntimeError("first try fails")
        seen.append(event.id)

    def subscribe(layer: DataLayer) -> None:
        layer.events.subscribe("probe.*", stumbling, durable="audit")

    async with started(bus_config, subscribe) as layer:
        ids = await emit(layer, 10, key="same")
        await eventually(lambda: len(seen) >= len(ids), "every event")
        assert seen == ids


# -- a broker restart -------------------------------------------------------------------------


class OwnBroker:
    """A RabbitMQ node of this test's own (port, state dir), started by scripts/services."""

    def __init__(self, port: int, state_dir: Path) -> None:
        self.port = port
        self._env = {
            **os.environ,
            "SATELLITES_RABBITMQ_PORT": str(port),
            "SATELLITES_STATE_DIR": str(state_dir),
        }
        self._pidfile = state_dir / f"rabbitmq-{port}" / "rabbitmq.pid"

    def up(self) -> None:
        self._services("up", check=True)

    def stop(self) -> None:
        """SIGTERM to the node's pid (from its pid file), then wait until it has exited."""
        pid = int(self._pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(600):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)
        raise AssertionError(f"rabbitmq node {pid} still runs 60 s after SIGTERM")

    def down(self) -> None:
        self._services("down", check=False)

    def _services(self, action: str, *, check: bool) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / "services"), action, "rabbitmq"],
            env=self._env,
            check=check,
            capture_output=True,
            timeout=180,
        )


def _free_port_pair() -> int:
    """A port that is free on 127.0.0.1, as is the node's distribution port (+ 20000)."""
    for port in random.sample(range(20_000, 45_000), 200):
        try:
            for candidate in (port, port + 20_000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free pair of ports for a RabbitMQ node")


@pytest.fixture
def own_broker(satellites_token: str) -> Iterator[OwnBroker]:
    state_dir = Path("/tmp") / f"{satellites_token}-rabbitmq"  # the rabbitmq user reads it
    broker = OwnBroker(_free_port_pair(), state_dir)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.parametrize("backend", ["rabbitmq"])
async def test_every_event_arrives_across_a_broker_restart(
    bus_config: DataLayerConfig, own_broker: OwnBroker
) -> None:
    config = bus_config.replace(
        events=bus_config.events.replace(port=own_broker.port),
        outbox=bus_config.outbox.replace(max_attempts=10_000),
    )
    received: list[str] = []

    async def audit(event: DataEvent) -> None:
        received.append(event.id)

    def subscribe(layer: DataLayer) -> None:
        layer.events.subscribe("probe.*", audit, durable="audit")

    async with started(config, subscribe) as layer:
        ids = await emit(layer, 200)
        restart = asyncio.create_task(asyncio.to_thread(_restart, own_broker))
        ids += await emit(layer, 800)
        await restart
        await eventually(lambda: set(received) >= set(ids), "every event after the restart")
        duplicates = len(received) - len(set(received))
        print(f"1000 commits across a broker restart: {duplicates} duplicate deliveries (same id)")
        assert set(received) == set(ids)


def _restart(broker: OwnBroker) -> None:
    broker.stop()
    broker.up()
