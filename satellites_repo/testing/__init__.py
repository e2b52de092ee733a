"""A pytest plugin: each test gets real, isolated Postgres, Redis, Elasticsearch and FAISS.

Installed with the package (entry point ``pytest11``), so any suite that has satellites
and pytest-asyncio installed can ask for these fixtures without importing anything:

``satellites_config``
    ``DataLayerConfig.from_env()`` narrowed to this test: its own Postgres schema, Redis
    key prefix, Elasticsearch index prefix and FAISS folder. Afterwards the schema is
    dropped and the keys and indices with those prefixes are deleted.

``satellites_migrated``
    The same config, its schema migrated to ``heads`` (the application's revisions and the
    library's branch) with the ``alembic.ini`` of ``satellites_alembic_ini``: by default
    the one in the working directory, as for ``satellites db``; override the fixture to
    point elsewhere (``satellites init`` writes a ``conftest.py`` that does).

``satellites_layer_factory``
    ``await satellites_layer_factory(repositories=[...])`` gives a started ``DataLayer``
    on that config, stopped after the test. Request ``satellites_migrated`` too, or pass
    ``create_tables=Base.metadata`` to create the tables without migrations.

Why real backends rather than a rolled-back transaction: peer libraries wrap each test in
a transaction that is never committed and silence after-commit indexing, so they cannot
show what this library is about, the projections and events that follow a COMMIT. Here
commits really happen, Redis, Elasticsearch and FAISS really receive them and DataEvents
are really published; isolation comes from the per-test names instead.

When a server cannot be reached the fixtures fail the test (never skip it), saying which
backend and how to point ``SATELLITES_*`` variables at a running one, so a suite run
without servers cannot pass by accident.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

import asyncpg
import pytest
from elasticsearch import ApiError, TransportError
from redis.exceptions import RedisError
from sqlalchemy import MetaData

from satellites_repo.backends.elasticsearch import ElasticsearchBackend
from satellites_repo.backends.redis import RedisBackend
from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import SatellitesError
from satellites_repo.events import EventBus
from satellites_repo.facade import DataLayer
from satellites_repo.migrate import create_tables, upgrade
from satellites_repo.model import Registry, Vector
from satellites_repo.orm.repository import Repository

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's environment
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "DataLayerFactory",
    "isolated_config",
    "purge_prefixes",
    "satellites_alembic_ini",
    "satellites_config",
    "satellites_layer_factory",
    "satellites_migrated",
    "satellites_token",
    "vector_dimension",
]

START_HINT = (
    "start Postgres, Redis and Elasticsearch and point the SATELLITES_* variables at them "
    '(in a satellites checkout: `make services` then `eval "$(scripts/services env)"`)'
)


_CLEANUP_ERRORS = (OSError, RedisError, ApiError, TransportError)


class DataLayerFactory(Protocol):
    """The callable ``satellites_layer_factory`` gives a test."""

    async def __call__(
        self,
        repositories: Sequence[type[Repository[Any]]] = (),
        *,
        create_tables: MetaData | None = None,
        events: EventBus | None = None,
        dimension: int | None = None,
    ) -> DataLayer: ...


def isolated_config(base: DataLayerConfig, stem: str, faiss_path: Path) -> DataLayerConfig:
    """``base`` with every shared name derived from ``stem`` and a FAISS folder of its own.

    Schema ``stem``, Redis keys ``stem:*``, Elasticsearch indices ``stem-*``. Searches see
    a commit as soon as it returns, which a test relies on: ``refresh="true"`` refreshes
    the written shards at once, where ``"wait_for"`` waits for the next scheduled refresh
    (about a second per commit).
    """
    return base.replace(
        postgres=base.postgres.replace(schema_name=stem, min_connections=1, max_connections=4),
        redis=base.redis.replace(key_prefix=f"{stem}:"),
        elasticsearch=base.elasticsearch.replace(index_prefix=f"{stem}-", refresh="true"),
        faiss=base.faiss.replace(index_path=faiss_path),
    )


def vector_dimension(repositories: Iterable[type[Repository[Any]]]) -> int | None:
    """The dimension of the repositories' ``Vector`` columns, if they declare any.

    With several different dimensions the first is returned; ``DataLayer`` then names
    the repository that does not match.
    """
    for repository in repositories:
        field = repository.vectors
        if field is None:
            continue
        column_type = repository.model.__table__.c[field.column].type
        if isinstance(column_type, Vector):
            return column_type.dimension
    return None


async def purge_prefixes(config: DataLayerConfig) -> None:
    """Delete the Redis keys and Elasticsearch indices under ``config``'s prefixes.

    Elasticsearch refuses wildcard deletes (``destructive_requires_name``), so the
    indices are listed by prefix and deleted by name.
    """
    key_prefix, index_prefix = config.redis.key_prefix, config.elasticsearch.index_prefix
    if not key_prefix or not index_prefix:
        raise ValueError("refusing to purge without both a Redis key prefix and an index prefix")
    cache = RedisBackend(config.redis, Registry([]))
    await cache.open()
    try:
        redis = cache.client
        keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*", count=1000)]
        if keys:
            await redis.unlink(*keys)
    finally:
        await cache.close()
    search = ElasticsearchBackend(config.elasticsearch, Registry([]))
    await search.open()
    try:
        indices = await search.client.indices.get(
            index=f"{index_prefix}*", allow_no_indices=True, expand_wildcards="all"
        )
        if indices:
            await search.client.indices.delete(index=",".join(indices))
    finally:
        await search.close()


def _failure(message: str) -> BaseException:
    """What ``pytest.fail`` raises, to raise ``from None``: the driver's traceback is noise."""
    return pytest.fail.Exception(f"satellites: {message}", pytrace=False)


def _unreachable(backend: str, exc: BaseException) -> BaseException:
    return _failure(f"{backend} is not reachable ({exc}); {START_HINT}")


def _async_fixture(function: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture``, or a fixture that says pytest-asyncio is missing."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(function)

    def missing() -> NoReturn:  # pragma: no cover - depends on the user's environment
        pytest.fail(
            f"{function.__name__} needs pytest-asyncio: pip install 'satellites-repo[test]'",
            pytrace=False,
        )

    return pytest.fixture(name=function.__name__)(missing)


@pytest.fixture
def satellites_token() -> str:
    """The stem of this test's schema, key prefix and index prefix (``satest`` + 10 hex)."""
    return f"satest{uuid.uuid4().hex[:10]}"


@_async_fixture
async def satellites_config(
    satellites_token: str, tmp_path: Path
) -> AsyncIterator[DataLayerConfig]:
    """The environment's config narrowed to this test; its data is removed afterwards."""
    try:
        base = DataLayerConfig.from_env()
    except SatellitesError as exc:
        raise _failure(str(exc)) from None
    config = isolated_config(base, satellites_token, tmp_path / "satellites-faiss")
    schema = satellites_token
    await _postgres(config, f'CREATE SCHEMA "{schema}"')
    try:
        yield config
    finally:
        await _postgres(config, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        try:
            await purge_prefixes(config)
        except _CLEANUP_ERRORS as exc:
            raise _unreachable("redis or elasticsearch", exc) from None


async def _postgres(config: DataLayerConfig, statement: str) -> None:
    try:
        connection = await asyncpg.connect(
            host=config.postgres.host,
            port=config.postgres.port,
            database=config.postgres.database,
            user=config.postgres.user,
            password=config.postgres.password_value(),
            timeout=config.postgres.timeout,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise _unreachable(_postgres_name(config), exc) from None
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def satellites_alembic_ini() -> Path:
    """The Alembic configuration ``satellites_migrated`` applies: ``./alembic.ini``."""
    return Path("alembic.ini")


@_async_fixture
async def satellites_migrated(
    satellites_config: DataLayerConfig, satellites_alembic_ini: Path
) -> DataLayerConfig:
    """``satellites_config`` with its schema migrated to ``heads``."""
    try:
        await upgrade(satellites_alembic_ini, "heads", config=satellites_config)
    except SatellitesError as exc:
        raise _failure(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise _unreachable(_postgres_name(satellites_config), exc) from None
    return satellites_config


def _postgres_name(config: DataLayerConfig) -> str:
    return f"postgres at {config.postgres.host}:{config.postgres.port}"


async def _create_tables(config: DataLayerConfig, metadata: MetaData) -> None:
    """Before the layer starts: it refuses to start without the library's outbox table."""
    try:
        await create_tables(config, metadata)
    except (OSError, asyncpg.PostgresError) as exc:
        raise _unreachable(_postgres_name(config), exc) from None


@_async_fixture
async def satellites_layer_factory(
    satellites_config: DataLayerConfig,
) -> AsyncIterator[DataLayerFactory]:
    """Started ``DataLayer`` objects on ``satellites_config``; all stopped after the test.

    After-commit projections and events really run: a commit reaches Redis,
    Elasticsearch and FAISS, and handlers subscribed on ``layer.events`` are called.
    ``create_tables`` is a ``MetaData`` whose tables are created in the test's schema
    before the layer starts, without migrations (else request ``satellites_migrated``);
    pass ``Base.metadata`` so the library's tables (the outbox) are created too.
    ``dimension`` is the FAISS dimension: by default that of the repositories' ``Vector``
    column, else the configured one.
    """
    started: list[DataLayer] = []

    async def make(
        repositories: Sequence[type[Repository[Any]]] = (),
        *,
        create_tables: MetaData | None = None,
        events: EventBus | None = None,
        dimension: int | None = None,
    ) -> DataLayer:
        wanted = dimension or vector_dimension(repositories) or satellites_config.faiss.dimension
        config = satellites_config.replace(faiss=satellites_config.faiss.replace(dimension=wanted))
        if create_tables is not None:
            await _create_tables(config, create_tables)
        layer = DataLayer(config, repositories=repositories, events=events)
        try:
            await layer.start()
        except SatellitesError as exc:
            raise _failure(f"{exc}; {START_HINT}") from None
        started.append(layer)
        return layer

    try:
        yield make
    finally:
        for layer in reversed(started):
            await layer.stop()
