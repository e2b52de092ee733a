"""The pytest plugin (``satellites_repo.testing``): isolated real backends for users' tests."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from satellites_repo import Base, DataEvent, DataLayer, DataLayerConfig
from satellites_repo.demo import (
    DIM,
    VECTOR_NAMESPACE,
    Articles,
    HashingEmbedder,
    Tenant,
    Tenants,
    generate_articles,
    to_articles,
)
from satellites_repo.testing import DataLayerFactory, vector_dimension
from tests.integration.models import Articles as FourDimensionalArticles
from tests.integration.models import Tags

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

INNER_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_the_vector_dimension_comes_from_the_repositories() -> None:
    assert vector_dimension([Tenants, Articles]) == DIM
    assert vector_dimension([Tags, FourDimensionalArticles]) == 4
    assert vector_dimension([Tenants, Tags]) is None


async def test_the_config_is_narrowed_to_this_test(
    satellites_config: DataLayerConfig, satellites_token: str, tmp_path: Path
) -> None:
    assert satellites_token.startswith("satest")
    assert satellites_config.postgres.schema_name == satellites_token
    assert satellites_config.redis.key_prefix == f"{satellites_token}:"
    assert satellites_config.elasticsearch.index_prefix == f"{satellites_token}-"
    assert satellites_config.elasticsearch.refresh == "true"
    assert satellites_config.faiss.index_path.is_relative_to(tmp_path)
    assert (await leftovers(satellites_token))["schema"]


async def test_a_factory_layer_commits_projects_and_publishes(
    satellites_layer_factory: DataLayerFactory, satellites_token: str
) -> None:
    layer = await satellites_layer_factory([Articles, Tenants], create_tables=Base.metadata)
    assert layer.config.faiss.dimension == DIM
    events: list[DataEvent] = []

    async def record(event: DataEvent) -> None:
        events.append(event)

    layer.events.subscribe_all(record)
    seeds = generate_articles(3)
    async with layer.unit_of_work() as uow:
        await uow.repository(Tenants).add_many(
            [Tenant(id=tenant, name=tenant) for tenant in {seed.tenant_id for seed in seeds}]
        )
        await uow.repository(Articles).add_many(to_articles(seeds, HashingEmbedder()))
        await uow.commit()

    created = sorted(event.type for event in events)
    assert created == ["kb_articles.created"] * 3 + ["kb_tenants.created"] * 3
    async with layer.unit_of_work() as uow:
        page = await uow.repository(Articles).search(seeds[0].title, limit=1)
    assert [hit.entity.id for hit in page] == [seeds[0].id]
    assert await layer.vectors.count(VECTOR_NAMESPACE) == 3
    found = await leftovers(satellites_token)
    assert len(found["keys"]) == 3
    assert found["indices"] == [f"{satellites_token}-kb-articles-000001"]


async def test_the_plugin_removes_what_a_test_left(pytester: pytest.Pytester) -> None:
    names = pytester.path / "names.json"
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        test_inner=f"""
        from pathlib import Path

        from satellites_repo.demo import Articles, HashingEmbedder, Tenant, Tenants
        from satellites_repo.demo import generate_articles, to_articles
        from satellites_repo import Base


        async def test_writes_to_every_backend(satellites_layer_factory, satellites_token):
            Path({str(names)!r}).write_text(satellites_token)
            layer = await satellites_layer_factory([Articles, Tenants], create_tables=Base.metadata)
            seeds = generate_articles(1)
            async with layer.unit_of_work() as uow:
                await uow.repository(Tenants).add(Tenant(id=seeds[0].tenant_id, name="x"))
                await uow.repository(Articles).add_many(to_articles(seeds, HashingEmbedder()))
                await uow.commit()
            assert await layer.redis.exists(*[k async for k in layer.redis.scan_iter()]) > 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    token = names.read_text()
    assert token.startswith("satest")
    assert await leftovers(token) == {"schema": False, "keys": [], "indices": []}


def test_unreachable_postgres_fails_the_test_and_says_what_to_do(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATELLITES_POSTGRES_URL", "postgresql://postgres@127.0.0.1:1/satellites")
    pytester.makeini(INNER_INI)
    pytester.makepyfile("async def test_needs_servers(satellites_config):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*satellites: postgres at 127.0.0.1:1 is not reachable*"])
    result.stdout.fnmatch_lines(["*point the SATELLITES_* variables at them*"])
    assert result.ret != 0


def test_unreachable_redis_fails_the_factory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATELLITES_REDIS_URL", "redis://127.0.0.1:1/0")
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        "async def test_needs_a_layer(satellites_layer_factory):\n"
        "    await satellites_layer_factory()\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1
    assert "skipped" not in outcomes
    result.stdout.fnmatch_lines(["*satellites: could not start redis*"])


async def leftovers(stem: str) -> dict[str, Any]:
    """What the shared servers still hold under a test's names."""
    config = DataLayerConfig.from_env()
    with tempfile.TemporaryDirectory() as unused:
        config = config.replace(faiss=config.faiss.replace(index_path=Path(unused)))
        async with DataLayer(config) as layer:
            schema = await layer.postgres.fetchval(
                "SELECT count(*) > 0 FROM information_schema.schemata WHERE schema_name = $1", stem
            )
            keys = [key async for key in layer.redis.scan_iter(match=f"{stem}:*")]
            indices = await layer.elasticsearch.indices.get(
                index=f"{stem}-*", allow_no_indices=True
            )
    return {"schema": schema, "keys": keys, "indices": sorted(indices)}
