"""Driver errors leave the library as library errors that name what refused the call."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from sqlalchemy import text

from satellites_repo import (
    ConflictError,
    DataLayer,
    DataLayerConfig,
    SatellitesError,
    StartupError,
    UnavailableError,
)
from satellites_repo.facade import probe_backends
from tests.integration.conftest import subprocess_environment
from tests.integration.models import Article, Articles


def article(key: uuid.UUID) -> Article:
    return Article(id=key, tenant_id="acme", title="t", body="b", embedding=[1.0, 0, 0, 0])


async def test_a_duplicate_key_is_a_conflict_naming_table_and_constraint(layer: DataLayer) -> None:
    key = uuid.uuid4()
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(key))
        await uow.commit()
    async with layer.unit_of_work() as uow:
        await uow.repository(Articles).add(article(key))
        with pytest.raises(ConflictError) as raised:
            await uow.commit()
    assert raised.value.table == "articles"
    assert raised.value.constraint == "pk_articles"
    assert "pk_articles" in str(raised.value)
    assert isinstance(raised.value.__cause__, Exception)
    async with layer.unit_of_work() as uow:  # the failed commit left nothing behind
        assert await uow.repository(Articles).count() == 1


async def test_a_stopped_postgres_connection_is_unavailable_naming_postgres(
    layer: DataLayer,
) -> None:
    async with layer.unit_of_work() as uow:
        # The server process behind this unit of work's connection, killed from another one.
        pid = await uow.session.scalar(text("SELECT pg_backend_pid()"))
        assert pid is not None
        assert await layer.postgres.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(UnavailableError) as raised:
            await uow.repository(Articles).list()
    assert raised.value.backend == "postgres"
    assert "Articles" not in str(raised.value)  # it names the model, not the repository
    assert "Article" in str(raised.value)


async def test_a_custom_bus_without_the_lifecycle_is_refused_clearly(
    config: DataLayerConfig,
) -> None:
    class SeedOnlyBus:
        def subscribe(self, event_type: str, handler: object) -> None: ...

        def subscribe_all(self, handler: object) -> None: ...

        def unsubscribe(self, event_type: str, handler: object) -> None: ...

        async def publish(self, event: object) -> None: ...

    with pytest.raises(SatellitesError, match="publish_many, start, close"):
        DataLayer(config, events=SeedOnlyBus())  # type: ignore[arg-type]


async def test_the_cli_prints_one_line_for_a_library_error(config: DataLayerConfig) -> None:
    environment = subprocess_environment(
        config,
        SATELLITES_POSTGRES__PORT="1",
        SATELLITES_STARTUP_TIMEOUT="5",
        SATELLITES_REPOSITORIES="tests.integration.models:REPOSITORIES",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "satellites_repo.cli",
        "outbox",
        "status",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    text = (out + err).decode()
    assert process.returncode == 1, text
    assert "could not start postgres" in text
    assert "Traceback" not in text


async def test_startup_names_the_backend(config: DataLayerConfig) -> None:
    broken = config.replace(redis=config.redis.replace(port=1), startup_timeout=5)
    with pytest.raises(StartupError) as raised:
        await DataLayer(broken).start()
    assert set(raised.value.failures) == {"redis"}


async def test_health_probes_each_backend_on_its_own(config: DataLayerConfig) -> None:
    """A wrong Postgres password (here: a closed port) never marks Redis or ES down."""
    broken = config.replace(postgres=config.postgres.replace(port=1), startup_timeout=5)
    health = await probe_backends(broken)
    assert not health.ok
    assert health.details["postgres"]["status"] == "down"
    assert {name: entry["status"] for name, entry in health.details.items() if name != "postgres"}
    for name in ("redis", "elasticsearch", "faiss"):
        assert health.details[name]["status"] == "ok", health.details[name]
