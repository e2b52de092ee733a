"""``DataLayer``: one lifecycle and one health check for every backend.

The native clients stay in the caller's hands (``.redis``, ``.postgres``, ``.engine``,
``.elasticsearch``); the façade only opens them together, proves each one answers, and
closes them together. Using a client outside ``start()``/``stop()`` raises
``LifecycleError`` rather than failing somewhere deep inside a driver.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

from satellites_repo import postgres
from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.backends.faiss import FaissBackend
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.bootstrap import Runtime, build_backends, build_bus, find_backend
from satellites_repo.config import DataLayerConfig, redact
from satellites_repo.errors import ConfigurationError, LifecycleError, StartupError
from satellites_repo.events import CheckedBus, EventBus
from satellites_repo.health import BackendHealth, Health, probe
from satellites_repo.model import Registry, Tenant
from satellites_repo.ops import Operations
from satellites_repo.orm.unit_of_work import UnitOfWork
from satellites_repo.outbox.capture import GRACE_SETTING
from satellites_repo.types import LocalBackend

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as redis
    from elasticsearch import AsyncElasticsearch
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.orm.repository import Repository
    from satellites_repo.types import Backend
    from satellites_repo.vectors import VectorIndex

__all__ = ["DataLayer", "probe_backends"]

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
        faiss = self._config.faiss
        configured = faiss.dimension if "dimension" in faiss.model_fields_set else None
        self._registry = Registry(repositories, configured)
        self._backends = build_backends(self._config, self._registry)
        self._events = build_bus(self._config) if events is None else _checked_bus(events)
        self._state = _State.NEW
        self._pool: asyncpg.Pool | None = None
        self._engine: AsyncEngine | None = None
        self._runtime: Runtime | None = None

    def __repr__(self) -> str:
        return f"<DataLayer {self._state.value}>"

    @property
    def config(self) -> DataLayerConfig:
        return self._config

    @property
    def redis(self) -> redis.Redis:
        """The native redis-py asyncio client."""
        self._require_started("redis")
        return find_backend(self._backends, RedisBackend).client

    @property
    def postgres(self) -> asyncpg.Pool:
        """The native asyncpg pool."""
        return self._require(self._pool, "postgres")

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy ``AsyncEngine`` (asyncpg driver) over the same database."""
        return self._require(self._engine, "engine")

    @property
    def elasticsearch(self) -> AsyncElasticsearch:
        """The native ``AsyncElasticsearch`` client."""
        self._require_started("elasticsearch")
        return find_backend(self._backends, ElasticsearchBackend).client

    @property
    def vectors(self) -> VectorIndex:
        """The in-process FAISS index (loaded from its snapshot by ``start()``)."""
        return find_backend(self._backends, FaissBackend).index

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def operations(self) -> Operations:
        """Reindex, verify and repair, the outbox and its relay: the running system's controls."""
        return Operations(self._require(self._runtime, "operations"))

    def unit_of_work(self, *, tenant: Tenant | None = None) -> UnitOfWork:
        """A new unit of work; enter it with ``async with``.

        ``tenant`` confines ``TenantScoped`` repositories to one tenant's rows (and raw SQL
        on its session, through row-level security); ``ALL_TENANTS`` for unscoped admin work.
        """
        return UnitOfWork(self._require(self._runtime, "unit_of_work()").unit_of_work, tenant)

    async def start(self) -> None:
        if self._state is _State.STARTED:
            return
        if self._state is _State.STOPPED:
            raise LifecycleError("this DataLayer was stopped; create a new one to start again")
        config = self._config
        openers: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("postgres", lambda: postgres.open_postgres_pool(config.postgres)),
            ("postgres", lambda: postgres.open_engine(config.postgres, _engine_settings(config))),
            *((backend.name, backend.open) for backend in self._backends),
        ]
        opened = await asyncio.gather(
            *(self._open(name, opener) for name, opener in openers), return_exceptions=True
        )
        pool, engine = opened[0], opened[1]
        self._pool = None if isinstance(pool, BaseException) else pool
        self._engine = None if isinstance(engine, BaseException) else engine
        failures = _failures(opened, [name for name, _ in openers])
        if not failures:
            failures = await self._open_runtime()
        if failures:
            await self._close_all(opened[2:])
            self._state = _State.STOPPED
            raise StartupError({name: redact(why, config) for name, why in failures.items()})
        self._state = _State.STARTED
        logger.info("data layer started")

    async def _open_runtime(self) -> dict[str, str]:
        assert self._pool is not None
        assert self._engine is not None
        runtime = Runtime(
            self._config, self._registry, self._events, self._backends, self._pool, self._engine
        )
        self._runtime = runtime
        try:
            await runtime.open()
            await self._events.start()
        except StartupError as exc:
            return exc.failures
        except Exception as exc:
            return {"events": f"{type(exc).__name__}: {exc}"}
        return {}

    async def stop(self) -> None:
        """Close every backend; safe to call twice, and after a failed start."""
        if self._state is _State.STOPPED:
            return
        was_started = self._state is _State.STARTED
        self._state = _State.STOPPED
        await self._close_runtime()
        if was_started:  # a half-started copy (a rebuild cut short) is never saved
            for backend in self._backends:
                if isinstance(backend, LocalBackend):
                    await _quietly(f"{backend.name} snapshot", backend.persist())
        await self._close_all([None] * len(self._backends))
        await _quietly("event bus", self._events.close())
        logger.info("data layer stopped")

    async def health(self) -> Health:
        """Probe every backend concurrently; never raises, never waits past the timeout."""
        timeout = self._config.health_timeout
        checks: dict[str, Callable[[], Awaitable[object]]] = {
            "postgres": lambda: postgres.check_postgres(self.postgres),
            **{backend.name: backend.check for backend in self._backends},
        }
        if isinstance(self._events, CheckedBus):
            checks["events"] = self._events.check
        return await _probed(checks, timeout, self._config)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _require_started(self, name: str) -> None:
        if self._state is not _State.STARTED:
            raise LifecycleError(
                f"DataLayer is {self._state.value}: {name} is only available between "
                "`await data.start()` and `await data.stop()` (or inside `async with`)"
            )

    def _require(self, client: T | None, name: str) -> T:
        self._require_started(name)
        if client is None:
            raise LifecycleError(f"DataLayer has no {name}")
        return client

    async def _open(self, name: str, opener: Callable[[], Awaitable[T]]) -> T:
        timeout = self._config.startup_timeout
        try:
            async with asyncio.timeout(timeout):
                return await opener()
        except TimeoutError:
            raise TimeoutError(f"{name} gave no answer within {timeout:g}s") from None

    async def _close_runtime(self) -> None:
        """Background work stops before the clients it uses close; once."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await _quietly("background tasks", runtime.close())

    async def _close_all(self, backend_outcomes: Sequence[object]) -> None:
        """Every client that opened; the runtime first, if it still runs."""
        await self._close_runtime()
        closers: list[Awaitable[Any]] = [
            _quietly(backend.name, backend.close())
            for backend, outcome in zip(self._backends, backend_outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        ]
        if self._pool is not None:
            closers.append(_quietly("postgres", self._pool.close()))
        if self._engine is not None:
            closers.append(_quietly("engine", self._engine.dispose()))
        await asyncio.gather(*closers)
        self._pool = self._engine = None


def _checked_bus(events: EventBus) -> EventBus:
    """The bus given, refused early if it lacks the lifecycle methods."""
    missing = [name for name in ("publish_many", "start", "close") if not hasattr(events, name)]
    if missing:
        raise ConfigurationError(
            f"{type(events).__name__} is not an EventBus: it lacks {', '.join(missing)} "
            "(the seed's four methods plus start(), close() and publish_many())"
        )
    return events


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


async def probe_backends(config: DataLayerConfig) -> Health:
    """Each backend opened, probed and closed on its own, without starting a layer.

    For ``satellites health``: one backend that is down (a wrong password, say) never marks
    the others down, which a failed ``start()`` would.
    """
    backends = build_backends(config, Registry([]))

    async def postgres_answers() -> None:
        pool = await postgres.open_postgres_pool(config.postgres.replace(min_connections=0))
        try:
            await postgres.check_postgres(pool)
        finally:
            await pool.close()

    async def backend_answers(backend: Backend) -> None:
        try:
            await backend.open()
            await backend.check()
        finally:
            await backend.close()

    async def bus_answers(bus: EventBus, checked: CheckedBus) -> None:
        try:
            await bus.start()
            await checked.check()
        finally:
            await bus.close()

    checks: dict[str, Callable[[], Awaitable[object]]] = {"postgres": postgres_answers}
    for backend in backends:
        checks[backend.name] = functools.partial(backend_answers, backend)
    bus = build_bus(config)
    if isinstance(bus, CheckedBus):
        checks["events"] = functools.partial(bus_answers, bus, bus)
    return await _probed(checks, config.health_timeout + config.startup_timeout, config)


async def _probed(
    checks: dict[str, Callable[[], Awaitable[object]]], within: float, config: DataLayerConfig
) -> Health:
    """Every check at once, each under ``within`` seconds; errors redacted of secrets."""
    entries = await asyncio.gather(*(probe(check, within) for check in checks.values()))
    details: dict[str, BackendHealth] = {}
    for name, entry in zip(checks, entries, strict=True):
        if entry["error"] is not None:
            entry["error"] = redact(entry["error"], config)
        details[name] = entry
    return Health.of(details)


def _engine_settings(config: DataLayerConfig) -> dict[str, str]:
    """The unit of work's connections: their captured rows wait out the fast path's grace."""
    return {GRACE_SETTING: f"{config.outbox.grace_seconds} seconds"}
