"""Fixtures for tests against the real Postgres, Redis and Elasticsearch.

Integration tests never skip: when a server is missing they fail with a message that says
how to start it, so a run without servers cannot pass by accident. Each test gets its own
Postgres schema, Redis key prefix, index prefix and FAISS folder, from the library's own
pytest plugin (``satellites_repo.testing``), the same fixtures users get.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from tests.integration.models import REPOSITORIES, IntegrationModel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def config(satellites_config: DataLayerConfig) -> DataLayerConfig:
    """The plugin's isolated config (own schema, key prefix, index prefix, FAISS folder,
    all removed afterwards), with the 4-d vectors of the test models."""
    return satellites_config.replace(faiss=satellites_config.faiss.replace(dimension=4))


@pytest.fixture
async def data(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    async with DataLayer(config) as layer:
        yield layer


@pytest.fixture
async def layer(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """A started layer with the test models' repositories and tables."""
    await create_tables(config, IntegrationModel.metadata)
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


async def run_cli(
    config: DataLayerConfig, repositories: str, *arguments: str
) -> tuple[int, str, str]:
    """``satellites ARGUMENTS`` in a child process on this test's schema and prefixes:
    (exit code, stdout, stderr)."""
    environment = subprocess_environment(
        config,
        SATELLITES_FAISS__INDEX_PATH=f"{config.faiss.index_path}-cli",
        SATELLITES_REPOSITORIES=repositories,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "satellites_repo.cli",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(180):
        output, errors = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(), errors.decode()
