"""``satellites verify`` at 50k rows: rows/s of the content check, against a version check.

Run ``python benchmarks/verify.py`` with the variables of ``scripts/services env`` (``make
bench`` runs it). It prints a table and writes ``benchmarks/results/verify.json``.

Data: ``--rows`` (50,000 by default) rows of the benchmark's ``BenchArticle`` (384-d
embeddings, about 8 KB of JSON each) copied into Postgres with the capture off, then
projected by ``operations.reindex`` into Redis, Elasticsearch and FAISS, so every backend
holds every row and nothing is owed.

* ``verify``: ``operations.verify`` over every row: whole rows streamed from Postgres and,
  per backend, digests of what it should hold and of what it holds (the Redis entry, the
  Elasticsearch ``_source``, the FAISS vector and metadata), then each backend's extras.
* ``version check``: the comparison ``verify`` made before it compared content, written by
  hand on the native clients: (key, version) streamed from Postgres, Redis ``MGET``,
  Elasticsearch ``mget`` without ``_source``, the FAISS namespace's versions, versions
  compared in Python; no extras.
* ``verify --sample 1000``: the same as ``verify`` on 1,000 random rows (and entries).

Each repetition runs the three in turn (interleaved, so load falls on all alike); the
figures are medians over ``--repetitions`` (3 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _data import RowFactory  # noqa: E402
from _environment import Bench, bench_environment  # noqa: E402
from _model import NAMESPACE, BenchArticle, BenchArticles  # noqa: E402

RESULTS = HERE / "results" / "verify.json"
COPY_BATCH = 5_000
CHECK_BATCH = 1_000
SAMPLE = 1_000
SEED = 20251202


async def seed(bench: Bench, count: int) -> None:
    """``count`` rows into Postgres (capture off), then every projection rebuilt."""
    rows = RowFactory(SEED).rows(count)
    table = BenchArticle.__tablename__
    async with bench.data.postgres.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        for start in range(0, count, COPY_BATCH):
            await connection.copy_records_to_table(
                table,
                records=[
                    (row.id, row.title, row.body, row.tenant_id, row.embedding, 1)
                    for row in rows[start : start + COPY_BATCH]
                ],
                columns=["id", "title", "body", "tenant_id", "embedding", "version"],
            )
    await bench.data.operations.reindex(BenchArticles)
    await bench.refresh_indices()


async def library_verify(bench: Bench, sample: int | None = None) -> int:
    drifts = await bench.data.operations.verify(BenchArticles, sample=sample)
    assert all(drift.clean for drift in drifts), drifts
    return drifts[0].checked


async def version_check(bench: Bench) -> int:
    """The version-only comparison, by hand on the native clients."""
    data = bench.data
    alias = f"{data.config.elasticsearch.index_prefix}{BenchArticles.search.index}"
    faiss_versions = await data.vectors.versions(NAMESPACE)
    drifted = checked = 0
    async with data.postgres.acquire() as connection, connection.transaction():
        cursor = connection.cursor(f"SELECT id::text, version FROM {BenchArticle.__tablename__}")
        batch: list[tuple[str, int]] = []
        async for record in cursor:
            batch.append((record[0], record[1]))
            if len(batch) == CHECK_BATCH:
                drifted += await _compare(bench, alias, faiss_versions, batch)
                checked += len(batch)
                batch = []
        if batch:
            drifted += await _compare(bench, alias, faiss_versions, batch)
            checked += len(batch)
    assert drifted == 0
    return checked


async def _compare(
    bench: Bench, alias: str, faiss_versions: dict[str, int | None], batch: list[tuple[str, int]]
) -> int:
    keys = [key for key, _ in batch]
    cached, documents = await asyncio.gather(
        bench.data.redis.mget([bench.cache_key(key) for key in keys]),
        bench.data.elasticsearch.mget(index=alias, ids=keys, source=False),
    )
    drifted = 0
    for (key, version), value, document in zip(batch, cached, documents["docs"], strict=True):
        held_cache = int(value.partition(b":")[0]) if value else version
        held_search = int(document["_version"]) if document.get("found") else -1
        drifted += (held_cache, held_search, faiss_versions.get(key)) != (version,) * 3
    return drifted


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = await work()
    return time.perf_counter() - started, rows


async def run(count: int, repetitions: int) -> dict[str, Any]:
    async with bench_environment() as bench:
        started = time.perf_counter()
        await seed(bench, count)
        seeded = time.perf_counter() - started
        print(f"seeded and projected {count} rows in {seeded:.1f} s", flush=True)
        sides: dict[str, Callable[[], Awaitable[int]]] = {
            "verify": lambda: library_verify(bench),
            "version check": lambda: version_check(bench),
            f"verify --sample {SAMPLE}": lambda: library_verify(bench, SAMPLE),
        }
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        rows: dict[str, int] = {}
        for repetition in range(repetitions):
            for name, work in sides.items():
                elapsed, rows[name] = await timed(work)
                seconds[name].append(elapsed)
                print(f"  {repetition + 1}/{repetitions} {name}: {elapsed:.2f} s", flush=True)
    figures: dict[str, dict[str, Any]] = {
        name: {
            "rows": rows[name],
            "seconds_median": statistics.median(values),
            "seconds": values,
            "rows_per_second": rows[name] / statistics.median(values),
        }
        for name, values in seconds.items()
    }
    ratio = figures["verify"]["seconds_median"] / figures["version check"]["seconds_median"]
    return {
        "rows": count,
        "repetitions": repetitions,
        "load_average": os.getloadavg(),
        "figures": figures,
        "verify_vs_version_check": ratio,
    }


def show(report: dict[str, Any]) -> None:
    print(f"\nverify at {report['rows']} rows (load average {report['load_average']})")
    print(f"{'':28} {'rows':>8} {'median s':>9} {'rows/s':>9}")
    for name, figure in report["figures"].items():
        print(
            f"{name:28} {figure['rows']:>8} {figure['seconds_median']:>9.2f} "
            f"{figure['rows_per_second']:>9.0f}"
        )
    print(f"verify / version check: {report['verify_vs_version_check']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repetitions", type=int, default=3)
    arguments = parser.parse_args()
    report = asyncio.run(run(arguments.rows, arguments.repetitions))
    show(report)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
