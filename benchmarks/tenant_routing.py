"""Elasticsearch for many tenants: does ``routing=<tenant>`` make a tenant's search faster?

Run ``nice -n 10 python benchmarks/tenant_routing.py`` with the variables of
``scripts/services env`` (``--quick`` for a smoke run). It prints one JSON document and
writes it to ``benchmarks/results/tenant_routing.json``.

Data: 100 tenants x 1,000 documents (title of 5 and body of 40 words drawn from 600,
seeded), mapped as the library maps a ``TenantScoped`` ``SearchIndex`` (text fields and
the ``tenant_id`` keyword). For each shard count (1, what the library creates, and 4 for
comparison) two indices hold the same documents: one indexed without routing and
searched with the tenant filter only (what the library does), one indexed and searched
with ``routing=<tenant>`` and the same filter. Each query (one word, a random tenant, the
library's own query body from ``es_query``, ``size=10``, no ``_source``: the library
hydrates from the cache or Postgres) goes to both indices of a shard count, the first
alternating, after a warm-up; 7 rounds of 100 queries give each side's p50 per round and
the ratio routed / filter-only per round, reported as median and min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from _stats import Figure, percentile, timed
from elasticsearch import AsyncElasticsearch

from satellites_repo import DataLayerConfig
from satellites_repo.backends.elasticsearch._query import es_query
from satellites_repo.model import SearchIndex

SEED = 20240601
WARM_UP = 30
ROUNDS = 7
BATCH = 2_000
WORDS = tuple(f"w{n:03d}" for n in range(600))
RESULTS = Path(__file__).resolve().parent / "results" / "tenant_routing.json"
INDEX = SearchIndex("bench-routing", {"title": "text", "body": "text", "tenant_id": "keyword"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    sizes = (10, 200, 20) if args.quick else (100, 1_000, 100)
    report = asyncio.run(run(*sizes))
    text = json.dumps(report, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")


async def run(tenants: int, per_tenant: int, queries: int) -> dict[str, Any]:
    config = DataLayerConfig.from_env()
    client = AsyncElasticsearch(hosts=config.elasticsearch.hosts, request_timeout=120)
    run_id = secrets.token_hex(4)
    report: dict[str, Any] = {
        "setup": {"tenants": tenants, "per_tenant": per_tenant, "queries": queries},
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }
    made: list[str] = []
    try:
        for shards in (1, 4):
            names = {routed: f"bench-routing-{run_id}-{shards}-{routed}" for routed in (0, 1)}
            made += names.values()
            for routed, name in names.items():
                await load(client, name, shards, bool(routed), tenants, per_tenant)
            report[f"shards_{shards}"] = await compare(client, names, tenants, queries)
    finally:
        for name in made:
            await client.indices.delete(index=name, ignore_unavailable=True)
        await client.close()
    report["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    return report


async def load(
    client: AsyncElasticsearch, name: str, shards: int, routed: bool, tenants: int, per: int
) -> None:
    """The same seeded documents in every index; ``routed``: each with its tenant's routing."""
    await client.indices.create(
        index=name,
        mappings=INDEX.mappings(),
        settings={"number_of_shards": shards, "number_of_replicas": 0},
    )
    rng = np.random.default_rng(SEED)
    operations: list[dict[str, Any]] = []
    for tenant in range(tenants):
        for n in range(per):
            words = [WORDS[w] for w in rng.integers(0, len(WORDS), 45)]
            action: dict[str, Any] = {"_index": name, "_id": f"t{tenant}-{n}"}
            if routed:
                action["routing"] = f"t{tenant}"
            operations.append({"index": action})
            operations.append(
                {
                    "title": " ".join(words[:5]),
                    "body": " ".join(words[5:]),
                    "tenant_id": f"t{tenant}",
                }
            )
            if len(operations) >= 2 * BATCH:
                await _bulk(client, operations)
    await _bulk(client, operations)
    await client.indices.refresh(index=name)
    await client.indices.forcemerge(index=name, max_num_segments=1)


async def _bulk(client: AsyncElasticsearch, operations: list[dict[str, Any]]) -> None:
    if operations:
        response = await client.bulk(operations=operations)
        assert not response["errors"], "bulk load refused documents"
        operations.clear()


async def compare(
    client: AsyncElasticsearch, names: dict[int, str], tenants: int, queries: int
) -> dict[str, Any]:
    """Rounds of queries, each to both indices (the first alternating): per round each
    side's p50 and their ratio; the figure is the median ratio and its min-max."""
    rng = np.random.default_rng(SEED + 1)
    count = WARM_UP + ROUNDS * queries
    picks = zip(rng.integers(0, tenants, count), rng.integers(0, len(WORDS), count), strict=True)
    asked = [(f"t{tenant}", WORDS[word]) for tenant, word in picks]

    def search(routed: int, tenant: str, word: str) -> Callable[[], Awaitable[object]]:
        query = es_query(INDEX, word, {"tenant_id": tenant})
        routing = tenant if routed else None
        return lambda: client.search(
            index=names[routed], query=query, size=10, source=False, routing=routing
        )

    for n in range(WARM_UP):
        for routed in (0, 1):
            await search(routed, *asked[n])()
    p50s: dict[int, list[float]] = {0: [], 1: []}
    for round_start in range(WARM_UP, count, queries):
        samples: dict[int, list[float]] = {0: [], 1: []}
        for n in range(round_start, round_start + queries):
            for routed in (n % 2, 1 - n % 2):
                samples[routed].append(await timed(search(routed, *asked[n])))
        for routed, values in samples.items():
            p50s[routed].append(round(percentile(values, 0.5) * 1000, 3))
    figure = Figure(
        "tenant search", "p50", "ms", "routing_and_filter", "filter_only", p50s[1], p50s[0]
    )
    return figure.as_json()


if __name__ == "__main__":
    main()
