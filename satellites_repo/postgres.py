"""Opening Postgres: the asyncpg pool, the SQLAlchemy engine and a LISTEN connection.

Postgres is the source of truth, not a projection backend, so it has no ``Backend``
object; its clients are opened here and owned by the façade. Openers that return a
client prove it works (a round trip) first, and close it again if that fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from satellites_repo.config import PostgresConfig
from satellites_repo.health import proven
from satellites_repo.model import BYPASS, TENANT_SETTING, json_bytes

__all__ = [
    "check_postgres",
    "open_connection",
    "open_engine",
    "open_listener",
    "open_postgres_pool",
    "sqlalchemy_url",
]

APPLICATION_NAME = "satellites"


def _server_settings(
    config: PostgresConfig, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every library connection starts unscoped (``satellites.tenant = '*'``): the relay,
    reindex, verify and rehydration see every tenant's rows through the row-level security
    policies; a unit of work opened for a tenant narrows its own transactions with SET LOCAL.
    """
    settings = {"application_name": APPLICATION_NAME, TENANT_SETTING: BYPASS, **(extra or {})}
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
    return await open_connection(config)


async def open_connection(config: PostgresConfig) -> asyncpg.Connection:
    """One connection outside the pool (LISTEN, a session-level advisory lock)."""
    connection: asyncpg.Connection = await asyncpg.connect(**_connect_arguments(config))
    return connection


async def check_postgres(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")


async def open_engine(
    config: PostgresConfig, settings: Mapping[str, str] | None = None
) -> AsyncEngine:
    """The SQLAlchemy engine; ``settings``: extra session settings of its connections."""
    engine = create_async_engine(
        sqlalchemy_url(config),
        pool_size=config.max_connections,
        max_overflow=0,
        pool_pre_ping=config.pre_ping,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        connect_args={
            "timeout": config.timeout,
            "server_settings": _server_settings(config, settings),
        },
    )
    return await proven(engine, _connect_once, engine.dispose)


def json_text(value: Any) -> str:
    """JSON columns through the library's one encoder (orjson)."""
    return json_bytes(value).decode()


async def _connect_once(engine: AsyncEngine) -> None:
    async with engine.connect():
        pass
