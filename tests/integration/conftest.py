"""Fixtures for tests against the real Postgres, Redis and Elasticsearch.

Integration tests never skip: when a server is missing they fail with a message that says
how to start it (``make services``), so a run without servers cannot pass by accident.
Each test gets its own Postgres schema, Redis key prefix, index prefix and FAISS folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo._clients import open_postgres_pool
from satellites_repo.migrate import create_tables
from satellites_repo.testing import purge_prefixes
from tests.integration.models import REPOSITORIES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
async def config(unique: str, tmp_path: Path) -> AsyncIterator[DataLayerConfig]:
    """A config on the real servers with a schema, key prefix and index prefix of its own."""
    base = DataLayerConfig.from_env()
    schema = f"t_{unique}"
    admin = await _admin_pool(base)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        config = base.replace(
            postgres=base.postgres.replace(
                schema_name=schema, min_connections=1, max_connections=4
            ),
            redis=base.redis.replace(key_prefix=f"t{unique}:"),
            elasticsearch=base.elasticsearch.replace(
                index_prefix=f"t{unique}-", refresh="wait_for"
            ),
            faiss=base.faiss.replace(index_path=tmp_path / "faiss", dimension=4),
        )
        yield config
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await purge_prefixes(config)  # keys and indices, whichever layer made them
    finally:
        await admin.close()


@pytest.fixture
async def data(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    async with DataLayer(config) as layer:
        yield layer


async def _admin_pool(config: DataLayerConfig) -> asyncpg.Pool:
    try:
        return await open_postgres_pool(
            config.postgres.replace(min_connections=1, max_connections=2)
        )
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"Postgres is not reachable at {config.postgres.host}:{config.postgres.port} ({exc}); "
            'start the servers with `make services` and load `eval "$(scripts/services env)"`',
            pytrace=False,
        )


@pytest.fixture
async def layer(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """A started layer with the test models' repositories and tables."""
    await create_tables(config)
    async with DataLayer(config, repositories=REPOSITORIES) as started:
        yield started


def subprocess_environment(config: DataLayerConfig, **extra: str) -> dict[str, str]:
    """Variables that give a child process this test's schema, prefixes and dimension."""
    return {
        **os.environ,
        "SATELLITES_POSTGRES__SCHEMA_NAME": config.postgres.schema_name or "",
        "SATELLITES_REDIS__KEY_PREFIX": config.redis.key_prefix,
        "SATELLITES_ELASTICSEARCH__INDEX_PREFIX": config.elasticsearch.index_prefix,
        "SATELLITES_FAISS__DIMENSION": str(config.faiss.dimension),
        **extra,
    }
