"""``DataLayer``: one lifecycle and one health check for every backend.

The native clients stay in the caller's hands (``.redis``, ``.postgres``, ``.engine``,
``.elasticsearch``); the façade only opens them together, proves each one answers, and
closes them together. Using a client outside ``start()``/``stop()`` raises
``LifecycleError`` rather than failing somewhere deep inside a driver.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg
import redis.asyncio as redis
from elasticsearch import AsyncElasticsearch
from sqlalchemy.ext.asyncio import AsyncEngine

from satellites_repo import _clients
from satellites_repo.config import DataLayerConfig, redact
from satellites_repo.errors import LifecycleError, StartupError, VectorIndexError
from satellites_repo.events import EventBus, InProcessEventBus
from satellites_repo.health import BackendHealth, Health, probe
from satellites_repo.orm.registry import Registry
from satellites_repo.orm.repository import Repository
from satellites_repo.orm.unit_of_work import UnitOfWork
from satellites_repo.outbox.follower import VectorFollower
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.store import OutboxStore
from satellites_repo.projections.cache import RedisCache
from satellites_repo.projections.search import SearchProjection
from satellites_repo.runtime import Clients, Runtime
from satellites_repo.vectors import VectorIndex

__all__ = ["DataLayer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _State(enum.Enum):
    NEW = "not started"
    STARTED = "started"
    STOPPED = "stopped"


class DataLayer:
    """Lifecycle and access for Postgres, Redis, Elasticsearch and FAISS.

    ``start()`` opens every backend concurrently, each under ``config.startup_timeout``;
    if any fails, whatever did open is closed again and ``StartupError`` names every
    failing backend. ``stop()`` is idempotent and closes everything even if one close
    fails. A stopped layer cannot be restarted: build a new one.
    """

    def __init__(
        self,
        config: DataLayerConfig | None = None,
        *,
        repositories: Sequence[type[Repository[Any]]] = (),
        events: EventBus | None = None,
    ) -> None:
        self._config = config if config is not None else DataLayerConfig()
        self._registry = Registry(repositories, self._config.faiss.dimension)
        self._state = _State.NEW
        self._redis: redis.Redis | None = None
        self._postgres: asyncpg.Pool | None = None
        self._engine: AsyncEngine | None = None
        self._elasticsearch: AsyncElasticsearch | None = None
        faiss = self._config.faiss
        self._vectors = VectorIndex(
            faiss.index_path,
            faiss.dimension,
            index_type=faiss.index_type,
            hnsw_m=faiss.hnsw_m,
            hnsw_ef_construction=faiss.hnsw_ef_construction,
            hnsw_ef_search=faiss.hnsw_ef_search,
        )
        self._events: EventBus = events if events is not None else InProcessEventBus()
        self._runtime: Runtime | None = None

    def __repr__(self) -> str:
        return f"<DataLayer {self._state.value}>"

    @property
    def config(self) -> DataLayerConfig:
        return self._config

    @property
    def redis(self) -> redis.Redis:
        """The native redis-py asyncio client."""
        return self._require(self._redis, "redis")

    @property
    def postgres(self) -> asyncpg.Pool:
        """The native asyncpg pool."""
        return self._require(self._postgres, "postgres")

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy ``AsyncEngine`` (asyncpg driver) over the same database."""
        return self._require(self._engine, "engine")

    @property
    def elasticsearch(self) -> AsyncElasticsearch:
        """The native ``AsyncElasticsearch`` client."""
        return self._require(self._elasticsearch, "elasticsearch")

    @property
    def vectors(self) -> VectorIndex:
        """The in-process FAISS index (loaded from its snapshot by ``start()``)."""
        return self._vectors

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def outbox(self) -> OutboxStore:
        """The transactional outbox: status, retries, purge."""
        return self._require(self._runtime, "outbox").outbox

    async def settled(self) -> None:
        """Wait until the outbox marks of every commit so far are written (tests, shutdown)."""
        await self._require(self._runtime, "settled()").settler.settled()

    @property
    def relay(self) -> Relay:
        """The relay that delivers what the fast path could not (also run in the background)."""
        return self._require(self._runtime, "relay").relay

    @property
    def cache_projection(self) -> RedisCache:
        """The Redis projection (guarded writes, MGET reads) of the registered repositories."""
        return self._require(self._runtime, "cache_projection").cache

    @property
    def search_projection(self) -> SearchProjection:
        """The Elasticsearch projection: aliases, bulk writes, searches."""
        return self._require(self._runtime, "search_projection").search

    @property
    def follower(self) -> VectorFollower:
        """Keeps this process's FAISS index in step with the outbox; can rebuild it."""
        return self._require(self._runtime, "follower").follower

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work; enter it with ``async with``."""
        runtime = self._require(self._runtime, "unit_of_work()")
        return UnitOfWork(runtime.unit_of_work)

    async def start(self) -> None:
        if self._state is _State.STARTED:
            return
        if self._state is _State.STOPPED:
            raise LifecycleError("this DataLayer was stopped; create a new one to start again")
        config = self._config
        opened = await asyncio.gather(
            self._open("redis", lambda: _clients.open_redis(config.redis)),
            self._open("postgres", lambda: _clients.open_postgres_pool(config.postgres)),
            self._open("postgres", lambda: _clients.open_engine(config.postgres)),
            self._open("elasticsearch", lambda: _clients.open_elasticsearch(config.elasticsearch)),
            self._open("faiss", self._load_snapshot),
            return_exceptions=True,
        )
        redis_client, pool, engine, elasticsearch, snapshot_usable = opened
        self._redis = _value_or_none(redis_client)
        self._postgres = _value_or_none(pool)
        self._engine = _value_or_none(engine)
        self._elasticsearch = _value_or_none(elasticsearch)
        failures = _failures(opened, ["redis", "postgres", "postgres", "elasticsearch", "faiss"])
        if not failures and self._redis and self._postgres and self._engine and self._elasticsearch:
            clients = Clients(self._redis, self._postgres, self._engine, self._elasticsearch)
            failures = await self._open_runtime(clients, snapshot_usable is True)
        if failures:
            await self._close_clients()
            self._state = _State.STOPPED
            raise StartupError({name: redact(why, config) for name, why in failures.items()})
        self._state = _State.STARTED
        logger.info("data layer started")

    async def _load_snapshot(self) -> bool:
        """Load the FAISS snapshot; a corrupt one is reported, then rebuilt from Postgres."""
        try:
            await self._vectors.load()
        except VectorIndexError as exc:
            logger.warning("FAISS snapshot unusable (%s); rebuilding from Postgres", exc)
            return False
        return True

    async def _open_runtime(self, clients: Clients, snapshot_usable: bool) -> dict[str, str]:
        runtime = Runtime(self._config, self._registry, self._events, self._vectors, clients)
        self._runtime = runtime
        try:
            await runtime.open(snapshot_usable=snapshot_usable)
        except StartupError as exc:
            return exc.failures
        return {}

    async def stop(self) -> None:
        """Close every backend; safe to call twice, and after a failed start."""
        if self._state is _State.STOPPED:
            return
        was_started = self._state is _State.STARTED
        self._state = _State.STOPPED
        if self._runtime is not None:
            await self._runtime.close()
        if was_started and await self._vectors.namespaces():
            await _quietly("faiss snapshot", self._vectors.save())
        await self._close_clients()
        close_bus = getattr(self._events, "close", None)
        if close_bus is not None:
            await _quietly("event bus", close_bus())
        logger.info("data layer stopped")

    async def health(self) -> Health:
        """Probe every backend concurrently; never raises, never waits past the timeout."""
        timeout = self._config.health_timeout
        checks: dict[str, Callable[[], Awaitable[object]]] = {
            "redis": lambda: _clients.check_redis(self.redis),
            "postgres": lambda: _clients.check_postgres(self.postgres),
            "elasticsearch": lambda: _clients.check_elasticsearch(self.elasticsearch),
            "faiss": self._vectors.namespaces,
        }
        entries = await asyncio.gather(*(probe(check, timeout) for check in checks.values()))
        details: dict[str, BackendHealth] = {}
        for name, entry in zip(checks, entries, strict=True):
            if entry["error"] is not None:
                entry["error"] = redact(entry["error"], self._config)
            details[name] = entry
        return Health.of(details)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require(self, client: T | None, name: str) -> T:
        if client is None or self._state is not _State.STARTED:
            raise LifecycleError(
                f"DataLayer is {self._state.value}: {name} is only available between "
                "`await data.start()` and `await data.stop()` (or inside `async with`)"
            )
        return client

    async def _open(self, name: str, opener: Callable[[], Awaitable[T]]) -> T:
        timeout = self._config.startup_timeout
        try:
            async with asyncio.timeout(timeout):
                return await opener()
        except TimeoutError:
            raise TimeoutError(f"{name} gave no answer within {timeout:g}s") from None

    async def _close_clients(self) -> None:
        closers: list[Awaitable[Any]] = []
        if self._redis is not None:
            closers.append(_quietly("redis", self._redis.aclose()))
        if self._postgres is not None:
            closers.append(_quietly("postgres", self._postgres.close()))
        if self._engine is not None:
            closers.append(_quietly("engine", self._engine.dispose()))
        if self._elasticsearch is not None:
            closers.append(_quietly("elasticsearch", self._elasticsearch.close()))
        if self._runtime is not None:
            closers.append(_quietly("background tasks", self._runtime.close()))
        await asyncio.gather(*closers)
        self._redis = self._postgres = self._engine = self._elasticsearch = None
        self._runtime = None


def _value_or_none(result: T | BaseException) -> T | None:
    return None if isinstance(result, BaseException) else result


def _failures(results: Sequence[object], names: list[str]) -> dict[str, str]:
    failures: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException) and name not in failures:
            failures[name] = f"{type(result).__name__}: {result}".rstrip(": ")
    return failures


async def _quietly(name: str, closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception:
        logger.exception("closing %s failed; continuing with the others", name)
