"""The FAISS rows of ``make bench`` at several sizes: query, load and memory as ratios.

Run ``python benchmarks/vector_scaling.py`` (``--sizes 10000,100000,500000`` by default,
``--repetitions 3``, ``--calls 50`` queries per repetition). Each size runs the query, load
and memory figures of ``_vector_figures.py`` (same sides, same data generator) and prints
one table; nothing needs a server. It writes ``benchmarks/results/vector_scaling.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from _scenarios import Plan
from _vector_figures import SEED, flat_query, load, memory

RESULTS = Path(__file__).resolve().parent / "results" / "vector_scaling.json"


async def main() -> None:
    parser = argparse.ArgumentParser(description="FAISS query, load and memory by size.")
    parser.add_argument("--sizes", default="10000,100000,500000")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--calls", type=int, default=50, help="queries per repetition")
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for size in [int(n) for n in arguments.sizes.split(",")]:
        plan = dataclasses.replace(
            Plan(),
            repetitions=arguments.repetitions,
            calls=arguments.calls,
            warmup=5,
            vector_query_size=size,
            vector_load_size=size,
            vector_memory_size=size,
        )
        rng = np.random.default_rng(SEED)
        figures = [*await flat_query(plan, rng), await load(plan, rng), await memory(plan)]
        for figure in figures:
            row = figure.as_json()
            rows.append(row | {"size": size})
            ratio = row["ratio"]
            print(
                f"{size:>8,}  {figure.name[:60]:<60} {row['subject_value']['median']:>9.3f} "
                f"{row['baseline_value']['median']:>9.3f} {figure.unit:<3} "
                f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})",
                flush=True,
            )
    document = {"load_average_at_end": os.getloadavg(), "rows": rows}
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
