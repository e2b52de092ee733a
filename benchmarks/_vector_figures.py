"""The FAISS rows of ``make bench``: the vector index against hand-written FAISS, in one run.

* flat query, p50: ``VectorIndex.query`` (k=10) against normalising the query and calling
  ``IndexIDMap2(IndexFlatIP).search`` by hand, once through ``asyncio.to_thread`` (what
  an async caller of FAISS must do to keep the loop free) and once on the loop itself;
* load with metadata and versions: ``upsert_many`` of vectors with a tenant and a version
  each into an empty namespace, against copy + ``normalize_L2`` + ``add_with_ids``;
* memory: the resident-set growth of a fresh process (``_vector_memory.py``) holding the
  index with UUID ids, metadata and versions, against one holding the raw FAISS index;
* startup rebuild: ``DataLayer.start()`` with no snapshot, which rebuilds FAISS from the
  rows in Postgres, against a hand-written rebuild (asyncpg cursor over id, version,
  vector and tenant, numpy, ``normalize_L2``, ``add_with_ids``, an id -> label dict).

Every side gets the same seeded data; the sides alternate which goes first.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import numpy.typing as npt
from _environment import Bench
from _passages import DIMENSION, Model, Passages, copy_passages
from _passages import NAMESPACE as PASSAGES
from _stats import Figure, Target, percentile

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.migrate import create_tables
from satellites_repo.outbox.table import outbox_table
from satellites_repo.postgres import open_connection
from satellites_repo.vectors import VectorIndex

if TYPE_CHECKING:
    from _scenarios import Fixture, Plan

__all__ = ["SEED", "flat_query", "load", "memory", "vector_figures"]

Matrix = npt.NDArray[np.float32]

NAMESPACE = "bench_vectors"
SEED = 20261202
HERE = Path(__file__).resolve().parent
LAYER = "satellites"


async def vector_figures(bench: Bench, plan: Plan, fixture: Fixture) -> list[Figure]:
    """The four FAISS figures; the rebuild runs in a schema of its own."""
    rng = np.random.default_rng(SEED)
    return [
        *await flat_query(plan, rng),
        await load(plan, rng),
        await memory(plan),
        await _startup_rebuild(bench.data.config, plan, rng),
    ]


async def flat_query(plan: Plan, rng: np.random.Generator) -> list[Figure]:
    count = plan.vector_query_size
    data = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    queries = rng.standard_normal((plan.calls, DIMENSION), dtype=np.float32)
    ids = [str(uuid.UUID(int=n)) for n in range(count)]
    index = VectorIndex(Path(tempfile.gettempdir()) / "unused", DIMENSION)
    await index.upsert_many(NAMESPACE, ids, data, _tenants(count), versions=[1] * count)
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    raw.add_with_ids(_normalized(data), np.arange(count, dtype=np.int64))

    def search(query: Matrix) -> None:
        raw.search(_normalized(query.reshape(1, -1)), plan.top_k)

    async def ours(query: Matrix) -> None:
        await index.query(NAMESPACE, query, plan.top_k)

    async def threaded(query: Matrix) -> None:
        await asyncio.to_thread(search, query)

    async def on_loop(query: Matrix) -> None:
        search(query)

    sides: dict[str, Callable[[Matrix], Awaitable[None]]] = {
        "ours": ours,
        "to_thread": threaded,
        "on_loop": on_loop,
    }
    for query in queries[: plan.warmup]:
        for side in sides.values():
            await side(query)
    p50s: dict[str, list[float]] = {name: [] for name in sides}
    for repetition in range(plan.repetitions):
        samples: dict[str, list[float]] = {name: [] for name in sides}
        for call, query in enumerate(queries):
            names = list(sides)
            shift = (call + repetition) % len(names)
            for name in names[shift:] + names[:shift]:
                began = time.perf_counter()
                await sides[name](query)
                samples[name].append(time.perf_counter() - began)
        for name, values in samples.items():
            p50s[name].append(percentile(values, 0.5) * 1e3)
    title = f"FAISS flat query p50, {count:,} vectors, k={plan.top_k}"
    return [
        Figure(
            name=title,
            metric="p50 per query",
            unit="ms",
            subject=LAYER,
            baseline="normalize + IndexIDMap2(IndexFlatIP).search in asyncio.to_thread",
            subject_values=p50s["ours"],
            baseline_values=p50s["to_thread"],
            target=Target("<=", 1.2),
        ),
        Figure(
            name=f"{title}, vs search on the loop",
            metric="p50 per query",
            unit="ms",
            subject=LAYER,
            baseline="normalize + search called on the event loop (blocks it)",
            subject_values=p50s["ours"],
            baseline_values=p50s["on_loop"],
            notes={"why": "the layer runs FAISS in a worker thread: a hop on every query"},
        ),
    ]


async def load(plan: Plan, rng: np.random.Generator) -> Figure:
    count = plan.vector_load_size
    data = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    ids = [str(uuid.UUID(int=n)) for n in range(count)]
    tenants = _tenants(count)
    versions = list(range(1, count + 1))
    labels = np.arange(count, dtype=np.int64)

    async def ours() -> float:
        index = VectorIndex(Path(tempfile.gettempdir()) / "unused", DIMENSION)
        began = time.perf_counter()
        await index.upsert_many(NAMESPACE, ids, data, tenants, versions=versions)
        return time.perf_counter() - began

    async def raw() -> float:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
        began = time.perf_counter()
        index.add_with_ids(_normalized(data), labels)
        return time.perf_counter() - began

    await ours()
    await raw()
    pairs = [await _in_turn(ours, raw, first) for first in _turns(plan.repetitions)]
    return Figure(
        name=f"FAISS load with metadata and versions, {count:,} vectors",
        metric="seconds for one upsert_many",
        unit="s",
        subject=LAYER,
        baseline="copy + normalize_L2 + IndexIDMap2(IndexFlatIP).add_with_ids",
        subject_values=[p[0] for p in pairs],
        baseline_values=[p[1] for p in pairs],
        target=Target("<=", 2.0),
    )


async def memory(plan: Plan) -> Figure:
    count = plan.vector_memory_size

    async def measure(side: str) -> float:
        command = [sys.executable, str(HERE / "_vector_memory.py"), side, str(count)]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip()) / 2**20

    repetitions = min(plan.repetitions, 3)
    pairs = [
        await _in_turn(lambda: measure("ours"), lambda: measure("raw"), first)
        for first in _turns(repetitions)
    ]
    return Figure(
        name=f"FAISS memory, {count:,} x {DIMENSION}-d, ids + metadata + versions",
        metric="resident-set growth of a fresh process",
        unit="MB",
        subject=LAYER,
        baseline="IndexIDMap2(IndexFlatIP) with add_with_ids, nothing else",
        subject_values=[p[0] for p in pairs],
        baseline_values=[p[1] for p in pairs],
        target=Target("<=", 1.2),
        notes={"vector_bytes_mb": count * DIMENSION * 4 / 2**20},
    )


async def _startup_rebuild(base: DataLayerConfig, plan: Plan, rng: np.random.Generator) -> Figure:
    count = plan.rebuild_rows
    schema = f"bench_rebuild_{uuid.uuid4().hex[:8]}"
    config = base.replace(postgres=base.postgres.replace(schema_name=schema))
    admin = await open_connection(base.postgres)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await _seed(config, schema, count, rng)
        with tempfile.TemporaryDirectory(prefix="satellites-rebuild-") as folder:

            async def ours() -> float:
                faiss_config = config.faiss.replace(
                    dimension=DIMENSION, index_path=Path(folder) / uuid.uuid4().hex
                )
                layer = DataLayer(config.replace(faiss=faiss_config), repositories=[Passages])
                began = time.perf_counter()
                await layer.start()
                seconds = time.perf_counter() - began
                loaded = await layer.vectors.count(PASSAGES)
                await layer.stop()
                if loaded != count:
                    raise RuntimeError(f"the rebuild loaded {loaded} of {count} vectors")
                return seconds

            async def raw() -> float:
                began = time.perf_counter()
                index, labels = await _hand_written_rebuild(base, schema)
                seconds = time.perf_counter() - began
                if index.ntotal != count or len(labels) != count:
                    raise RuntimeError("the hand-written rebuild lost rows")
                return seconds

            await ours()
            await raw()
            pairs = [await _in_turn(ours, raw, first) for first in _turns(plan.repetitions)]
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    return Figure(
        name=f"startup rebuilding FAISS from Postgres, {count:,} rows",
        metric="seconds until ready",
        unit="s",
        subject=f"{LAYER} DataLayer.start(), no snapshot",
        baseline="asyncpg cursor + numpy + normalize_L2 + add_with_ids + id dict",
        subject_values=[p[0] for p in pairs],
        baseline_values=[p[1] for p in pairs],
        target=Target("<=", 1.3),
    )


async def _seed(config: DataLayerConfig, schema: str, count: int, rng: np.random.Generator) -> None:
    """``count`` rows by COPY (capture assigns versions), then an empty outbox, as after a
    purge, so ``start()`` has only the rebuild to do."""
    await create_tables(config, Model.metadata)
    connection = await open_connection(config.postgres)
    try:
        batches = (
            rng.standard_normal((min(10_000, count - start), DIMENSION), dtype=np.float32)
            for start in range(0, count, 10_000)
        )
        await copy_passages(connection, schema, batches)
        await connection.execute(f'TRUNCATE "{schema}".{outbox_table.name}')
    finally:
        await connection.close()


async def _hand_written_rebuild(
    config: DataLayerConfig, schema: str
) -> tuple[faiss.IndexIDMap2, dict[str, int]]:
    """What an application would write to load its vectors: one cursor, batches of 2,000."""
    connection = await open_connection(config.postgres)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    labels: dict[str, int] = {}
    metadata: list[tuple[str, int]] = []
    statement = f'SELECT id, version, embedding, tenant_id FROM "{schema}".bench_passages'
    try:
        async with connection.transaction():
            cursor = await connection.cursor(statement)
            while rows := await cursor.fetch(2_000):
                vectors = np.array([row[2] for row in rows], dtype=np.float32)
                faiss.normalize_L2(vectors)
                first = len(labels)
                index.add_with_ids(vectors, np.arange(first, first + len(rows), dtype=np.int64))
                for offset, row in enumerate(rows):
                    labels[str(row[0])] = first + offset
                    metadata.append((row[3], row[1]))
    finally:
        await connection.close()
    return index, labels


async def _in_turn(
    ours: Callable[[], Awaitable[float]], raw: Callable[[], Awaitable[float]], ours_first: bool
) -> tuple[float, float]:
    """One repetition of both sides; which goes first alternates across repetitions."""
    if ours_first:
        mine = await ours()
        return mine, await raw()
    theirs = await raw()
    return await ours(), theirs


def _turns(repetitions: int) -> list[bool]:
    return [n % 2 == 0 for n in range(repetitions)]


def _tenants(count: int) -> list[dict[str, Any]]:
    return [{"tenant_id": f"t{n % 10}"} for n in range(count)]


def _normalized(data: Matrix) -> Matrix:
    copy = data.copy()
    faiss.normalize_L2(copy)
    return copy
