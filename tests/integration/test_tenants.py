"""Tenants are walls, against the real servers: two tenants with the same texts and vectors,
every read path from each returns only its own rows, and every escape fails or finds nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from satellites_repo import (
    ALL_TENANTS,
    AnyOf,
    DataLayer,
    DataLayerConfig,
    Secret,
    TenantError,
)
from satellites_repo.backends.redis import CachedRow, RedisBackend
from satellites_repo.migrate import create_tables
from satellites_repo.postgres import open_postgres_pool
from tests.integration.conftest import run_cli
from tests.integration.models import Case, Cases, TenantModel
from tests.integration.stores import settle_everything

TENANTS = ("acme", "globex")
SUBJECTS = ("printer jam", "printer offline", "login broken")


def other(tenant: str) -> str:
    return TENANTS[1 - TENANTS.index(tenant)]


def keys_of(tenant: str) -> list[str]:
    return [f"{tenant}-{n}" for n in range(len(SUBJECTS))]


@pytest.fixture
async def desk(config: DataLayerConfig) -> AsyncIterator[DataLayer]:
    """Both tenants hold the same subjects and vectors; only the keys differ."""
    await create_tables(config, TenantModel.metadata)
    async with DataLayer(config, repositories=[Cases]) as layer:
        for tenant in TENANTS:
            async with layer.unit_of_work(tenant=tenant) as uow:
                await uow.repository(Cases).add_many(
                    Case(id=key, subject=subject, embedding=[1.0, float(n), 0.0, 0.0])
                    for n, (key, subject) in enumerate(zip(keys_of(tenant), SUBJECTS, strict=True))
                )
                await uow.commit()
        await layer.operations.settled()
        yield layer


@pytest.mark.parametrize("tenant", TENANTS)
async def test_every_read_path_returns_only_the_tenants_rows(desk: DataLayer, tenant: str) -> None:
    mine, theirs = set(keys_of(tenant)), set(keys_of(other(tenant)))
    async with desk.unit_of_work(tenant=other(tenant)) as uow:  # warm the cache with theirs
        assert len(await uow.repository(Cases).get_many(sorted(theirs))) == 3
    async with desk.unit_of_work(tenant=tenant) as uow:
        cases = uow.repository(Cases)
        assert (await cases.get(f"{tenant}-0")) is not None
        assert (await cases.get(f"{other(tenant)}-0")) is None  # a guessed key, cached
        assert {c.id for c in await cases.get_many(sorted(mine | theirs))} == mine
        assert {c.id for c in await cases.list()} == mine
        assert await cases.count() == 3
        page = await cases.page(limit=10)
        assert {c.id for c in page.items} == mine
        found = await cases.search("printer")
        assert {hit.entity.id for hit in found.hits} == set(keys_of(tenant)[:2])
        assert found.total == 2
        raw = await cases.search({"match": {"subject": "printer"}})
        assert {hit.entity.id for hit in raw.hits} == set(keys_of(tenant)[:2])
        widening = {
            "bool": {
                "should": [{"term": {"tenant_id": other(tenant)}}, {"match_all": {}}],
                "minimum_should_match": 1,
            }
        }
        wide = await cases.search(widening, limit=50)
        assert {hit.entity.id for hit in wide.hits} == mine
        assert wide.total == 3
        ranking = await cases.search.ranking({"match_all": {}}, limit=50)  # keys, unhydrated
        assert {hit.key for hit in ranking.hits} == mine
        faceted = await cases.search("printer", facets=["tenant_id", "status"])
        assert faceted.facets["tenant_id"] == {tenant: 2}
        suggestions = await cases.suggest("pri", field="subject", limit=10)
        assert {s.key for s in suggestions} == set(keys_of(tenant)[:2])
        similar = await cases.similar([1.0, 1.0, 0.0, 0.0], k=10)
        assert {hit.entity.id for hit in similar} == mine
        own = await cases.get(f"{tenant}-1")
        assert own is not None
        assert {hit.entity.id for hit in await cases.similar(own, k=10)} == mine - {own.id}
        fused = await cases.hybrid("printer", [1.0, 1.0, 0.0, 0.0], k=10)
        assert {hit.entity.id for hit in fused} == mine


async def test_escapes_fail_clearly_or_find_nothing(desk: DataLayer) -> None:
    async with desk.unit_of_work(tenant="acme") as uow:
        cases = uow.repository(Cases)
        with pytest.raises(TenantError, match="names another tenant"):
            await cases.search("printer", filters={"tenant_id": "globex"})
        with pytest.raises(TenantError, match="names another tenant"):
            await cases.search("printer", filters={"tenant_id": AnyOf("acme", "globex")})
        with pytest.raises(TenantError, match="names another tenant"):
            await cases.similar([1.0, 0.0, 0.0, 0.0], filters={"tenant_id": "globex"})
        with pytest.raises(TenantError, match="names another tenant"):
            await cases.suggest("pri", field="subject", filters={"tenant_id": "globex"})
        same = await cases.search("printer", filters={"tenant_id": "acme"})
        assert {hit.entity.id for hit in same.hits} == {"acme-0", "acme-1"}
        # The superuser bypasses RLS: a raw load puts globex's row in the identity map.
        assert await uow.session.get(Case, "globex-0") is not None
        assert await cases.get("globex-0") is None
    async with desk.unit_of_work(tenant="globex") as uow:
        cases = uow.repository(Cases)
        page = await cases.page(limit=1)
        search_page = await cases.search({"match_all": {}}, limit=1)
        assert page.next_cursor is not None
        assert search_page.next_cursor is not None
    async with desk.unit_of_work(tenant="acme") as uow:
        cases = uow.repository(Cases)
        with pytest.raises(TenantError, match="another tenant's page"):
            await cases.page(limit=1, cursor=page.next_cursor)
        with pytest.raises(ValueError, match="invalid search cursor"):
            await cases.search({"match_all": {}}, limit=1, after=search_page.next_cursor)


async def test_a_unit_of_work_without_a_tenant_refuses_tenant_scoped_repositories(
    desk: DataLayer,
) -> None:
    async with desk.unit_of_work() as uow:
        with pytest.raises(TenantError, match="open the unit of work for a tenant"):
            uow.repository(Cases)
    with pytest.raises(ValueError, match="reserved"):
        desk.unit_of_work(tenant="*")
    async with desk.unit_of_work(tenant=ALL_TENANTS) as uow:
        cases = uow.repository(Cases)
        assert await cases.count() == 6
        assert len(await cases.search("printer", limit=50)) == 4
        with pytest.raises(TenantError, match="set the entity's tenant"):
            await cases.add(Case(id="nobody-0", subject="orphan"))


async def test_writes_are_stamped_and_another_tenants_entity_is_refused(desk: DataLayer) -> None:
    async with desk.unit_of_work(tenant="acme") as uow:
        cases = uow.repository(Cases)
        stamped = await cases.add(Case(id="acme-new", subject="stamped"))
        assert stamped.tenant_id == "acme"
        with pytest.raises(TenantError, match="belongs to tenant 'globex'"):
            await cases.add(Case(id="globex-new", subject="smuggled", tenant_id="globex"))
        await uow.commit()
    async with desk.unit_of_work(tenant="acme") as uow:
        uow.session.add(Case(id="globex-sneaky", subject="via the session", tenant_id="globex"))
        with pytest.raises(TenantError, match="belongs to tenant 'globex'"):
            await uow.commit()
    async with desk.unit_of_work(tenant="acme") as uow:
        theirs = await uow.session.get(Case, "globex-0")  # superuser: RLS does not apply
        assert theirs is not None
        theirs.subject = "defaced"
        with pytest.raises(TenantError, match="cannot change or delete tenant 'globex'"):
            await uow.commit()
    async with desk.unit_of_work(tenant="globex") as uow:
        untouched = await uow.repository(Cases).get("globex-0")
        assert untouched is not None
        assert untouched.subject == "printer jam"


@pytest.fixture
async def app_role(desk: DataLayer, config: DataLayerConfig) -> AsyncIterator[DataLayerConfig]:
    """A non-superuser role (superusers bypass row-level security) with the test's tables."""
    role, password = f"tenant_app_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    schema = config.postgres.schema_name
    assert schema is not None
    async with desk.postgres.acquire() as connection:
        await connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await connection.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await connection.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
        await connection.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')
    try:
        yield config.replace(postgres=config.postgres.replace(user=role, password=Secret(password)))
    finally:
        async with desk.postgres.acquire() as connection:
            await connection.execute(f"DROP OWNED BY {role}")
            await connection.execute(f"DROP ROLE {role}")


async def test_row_level_security_blocks_raw_sql_across_tenants(
    desk: DataLayer, app_role: DataLayerConfig
) -> None:
    async with DataLayer(app_role, repositories=[Cases]) as layer:
        async with layer.unit_of_work(tenant="globex") as uow:
            result = await uow.session.execute(
                text("UPDATE cases SET subject = 'defaced' WHERE tenant_id = 'acme'")
            )
            assert result.rowcount == 0  # type: ignore[attr-defined]
            visible = await uow.session.scalars(text("SELECT id FROM cases"))
            assert set(visible) == set(keys_of("globex"))
            with pytest.raises(Exception, match="row-level security"):
                await uow.session.execute(
                    text(
                        "INSERT INTO cases (id, tenant_id, subject, status, version) "
                        "VALUES ('forged', 'acme', 'x', 'open', 1)"
                    )
                )
        async with layer.unit_of_work() as uow:  # no tenant: no tenant's rows
            assert list(await uow.session.scalars(text("SELECT id FROM cases"))) == []
        async with layer.unit_of_work(tenant=ALL_TENANTS) as uow:
            assert len(list(await uow.session.scalars(text("SELECT id FROM cases")))) == 6
        # The library's own connections are unscoped (the relay, reindex, verify).
        pool = await open_postgres_pool(app_role.postgres)
        try:
            assert await pool.fetchval("SELECT count(*) FROM cases") == 6
        finally:
            await pool.close()
        # Any other client that does not set satellites.tenant sees nothing.
        password = app_role.postgres.password_value()
        connection = await asyncpg.connect(
            host=app_role.postgres.host,
            port=app_role.postgres.port,
            user=app_role.postgres.user,
            password=password,
            database=app_role.postgres.database,
            server_settings={"search_path": app_role.postgres.schema_name or "public"},
        )
        try:
            assert await connection.fetchval("SELECT count(*) FROM cases") == 0
        finally:
            await connection.close()
    async with desk.unit_of_work(tenant="acme") as uow:
        subjects = {c.subject for c in await uow.repository(Cases).list()}
        assert "defaced" not in subjects
    print(json.dumps({"rls": "cross-tenant UPDATE matched 0 rows"}))


def cache_of(layer: DataLayer) -> RedisBackend:
    backend = layer.operations.backend("redis")
    assert isinstance(backend, RedisBackend)
    return backend


async def test_cache_keys_name_the_tenant_so_a_guessed_key_misses(desk: DataLayer) -> None:
    cache, spec = cache_of(desk), desk.operations.spec(Cases)
    prefix = desk.config.redis.key_prefix
    for tenant in TENANTS:  # written through at commit, under the tenant's keys only
        for key in keys_of(tenant):
            assert cache.key(spec, key, tenant) == f"{prefix}cases:{tenant}:{key}"
            assert await desk.redis.exists(cache.key(spec, key, tenant)) == 1
            assert await desk.redis.exists(cache.key(spec, key, other(tenant))) == 0
    assert await desk.redis.exists(f"{prefix}cases:acme-0") == 0  # no tenant-less key
    assert set(await cache.cached(spec, ["acme-0"], "acme")) == {"acme-0"}
    assert await cache.cached(spec, ["acme-0"], "globex") == {}  # the key globex can spell
    async with desk.unit_of_work(tenant="globex") as uow:
        assert await uow.repository(Cases).get("acme-0") is None
    with pytest.raises(TenantError, match="cache keys need the tenant"):
        cache.key(spec, "acme-0")
    names = [name.decode() async for name in desk.redis.scan_iter(match=cache.pattern(spec))]
    assert sorted(cache.row_of(spec, name) for name in names) == sorted(
        (tenant, key) for tenant in TENANTS for key in keys_of(tenant)
    )
    assert all(drift.clean for drift in await desk.operations.verify(Cases))
    (row,) = await cache.read(spec, ["acme-0"], "acme")
    assert row is not None
    forged = row.body.replace(b"printer jam", b"forged")
    value = CachedRow(row.version, row.fingerprint, forged).value()
    await desk.redis.set(cache.key(spec, "acme-0", "acme"), value)
    (redis_drift,) = [d for d in await desk.operations.verify(Cases) if d.target == "redis"]
    assert redis_drift.different == ["acme-0"]  # found under the tenant's key


async def test_orm_and_captured_deletes_reach_the_tenants_cache_key(desk: DataLayer) -> None:
    cache, spec = cache_of(desk), desk.operations.spec(Cases)
    async with desk.unit_of_work(tenant="acme") as uow:
        await uow.repository(Cases).delete("acme-1")
        await uow.commit()
    await desk.postgres.execute("DELETE FROM cases WHERE id = 'globex-1'")  # trigger-captured
    await desk.postgres.execute("UPDATE cases SET subject = 'raw' WHERE id = 'globex-2'")
    await settle_everything(desk)
    (acme_1,) = await cache.read(spec, ["acme-1"], "acme")
    globex_1, globex_2 = await cache.read(spec, ["globex-1", "globex-2"], "globex")
    assert acme_1 is not None
    assert acme_1.is_tombstone
    assert globex_1 is not None
    assert globex_1.is_tombstone
    assert globex_2 is not None
    assert b'"raw"' in globex_2.body
    async with desk.unit_of_work(tenant="globex") as uow:
        cases = uow.repository(Cases)
        assert await cases.get("globex-1") is None
        updated = await cases.get("globex-2")
        assert updated is not None
        assert updated.subject == "raw"


async def test_a_rows_tenant_does_not_change(desk: DataLayer) -> None:
    async with desk.unit_of_work(tenant=ALL_TENANTS) as uow:
        moved = await uow.repository(Cases).get("acme-0")  # ALL_TENANTS: read from Postgres
        assert moved is not None
        moved.tenant_id = "globex"
        with pytest.raises(TenantError, match="tenant_id does not change"):
            await uow.commit()
    async with desk.unit_of_work(tenant="acme") as uow:
        assert await uow.repository(Cases).get("acme-0") is not None


async def satellites(config: DataLayerConfig, *arguments: str) -> tuple[int, str, str]:
    return await run_cli(config, "tests.integration.models:Cases", *arguments)


async def projected_keys(layer: DataLayer) -> dict[str, set[str]]:
    """What each projection holds, read from the servers themselves (every tenant)."""
    every = keys_of("acme") + keys_of("globex")
    cache, spec = cache_of(layer), layer.operations.spec(Cases)
    rows = await cache.read_keys([cache.key(spec, key, key.split("-")[0]) for key in every])
    cached = {key for key, row in zip(every, rows, strict=True) if row and not row.is_tombstone}
    alias = f"{layer.config.elasticsearch.index_prefix}cases"
    await layer.elasticsearch.indices.refresh(index=alias)
    response = await layer.elasticsearch.search(index=alias, size=100, source=False)
    indexed = {hit["_id"] for hit in response["hits"]["hits"]}
    vectors = {key for key in every if await layer.vectors.get("cases", key) is not None}
    stored = {row["id"] for row in await layer.postgres.fetch("SELECT id FROM cases")}
    return {"postgres": stored, "redis": cached, "elasticsearch": indexed, "faiss": vectors}


async def test_export_streams_one_tenant_and_purge_removes_it_everywhere(
    desk: DataLayer, config: DataLayerConfig
) -> None:
    async with desk.unit_of_work(tenant=ALL_TENANTS) as uow:  # every row cached
        assert len(await uow.repository(Cases).get_many(keys_of("acme") + keys_of("globex"))) == 6
    before = await projected_keys(desk)
    assert all(keys == set(keys_of("acme") + keys_of("globex")) for keys in before.values())

    code, output, errors = await satellites(config, "tenant", "export", "acme")
    assert code == 0, errors
    exported = [json.loads(line) for line in output.splitlines()]
    assert {line["row"]["id"] for line in exported} == set(keys_of("acme"))
    assert {line["row"]["tenant_id"] for line in exported} == {"acme"}
    assert {line["repository"] for line in exported} == {"Cases"}

    deleted = await desk.operations.purge_tenant("acme", batch=2)  # two batches: resumable steps
    assert deleted == {"Cases": 3}
    await desk.operations.settled()
    await desk.operations.follow()
    after = await projected_keys(desk)
    assert after == {name: set(keys_of("globex")) for name in after}, after
    async with desk.unit_of_work(tenant="globex") as uow:
        found = await uow.repository(Cases).search("printer")
        assert {hit.entity.id for hit in found.hits} == set(keys_of("globex")[:2])

    code, output, errors = await satellites(config, "tenant", "purge", "acme")
    assert code == 0, errors  # again: nothing left, nothing else touched
    assert "deleted 0 row(s)" in output
    assert (await projected_keys(desk))["postgres"] == set(keys_of("globex"))
