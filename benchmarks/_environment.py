"""An isolated place on the real servers for one benchmark run, removed afterwards.

Everything the run writes is namespaced by one random run id: a Postgres schema (created,
then dropped with CASCADE), a Redis key prefix (scanned and deleted), an Elasticsearch
index prefix (each index deleted by name) and a temporary FAISS folder. The library's
tables and the benchmark's are created with ``Base.metadata.create_all`` before the
``DataLayer`` starts; the baselines get tables of the same shape (``LIKE ... INCLUDING
ALL``) and indices with the same mappings.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from _model import BenchArticle, BenchArticles
from _raw import NaiveStore, NativeClients, RawStore, RawTargets

from satellites_repo import Base, DataLayer, DataLayerConfig
from satellites_repo.migrate import capture_ddl
from satellites_repo.postgres import open_engine, open_postgres_pool

__all__ = ["ES_REFRESH", "Bench", "bench_environment"]

ES_REFRESH = "false"
"""Refresh setting of every write, the library's and the baselines' alike."""


@dataclass(frozen=True, slots=True)
class Bench:
    """A started layer and the two baselines, all on the same native clients."""

    run_id: str
    data: DataLayer
    raw: RawStore
    naive: NaiveStore
    indices: tuple[str, ...]

    def cache_key(self, entity_id: object) -> str:
        """The library's Redis key for one article."""
        return f"{self.data.config.redis.key_prefix}{BenchArticle.__tablename__}:{entity_id}"

    async def refresh_indices(self) -> None:
        """Make everything written so far searchable (writes use refresh=false)."""
        await self.data.elasticsearch.indices.refresh(index=",".join(self.indices))


@asynccontextmanager
async def bench_environment(max_connections: int = 10) -> AsyncIterator[Bench]:
    """Create the run's schema, tables, indices and folder; start the layer; clean up."""
    run_id = secrets.token_hex(4)
    base = DataLayerConfig.from_env()
    schema = f"bench_{run_id}"
    admin = await open_postgres_pool(base.postgres.replace(min_connections=1, max_connections=1))
    with tempfile.TemporaryDirectory(prefix="satellites-bench-") as folder:
        config = base.replace(
            postgres=base.postgres.replace(
                schema_name=schema, min_connections=2, max_connections=max_connections
            ),
            redis=base.redis.replace(key_prefix=f"bench{run_id}:"),
            elasticsearch=base.elasticsearch.replace(
                index_prefix=f"bench{run_id}-", refresh=ES_REFRESH
            ),
            faiss=base.faiss.replace(index_path=Path(folder) / "faiss", dimension=384),
        )
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            await _create_tables(config)
            async with DataLayer(config, repositories=[BenchArticles]) as data:
                try:
                    yield await _bench(run_id, data)
                finally:
                    await _clean_shared_backends(data)
        finally:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()


async def _create_tables(config: DataLayerConfig) -> None:
    engine = await open_engine(config.postgres)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            for statement in capture_ddl(Base.metadata):
                await connection.exec_driver_sql(statement)
            for name in ("raw_articles", "naive_articles"):
                await connection.exec_driver_sql(
                    f"CREATE TABLE {name} (LIKE {BenchArticle.__tablename__} INCLUDING ALL)"
                )
    finally:
        await engine.dispose()


async def _bench(run_id: str, data: DataLayer) -> Bench:
    prefix = data.config.elasticsearch.index_prefix
    mappings = BenchArticles.search.mappings()
    stores = []
    for name in ("raw", "naive"):
        index = f"{prefix}{name}-articles"
        await data.elasticsearch.indices.create(index=index, mappings=mappings)
        targets = RawTargets(f"{name}_articles", f"{data.config.redis.key_prefix}{name}:", index)
        stores.append(targets)
    raw_targets, naive_targets = stores
    clients = NativeClients(data.postgres, data.redis, data.elasticsearch)
    return Bench(
        run_id=run_id,
        data=data,
        raw=RawStore(clients, raw_targets),
        naive=NaiveStore(clients, naive_targets),
        indices=(f"{prefix}{BenchArticles.search.index}", raw_targets.index, naive_targets.index),
    )


async def _clean_shared_backends(data: DataLayer) -> None:
    prefix = data.config.redis.key_prefix
    batch: list[bytes | str] = []
    async for key in data.redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await data.redis.unlink(*batch)
            batch.clear()
    if batch:
        await data.redis.unlink(*batch)
    # Wildcard deletes are refused (destructive_requires_name): name each index.
    indices = await data.elasticsearch.indices.get(
        index=f"{data.config.elasticsearch.index_prefix}*", allow_no_indices=True
    )
    if indices:
        await data.elasticsearch.indices.delete(index=",".join(indices))
