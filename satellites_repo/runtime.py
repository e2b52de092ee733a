"""The write path and background work of a started ``DataLayer``.

Built once the native clients are open: the projections, the outbox, the commit
pipeline, the relay (shared targets) and the FAISS follower (this process's index).
Background tasks are owned here and always cancelled and awaited by ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.ext.asyncio import async_sessionmaker

from satellites_repo import _clients
from satellites_repo.errors import StartupError
from satellites_repo.orm.unit_of_work import TrackedSession, UnitOfWorkRuntime
from satellites_repo.outbox.follower import VectorFollower
from satellites_repo.outbox.rehydrate import Rehydrator
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.settler import Settler
from satellites_repo.outbox.store import OutboxStore
from satellites_repo.outbox.table import outbox_table
from satellites_repo.pipeline import CommitPipeline
from satellites_repo.projections import Dispatcher
from satellites_repo.projections.cache import RedisCache
from satellites_repo.projections.search import SearchProjection
from satellites_repo.projections.vectors import VectorProjection

if TYPE_CHECKING:
    import redis.asyncio as redis
    from elasticsearch import AsyncElasticsearch
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.config import DataLayerConfig
    from satellites_repo.events import EventBus
    from satellites_repo.orm.registry import Registry
    from satellites_repo.vectors import VectorIndex

__all__ = ["Clients", "Runtime"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Clients:
    """The open native clients a runtime is built on."""

    redis: redis.Redis
    postgres: asyncpg.Pool
    engine: AsyncEngine
    elasticsearch: AsyncElasticsearch


class Runtime:
    """Projections, outbox, relay and follower over one set of open clients."""

    def __init__(
        self,
        config: DataLayerConfig,
        registry: Registry,
        events: EventBus,
        vectors: VectorIndex,
        clients: Clients,
    ) -> None:
        self._config = config
        self._registry = registry
        self._clients = clients
        outbox = config.outbox
        self.cache = RedisCache(clients.redis, config.redis.key_prefix, registry)
        self.search = SearchProjection(clients.elasticsearch, config.elasticsearch, registry)
        self.vector_projection = VectorProjection(vectors, registry)
        self.dispatcher = Dispatcher([self.cache, self.search, self.vector_projection])
        self.outbox = OutboxStore(
            clients.postgres,
            max_attempts=outbox.max_attempts,
            backoff_initial=outbox.backoff_initial,
            backoff_max=outbox.backoff_max,
            grace_seconds=outbox.grace_seconds,
            followed=[spec.table for spec in registry.specs if spec.vectors is not None],
        )
        rehydrator = Rehydrator(clients.engine, registry)
        self.relay = Relay(self.outbox, self.dispatcher, events, rehydrator, outbox)
        self.follower = VectorFollower(
            store=self.outbox,
            projection=self.vector_projection,
            rehydrator=rehydrator,
            index=vectors,
            registry=registry,
            engine=clients.engine,
            page_size=outbox.batch_size,
            poll_interval=outbox.follow_interval,
        )
        self.settler = Settler(self.outbox)
        pipeline = CommitPipeline(
            self.dispatcher, events, self.outbox, self.settler, self.follower, rehydrator
        )
        self.unit_of_work = UnitOfWorkRuntime(
            sessionmaker=async_sessionmaker(
                clients.engine, expire_on_commit=False, sync_session_class=TrackedSession
            ),
            registry=registry,
            cache=self.cache,
            search=self.search,
            vectors=vectors,
            before_commit=pipeline.before_commit,
            commit_failed=pipeline.commit_failed,
            after_commit=pipeline.after_commit,
        )
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._relay_stop = asyncio.Event()

    async def open(self, *, snapshot_usable: bool) -> None:
        """Create missing indices, check the outbox, catch FAISS up, start background work.

        Raises ``StartupError`` naming the backend at fault.
        """
        self.settler.start()
        if not self._registry.specs:
            return
        await _named("elasticsearch", self.search.ensure_indices())
        await _named("postgres", self._require_outbox_table())
        if self._config.outbox.follow:
            await _named("postgres", self.follower.catch_up(snapshot_usable=snapshot_usable))
        if self._config.outbox.relay:
            self._spawn("relay", self.relay.run(self._relay_stop))
        if self._config.outbox.follow and self.follower.entities:
            self._listener = await _clients.open_listener(self._config.postgres)
            self._spawn("faiss follower", self.follower.run(self._listener))

    async def close(self) -> None:
        self._relay_stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.settler.close()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def _require_outbox_table(self) -> None:
        exists = await self._clients.postgres.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", outbox_table.name
        )
        if not exists:
            raise RuntimeError(
                f"the {outbox_table.name} table is missing: run `satellites db upgrade` "
                "(or create the library's tables from Base.metadata)"
            )

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"satellites {name}")
        task.add_done_callback(_report_crash)
        self._tasks.append(task)


async def _named(backend: str, work: Awaitable[object]) -> None:
    try:
        await work
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError({backend: f"{type(exc).__name__}: {exc}"}) from exc


def _report_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("background task %s stopped: %r", task.get_name(), error)
