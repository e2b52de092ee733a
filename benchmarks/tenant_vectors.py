"""FAISS for many tenants: one namespace with a tenant metadata filter, or one per tenant.

Run ``nice -n 10 python benchmarks/tenant_vectors.py`` (``--quick`` for a smoke run). It
prints one JSON document and writes it to ``benchmarks/results/tenant_vectors.json``.

Both layouts hold the same seeded random float32 vectors (1,000 tenants x 1,000 vectors
of dimension 384 by default) in the library's ``VectorIndex`` (flat, the default), loaded
one tenant per ``upsert_many`` call:

* ``shared``: one namespace, every vector with metadata ``{"tenant_id": ...}``, queried
  with ``filter={"tenant_id": tenant}`` (what a ``TenantScoped`` repository does today);
* ``per_tenant``: one namespace per tenant, no metadata, queried unfiltered.

Each layout is built in a process of its own, so its memory is the growth of that
process's resident set while it loads (vectors are generated one tenant at a time and
dropped, so the growth is what the index holds). Queries go to a random tenant each; the
report gives their p50 and p99 after a warm-up, and the build's seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from _stats import percentile, timed
from engines import rss_bytes

from satellites_repo.vectors import VectorIndex

Layout = Literal["shared", "per_tenant"]

SEED = 20240601
TOP_K = 10
WARM_UP = 20
RESULTS = Path(__file__).resolve().parent / "results" / "tenant_vectors.json"


@dataclass(frozen=True)
class Sizes:
    tenants: int
    per_tenant: int
    dimension: int
    queries: int


FULL = Sizes(tenants=1_000, per_tenant=1_000, dimension=384, queries=500)
QUICK = Sizes(tenants=50, per_tenant=200, dimension=64, queries=100)


def main() -> None:
    """Measure both layouts, each in a child process, and report them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    parser.add_argument("--dimension", type=int, help="vector dimension (default 384)")
    parser.add_argument("--layout", choices=["shared", "per_tenant"], help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.dimension:
        sizes = Sizes(sizes.tenants, sizes.per_tenant, args.dimension, sizes.queries)
    if args.layout:  # the child: one layout, its figures on stdout
        print(json.dumps(asyncio.run(measure(args.layout, sizes))))
        return
    report: dict[str, Any] = {
        "setup": {**asdict(sizes), "top_k": TOP_K, "index_type": "flat", "seed": SEED},
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }
    for layout in ("shared", "per_tenant"):
        report[layout] = _child(layout, args)
    report["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    shared, own = report["shared"], report["per_tenant"]
    report["per_tenant_vs_shared"] = {
        "query_p50": round(own["query_p50_ms"] / shared["query_p50_ms"], 3),
        "memory": round(own["memory_mb"] / shared["memory_mb"], 3),
        "build": round(own["build_s"] / shared["build_s"], 3),
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")


def _child(layout: Layout, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--layout", layout]
    command += ["--quick"] if args.quick else []
    command += ["--dimension", str(args.dimension)] if args.dimension else []
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def tenant_vectors(sizes: Sizes, tenant: int) -> np.ndarray:
    """The same vectors for one tenant in either layout (seeded by the tenant)."""
    rng = np.random.default_rng([SEED, tenant])
    return rng.standard_normal((sizes.per_tenant, sizes.dimension), dtype=np.float32)


def namespace_of(layout: Layout, tenant: int) -> str:
    return "shared" if layout == "shared" else f"tenant-{tenant}"


async def measure(layout: Layout, sizes: Sizes) -> dict[str, Any]:
    """Build one layout, then time queries to random tenants."""
    with tempfile.TemporaryDirectory() as folder:
        index = VectorIndex(Path(folder), sizes.dimension)
        before = rss_bytes()
        started = time.perf_counter()
        for tenant in range(sizes.tenants):
            ids = [f"t{tenant}-{n}" for n in range(sizes.per_tenant)]
            metadata = [{"tenant_id": f"t{tenant}"}] * sizes.per_tenant
            await index.upsert_many(
                namespace_of(layout, tenant),
                ids,
                tenant_vectors(sizes, tenant),
                metadata if layout == "shared" else None,
            )
        build = time.perf_counter() - started
        grown = rss_bytes() - before
        rng = np.random.default_rng(SEED + 1)
        asked = rng.integers(0, sizes.tenants, WARM_UP + sizes.queries)
        queries = rng.standard_normal((len(asked), sizes.dimension), dtype=np.float32)

        async def query(n: int) -> None:
            tenant = int(asked[n])
            wanted = {"tenant_id": f"t{tenant}"} if layout == "shared" else None
            hits = await index.query(namespace_of(layout, tenant), queries[n], TOP_K, filter=wanted)
            assert len(hits) == TOP_K
            assert all(hit.id.startswith(f"t{tenant}-") for hit in hits)

        for n in range(WARM_UP):
            await query(n)
        samples = [await timed(partial(query, n)) for n in range(WARM_UP, len(asked))]
    return {
        "namespaces": 1 if layout == "shared" else sizes.tenants,
        "vectors": sizes.tenants * sizes.per_tenant,
        "query_p50_ms": round(percentile(samples, 0.5) * 1000, 3),
        "query_p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "memory_mb": round(grown / 2**20, 1),
        "raw_vectors_mb": round(sizes.tenants * sizes.per_tenant * sizes.dimension * 4 / 2**20, 1),
        "build_s": round(build, 2),
    }


if __name__ == "__main__":
    main()
