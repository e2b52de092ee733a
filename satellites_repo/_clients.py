"""Opening, checking and closing the native clients, one backend at a time.

Each opener proves the connection works (a round trip) before returning the client, so a
``DataLayer`` that started is a ``DataLayer`` that can talk to every backend. Nothing here
keeps state: the façade owns what these functions return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson
import redis.asyncio as redis
from elasticsearch import AsyncElasticsearch
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from satellites_repo.config import ElasticsearchConfig, PostgresConfig, RedisConfig
from satellites_repo.orm.codec import json_default

__all__ = [
    "check_elasticsearch",
    "check_postgres",
    "check_redis",
    "open_elasticsearch",
    "open_engine",
    "open_listener",
    "open_postgres_pool",
    "open_redis",
    "sqlalchemy_url",
]

APPLICATION_NAME = "satellites"

C = TypeVar("C")


async def _proven(
    client: C, check: Callable[[C], Awaitable[object]], close: Callable[[], Awaitable[object]]
) -> C:
    """``client`` once a round trip succeeded; closed again (never leaked) if it failed."""
    try:
        await check(client)
    except BaseException:
        await close()
        raise
    return client


def _server_settings(config: PostgresConfig) -> dict[str, str]:
    settings = {"application_name": APPLICATION_NAME}
    if config.schema_name:
        settings["search_path"] = config.schema_name
    return settings


def sqlalchemy_url(config: PostgresConfig) -> URL:
    """The asyncpg URL for SQLAlchemy; its repr masks the password."""
    return URL.create(
        "postgresql+asyncpg",
        username=config.user,
        password=config.password_value(),
        host=config.host,
        port=config.port,
        database=config.database,
    )


async def open_redis(config: RedisConfig) -> redis.Redis:
    client = redis.Redis(
        host=config.host,
        port=config.port,
        db=config.db,
        username=config.username,
        password=config.password_value(),
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        health_check_interval=30,
    )
    return await _proven(client, check_redis, client.aclose)


async def check_redis(client: redis.Redis) -> None:
    await client.ping()


def _connect_arguments(config: PostgresConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "database": config.database,
        "user": config.user,
        "password": config.password_value(),
        "timeout": config.timeout,
        "server_settings": _server_settings(config),
    }


async def open_postgres_pool(config: PostgresConfig) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        min_size=config.min_connections,
        max_size=config.max_connections,
        **_connect_arguments(config),
    )
    return pool


async def open_listener(config: PostgresConfig) -> asyncpg.Connection:
    """A connection of its own for LISTEN, so no pool slot is held for the layer's lifetime."""
    connection: asyncpg.Connection = await asyncpg.connect(**_connect_arguments(config))
    return connection


async def check_postgres(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")


async def open_engine(config: PostgresConfig) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(config),
        pool_size=config.max_connections,
        max_overflow=0,
        pool_pre_ping=config.pre_ping,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        connect_args={"timeout": config.timeout, "server_settings": _server_settings(config)},
    )
    return await _proven(engine, _connect_once, engine.dispose)


def json_text(value: Any) -> str:
    """JSON columns through orjson (several times faster than the standard library)."""
    return orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()


async def _connect_once(engine: AsyncEngine) -> None:
    async with engine.connect():
        pass


async def open_elasticsearch(config: ElasticsearchConfig) -> AsyncElasticsearch:
    auth: dict[str, Any] = {}
    password = config.password_value()
    if config.username and password:
        auth["basic_auth"] = (config.username, password)
    client = AsyncElasticsearch(
        hosts=config.hosts, request_timeout=config.timeout, retry_on_timeout=True, **auth
    )
    return await _proven(client, check_elasticsearch, client.close)


async def check_elasticsearch(client: AsyncElasticsearch) -> None:
    # Cluster health rather than GET /: minimal distributions (the integ-test zip) lack the
    # root endpoint, and health is what a readiness check means anyway.
    health = await client.cluster.health()
    if health["status"] == "red":
        raise RuntimeError("cluster status is red")
