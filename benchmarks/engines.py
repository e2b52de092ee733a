"""Vector engines side by side, and how fast a new instance becomes ready.

Run ``python benchmarks/engines.py`` with the variables of ``scripts/services env`` (``make
bench`` runs it after ``run.py``). It prints a table and writes
``benchmarks/results/engines.json``.

Data: ``--size`` (100k by default; ``--size 1000000`` for the big run) 384-d float32
vectors with structure: 1,000 cluster centres drawn uniformly on the unit sphere, each
vector a centre plus Gaussian noise (sigma 0.6 / sqrt(384) per coordinate, so a vector's
cosine to its centre is about 0.85), then normalised; 200 queries drawn the same way.
Ground truth: exact cosine top-10 by numpy.

Per engine: recall@10 against the exact top-10, per-query latency p50/p99 (k=10, one at a
time, after 20 warm-up queries), build time, and memory: the resident-set growth of this
process while the index is built (FAISS lives in every app process), or, for
Elasticsearch, the index's size on the server (the app process holds no vectors).

* ``faiss-flat`` and ``faiss-hnsw``: ``VectorIndex`` as the FAISS backend uses it (HNSW at
  the ``FaissConfig`` defaults).
* ``es-int8_hnsw``: the mapping and the kNN request the Elasticsearch engine sends
  (``DenseVector.mapping()``, ``es_knn``), bulk-loaded into an index of its own.

Ready time (``--ready-rows``, 100k by default): rows with 384-d vectors drawn as above are
COPYed into a schema of its own (change capture gives each its version), a writer
``DataLayer`` rebuilds from them and stores its snapshot in S3 as it stops; then the time
to ``start()`` a new ``DataLayer`` is measured from Postgres (empty folder, no store: a
rebuild) and from the S3 snapshot (empty folder: download, verify, load, tail).

``--engines`` picks a subset (``flat,hnsw,es``): at 1M an HNSW build with the default
efConstruction takes an hour or more on two shared cores, and Elasticsearch ingestion
40 minutes or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from _passages import DIMENSION, Model, Passages, copy_passages
from elasticsearch import AsyncElasticsearch

from satellites_repo import DataLayer, DataLayerConfig, VectorField
from satellites_repo.backends.elasticsearch._query import es_knn, similarity
from satellites_repo.migrate import create_tables
from satellites_repo.model import DenseVector, SearchIndex, VectorQuery
from satellites_repo.postgres import open_connection
from satellites_repo.vectors import VectorIndex

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "engines.json"
CENTRES = 1_000
QUERIES = 200
WARMUP = 20
K = 10
NOISE = 0.6
SEED = 20251201
ES_BATCH = 2_000
COPY_BATCH = 10_000
ENGINES = ("flat", "hnsw", "es")


def clustered(rng: np.random.Generator, count: int, centres: np.ndarray) -> np.ndarray:
    """``count`` unit vectors, each near a random centre."""
    picks = rng.integers(0, len(centres), size=count)
    noise = rng.standard_normal((count, DIMENSION), dtype=np.float32) * (NOISE / DIMENSION**0.5)
    vectors = centres[picks] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result: np.ndarray = vectors.astype(np.float32)
    return result


def exact_top(corpus: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    scores = queries @ corpus.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return [set(row.tolist()) for row in top]


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident set (``VmHWM``: its peak) from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def latency(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
    }


def recall(found: list[list[int]], truth: list[set[int]]) -> float:
    return round(
        sum(len(set(f) & t) for f, t in zip(found, truth, strict=True)) / (K * len(truth)), 4
    )


async def bench_faiss(
    kind: Literal["flat", "hnsw"], corpus: np.ndarray, queries: np.ndarray, truth: list[set[int]]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        before = rss_bytes()
        index = VectorIndex(Path(folder), DIMENSION, index_type=kind)
        ids = [str(n) for n in range(len(corpus))]
        started = time.perf_counter()
        for start in range(0, len(corpus), 50_000):
            stop = start + 50_000
            await index.upsert_many("bench", ids[start:stop], corpus[start:stop])
        build = time.perf_counter() - started
        grown = rss_bytes() - before
        for query in queries[:WARMUP]:
            await index.query("bench", query, top_k=K)
        samples, found = [], []
        for query in queries:
            began = time.perf_counter()
            matches = await index.query("bench", query, top_k=K)
            samples.append(time.perf_counter() - began)
            found.append([int(match.id) for match in matches])
        del index
    return {
        "engine": f"faiss-{kind}",
        "recall_at_10": recall(found, truth),
        **latency(samples),
        "build_s": round(build, 1),
        "memory_mb": round(grown / 2**20, 1),
        "memory_where": "each app process (RSS growth)",
    }


async def bench_es(
    config: DataLayerConfig, corpus: np.ndarray, queries: np.ndarray, truth: list[set[int]]
) -> dict[str, Any]:
    vector = DenseVector("embedding", DIMENSION, "cosine", {"type": "int8_hnsw"})
    index = SearchIndex(f"bench-engines-{secrets.token_hex(4)}", {}, vector=vector)
    client = AsyncElasticsearch(hosts=config.elasticsearch.hosts, request_timeout=600)
    try:
        await client.indices.create(
            index=index.index, mappings=index.mappings(), settings={"number_of_replicas": 0}
        )
        started = time.perf_counter()
        for start in range(0, len(corpus), ES_BATCH):
            operations: list[dict[str, Any]] = []
            for n in range(start, min(start + ES_BATCH, len(corpus))):
                operations.append({"index": {"_index": index.index, "_id": str(n)}})
                operations.append({"embedding": corpus[n].tolist()})
            response = await client.bulk(operations=operations)
            assert not response["errors"], "bulk load refused documents"
        await client.indices.refresh(index=index.index)
        build = time.perf_counter() - started
        stats = await client.indices.stats(index=index.index, metric="store")
        size = stats["indices"][index.index]["primaries"]["store"]["size_in_bytes"]
        field = VectorField("embedding", engine="elasticsearch")

        async def ask(query: np.ndarray) -> list[int]:
            knn = es_knn(index, field, VectorQuery(query.tolist(), K))
            response = await client.search(index=index.index, knn=knn, size=K, source=False)
            hits = response["hits"]["hits"]
            assert all(-1.0 <= similarity(index, hit["_score"]) <= 1.0 for hit in hits)
            return [int(hit["_id"]) for hit in hits]

        for query in queries[:WARMUP]:
            await ask(query)
        samples, found = [], []
        for query in queries:
            began = time.perf_counter()
            found.append(await ask(query))
            samples.append(time.perf_counter() - began)
    finally:
        await client.indices.delete(index=index.index, ignore_unavailable=True)
        await client.close()
    return {
        "engine": "es-int8_hnsw",
        "recall_at_10": recall(found, truth),
        **latency(samples),
        "build_s": round(build, 1),
        "memory_mb": round(size / 2**20, 1),
        "memory_where": "Elasticsearch index on disk (none in the app process)",
    }


async def bench_ready(
    config: DataLayerConfig, rows: int, rng: np.random.Generator, centres: np.ndarray
) -> dict[str, Any]:
    run = secrets.token_hex(4)
    schema = f"bench_ready_{run}"
    endpoint = os.environ.get("SATELLITES_S3_ENDPOINT_URL")
    bucket = os.environ.get("SATELLITES_S3_BUCKET")
    if not endpoint or not bucket:
        raise SystemExit(
            'no S3 server: run `scripts/services up s3` and `eval "$(scripts/services env)"`'
        )
    admin = await open_connection(config.postgres)
    with tempfile.TemporaryDirectory(prefix="satellites-ready-") as folder:
        base = config.replace(
            # What is measured is how long start takes, not whether it beats the default
            # 10 s budget (an S3 download under load can take longer).
            startup_timeout=600,
            postgres=config.postgres.replace(schema_name=schema),
            faiss=config.faiss.replace(dimension=DIMENSION, index_path=Path(folder) / "writer"),
        )
        s3 = base.faiss.replace(
            snapshot_url=f"s3://{bucket}/bench-{run}",
            s3_endpoint_url=endpoint,
            s3_access_key_id=os.environ.get("SATELLITES_S3_ACCESS_KEY"),
            s3_secret_access_key=os.environ.get("SATELLITES_S3_SECRET_KEY"),
        )
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            await create_tables(base, Model.metadata)
            seeding = await open_connection(base.postgres)
            try:
                batches = (
                    clustered(rng, min(COPY_BATCH, rows - start), centres)
                    for start in range(0, rows, COPY_BATCH)
                )
                await copy_passages(seeding, schema, batches)
            finally:
                await seeding.close()
            # The writer rebuilds from the rows and stores its snapshot in S3 as it stops.
            async with DataLayer(base.replace(faiss=s3), repositories=[Passages]) as writer:
                assert await writer.vectors.count("bench_passages") == rows
            timings = {}
            for source, faiss in (("postgres", base.faiss), ("s3_snapshot", s3)):
                fresh = faiss.replace(index_path=Path(folder) / source)
                layer = DataLayer(base.replace(faiss=fresh), repositories=[Passages])
                began = time.perf_counter()
                await layer.start()
                timings[f"ready_from_{source}_s"] = round(time.perf_counter() - began, 2)
                assert await layer.vectors.count("bench_passages") == rows
                await layer.stop()
        finally:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()
    return {"rows": rows, **timings}


async def main() -> None:
    parser = argparse.ArgumentParser(description="Vector engines and instance ready time.")
    parser.add_argument(
        "--size", type=int, default=100_000, help="vectors per engine (1000000 for the big run)"
    )
    parser.add_argument(
        "--ready-rows", type=int, default=100_000, help="rows for the ready-time figure (0: skip)"
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {', '.join(ENGINES)} (HNSW builds take long at 1M)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    chosen = [name.strip() for name in arguments.engines.split(",") if name.strip()]
    if unknown := sorted(set(chosen) - set(ENGINES)):
        raise SystemExit(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    config = DataLayerConfig.from_env()
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((CENTRES, DIMENSION), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    corpus = clustered(rng, arguments.size, centres)
    queries = clustered(rng, QUERIES, centres)
    truth = exact_top(corpus, queries)
    engines = []
    for name in chosen:
        if name == "es":
            engines.append(await bench_es(config, corpus, queries, truth))
        else:
            engines.append(
                await bench_faiss("flat" if name == "flat" else "hnsw", corpus, queries, truth)
            )
        print(json.dumps(engines[-1]), flush=True)  # a long run keeps what it has measured
    del corpus  # the ready-time part draws its own rows
    ready = (
        await bench_ready(config, arguments.ready_rows, rng, centres)
        if arguments.ready_rows
        else {}
    )
    result = {
        "size": arguments.size,
        "dimension": DIMENSION,
        "engines": engines,
        "ready": ready,
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "peak_rss_mb": round(rss_bytes("VmHWM") / 2**20),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'engine':<14} {'recall@10':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'build s':>8} {'MB':>8}  where"
    )
    for row in engines:
        print(
            f"{row['engine']:<14} {row['recall_at_10']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['build_s']:>8} {row['memory_mb']:>8}  {row['memory_where']}"
        )
    if ready:
        print(f"ready at {ready['rows']} rows: {ready}")


if __name__ == "__main__":
    asyncio.run(main())
