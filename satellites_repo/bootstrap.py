"""The one composition root: backends from the config, then the outbox and the unit of work.

``BACKENDS`` is where backends are registered: adding one is a module in ``backends/``
and a line here. Everything else (delivery, the relay, followers, reindex, verify, the
CLI, health, the read path) loops over the registered backends and knows none by name.
Background tasks are owned by ``Runtime`` and always cancelled and awaited by ``close()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy.ext.asyncio import async_sessionmaker

from satellites_repo import observe, postgres
from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.errors import ConfigurationError, StartupError
from satellites_repo.events import DurableSubscriptions, EventBus, InProcessEventBus
from satellites_repo.orm.unit_of_work import TrackedSession, UnitOfWorkContext
from satellites_repo.outbox.dispatch import Dispatcher
from satellites_repo.outbox.follower import Follower
from satellites_repo.outbox.hooks import OutboxHooks
from satellites_repo.outbox.monitor import OutboxMonitor
from satellites_repo.outbox.records import EVENTS_TARGET
from satellites_repo.outbox.rehydrate import Rehydrator
from satellites_repo.outbox.related_capture import related_triggers
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.settler import Settler
from satellites_repo.outbox.source import PostgresSource
from satellites_repo.outbox.store import OutboxStore
from satellites_repo.outbox.table import outbox_table
from satellites_repo.retry import BackgroundTasks, Backoff, FailureLog
from satellites_repo.subscriptions import DeliveryRegistry, DurableWorkers
from satellites_repo.subscriptions.rabbitmq import RabbitMQEventBus
from satellites_repo.types import (
    Backend,
    CacheReader,
    HybridRanker,
    LocalBackend,
    TextRanker,
    VectorRanker,
)

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.config import DataLayerConfig
    from satellites_repo.model import EntitySpec, Registry

__all__ = ["BACKENDS", "BackendReaders", "Runtime", "build_backends", "build_bus"]

logger = logging.getLogger(__name__)

B = TypeVar("B", bound=Backend)
T = TypeVar("T")

BackendFactory = Callable[["DataLayerConfig", "Registry"], Backend]

BACKENDS: tuple[BackendFactory, ...] = (
    lambda config, registry: RedisBackend(config.redis, registry),
    lambda config, registry: ElasticsearchBackend(config.elasticsearch, registry),
    lambda config, registry: FaissBackend(
        config.faiss, registry, _vector_dimension(config, registry), config.postgres
    ),
)
"""Every backend a ``DataLayer`` opens, in this order."""


def _vector_dimension(config: DataLayerConfig, registry: Registry) -> int:
    """The ``Vector(n)`` columns' dimension, unless the config sets one explicitly."""
    if "dimension" in config.faiss.model_fields_set or registry.vector_dimension is None:
        return config.faiss.dimension
    return registry.vector_dimension


def build_backends(config: DataLayerConfig, registry: Registry) -> list[Backend]:
    """The registered backends, constructed (nothing is connected yet)."""
    return [factory(config, registry) for factory in BACKENDS]


def build_bus(config: DataLayerConfig) -> EventBus:
    """The bus ``events.backend`` names (``memory`` or ``rabbitmq``), not yet started."""
    if config.events.backend == "rabbitmq":
        return RabbitMQEventBus(config.events)
    return InProcessEventBus()


def find_backend(backends: Sequence[Backend], kind: type[B]) -> B:
    """The backend of class ``kind`` (for the façade's typed native clients)."""
    for backend in backends:
        if isinstance(backend, kind):
            return backend
    raise LookupError(f"no {kind.__name__} is registered")


class BackendReaders:
    """``Readers``: for each repository, the first registered backend offering each read.

    Vectors are read from the first backend that holds the repository's vectors (its
    ``VectorField`` engine), which need not be the first one covering the repository.
    """

    def __init__(self, backends: Sequence[Backend]) -> None:
        self._backends = list(backends)
        self._chosen: dict[tuple[str, type], Backend | None] = {}

    def cache(self, spec: EntitySpec) -> CacheReader | None:
        return cast("CacheReader | None", self._first(spec, CacheReader))

    def text(self, spec: EntitySpec) -> TextRanker | None:
        return cast("TextRanker | None", self._first(spec, TextRanker))

    def vectors(self, spec: EntitySpec) -> VectorRanker | None:
        return cast("VectorRanker | None", self._first(spec, VectorRanker))

    def hybrid(self, spec: EntitySpec) -> HybridRanker | None:
        text, vectors = self.text(spec), self.vectors(spec)
        if text is not None and cast("object", text) is vectors and isinstance(text, HybridRanker):
            return text
        return None

    def _first(self, spec: EntitySpec, kind: type) -> Backend | None:
        slot = (spec.table, kind)
        if slot not in self._chosen:
            self._chosen[slot] = next(
                (b for b in self._backends if isinstance(b, kind) and _serves(b, spec, kind)),
                None,
            )
        return self._chosen[slot]


def _serves(backend: Backend, spec: EntitySpec, kind: type) -> bool:
    if kind is VectorRanker:
        return cast("VectorRanker", backend).holds_vectors(spec)
    return backend.covers(spec)


class Runtime:
    """The outbox, relay, followers and unit-of-work context over open clients."""

    def __init__(
        self,
        config: DataLayerConfig,
        registry: Registry,
        events: EventBus,
        backends: Sequence[Backend],
        pool: asyncpg.Pool,
        engine: AsyncEngine,
    ) -> None:
        self.config = config
        self.registry = registry
        self.backends = list(backends)
        self.engine = engine
        self._pool = pool
        outbox = config.outbox
        locals_ = [_local(backend) for backend in self.backends if not backend.shared]
        followed = [spec.table for spec in registry.specs if any(b.covers(spec) for b in locals_)]
        self.outbox = OutboxStore(
            pool,
            max_attempts=outbox.max_attempts,
            backoff=Backoff(outbox.backoff_initial, outbox.backoff_max),
            grace_seconds=outbox.grace_seconds,
            followed=followed,
        )
        rehydrator = Rehydrator(engine, registry)
        self.source = PostgresSource(engine, self.outbox, rehydrator)
        dispatcher = Dispatcher(self.backends, registry)
        self.relay = Relay(
            self.outbox, dispatcher, events, rehydrator, outbox, publishes=_publishes(events)
        )
        self.followers = [
            Follower(
                store=self.outbox,
                backend=backend,
                rehydrator=rehydrator,
                registry=registry,
                source=self.source,
                page_size=outbox.batch_size,
                poll_interval=outbox.follow_interval,
            )
            for backend in locals_
        ]
        self.settler = Settler(self.outbox)
        self.monitor = OutboxMonitor(pool)
        # A broker-backed bus keeps durable subscriptions in the broker; the in-process
        # bus hands them to the layer, which delivers them from the outbox.
        self.deliveries = DeliveryRegistry.configured(pool, config.events)
        self.durable = (
            DurableWorkers(events, self.deliveries, config.events)
            if isinstance(events, DurableSubscriptions)
            else None
        )
        self._hooks = hooks = OutboxHooks(
            dispatcher,
            events,
            self.outbox,
            self.settler,
            self.followers,
            rehydrator,
            timeout=outbox.delivery_timeout,
        )
        self.unit_of_work = UnitOfWorkContext(
            sessionmaker=async_sessionmaker(
                engine, expire_on_commit=False, sync_session_class=TrackedSession
            ),
            registry=registry,
            readers=BackendReaders(self.backends),
            hooks=hooks,
        )
        self._listener: asyncpg.Connection | None = None
        self._tasks = BackgroundTasks()
        self._stop = asyncio.Event()

    async def backlog(self) -> list[observe.TargetBacklog]:
        """What the outbox owes each shared target and the event bus, now."""
        owed = [backend.name for backend in self.backends if backend.shared]
        return await self.monitor.backlog([*owed, EVENTS_TARGET])

    def follower_of(self, backend: Backend) -> Follower:
        for follower in self.followers:
            if follower.backend is backend:
                return follower
        raise LookupError(f"{backend.name} is not followed in this process")

    async def open(self) -> None:
        """Check the outbox, catch local backends up, start the background work.

        Raises ``StartupError`` naming the backend at fault.
        """
        self.settler.start()
        if self.durable is not None:
            for worker in await _named("events", self.durable.open()):
                self._spawn(
                    f"durable subscriber {worker.subscription.name}",
                    worker.run(self._stop),
                )
        if not self.registry.specs:
            return
        await _named("postgres", self._require_outbox_table())
        await _named("postgres", self._require_capture())
        follow = self.config.outbox.follow
        for follower in self.followers if follow else ():
            await _named(follower.backend.name, follower.catch_up())
            interval = follower.backend.snapshot_interval
            if interval is not None:
                name = follower.backend.name
                self._spawn(f"{name} snapshots", _snapshot_every(follower.backend, interval))
        if self.config.outbox.relay:
            self._spawn("relay", self.relay.run(self._stop))
            if observe.AVAILABLE:  # the relay process reports the backlog it works off
                interval = max(self.config.outbox.relay_interval, 1.0)
                watch = observe.watch_backlog(self.backlog, self._stop, interval=interval)
                self._spawn("outbox gauges", watch)
        followed = [follower for follower in self.followers if follower.tables]
        if follow and followed:
            self._listener = await postgres.open_listener(self.config.postgres)
            for follower in followed:
                self._spawn(f"{follower.backend.name} follower", follower.run(self._listener))

    async def close(self) -> None:
        self._stop.set()
        await self._tasks.close()
        await self.settler.close()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.close()
            except Exception:
                logger.warning("closing the outbox listener failed", exc_info=True)

    async def _require_outbox_table(self) -> None:
        exists = await self._pool.fetchval("SELECT to_regclass($1) IS NOT NULL", outbox_table.name)
        if not exists:
            raise RuntimeError(
                f"the {outbox_table.name} table is missing: run `satellites db upgrade` "
                "(or create the library's tables from Base.metadata)"
            )

    async def _require_capture(self) -> None:
        """Every projected table must have its changes captured by the database."""
        specs = self.registry.specs
        captured = await self.outbox.captured_tables([spec.table for spec in specs])
        missing = sorted(spec.table for spec in specs if spec.projected)
        missing = [table for table in missing if table not in captured]
        if missing:
            raise RuntimeError(
                f"change capture is missing on {', '.join(missing)}: a revision must call "
                "satellites_repo.migrate.install_capture(<table>) (then `satellites db "
                "upgrade`), or create the tables with satellites_repo.migrate.create_tables"
            )
        self._hooks.captured = frozenset(captured)
        triggers = [trigger for spec in specs for trigger in related_triggers(spec)]
        wanted = [(trigger.table, name) for trigger in triggers for name in trigger.names]
        absent = await self.outbox.missing_triggers(wanted)
        lacking = sorted(
            {t.about for t in triggers if any((t.table, n) in absent for n in t.names)}
        )
        if lacking:
            raise RuntimeError(
                f"the capture of related tables is missing for {', '.join(lacking)}: a "
                "revision must call satellites_repo.migrate.install_related_capture(<Repository>) "
                "(then `satellites db upgrade`), or pass repositories=[...] to create_tables"
            )

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(name, work)


def _publishes(events: EventBus) -> Callable[[], bool]:
    """An in-process bus delivers only while something is subscribed to it; any other
    bus (a broker) always does."""
    if isinstance(events, InProcessEventBus):
        return lambda: events.subscribed
    return lambda: True


async def _snapshot_every(backend: LocalBackend, interval: float) -> None:
    """Persist a caught-up copy every ``interval`` seconds until cancelled."""
    failures = FailureLog(logger, f"snapshotting {backend.name}")
    while True:
        await asyncio.sleep(interval)
        try:
            await backend.persist()
            failures.succeeded()
        except Exception as exc:
            failures.failed(exc)


def _local(backend: Backend) -> LocalBackend:
    if not isinstance(backend, LocalBackend):
        raise ConfigurationError(
            f"backend {backend.name!r} is not shared, so it must be a LocalBackend "
            "(a checkpoint and persist()) for every process to follow the outbox into it"
        )
    return backend


async def _named(backend: str, work: Coroutine[Any, Any, T]) -> T:
    try:
        return await work
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError({backend: f"{type(exc).__name__}: {exc}"}) from exc
