"""Ratio benchmarks of the data layer against hand-written native-client code.

Run ``make bench`` (or ``python benchmarks/run.py`` with the ``SATELLITES_*`` variables of
``scripts/services env``). Against the real servers, in a schema, key prefix, index
prefix and FAISS folder of its own, it measures the library and a hand-written baseline
side by side and reports each figure as a ratio, median and min-max over repetitions.
It prints a table and writes ``benchmarks/results/latest.json``. See
``benchmarks/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _data import RowFactory
from _environment import ES_REFRESH, bench_environment
from _report import markdown_table, print_table, read_json, write_json
from _scenarios import SCENARIOS, Plan, seed_fixture
from _stats import Figure
from rich.console import Console

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
SEED = 20240601

FULL = Plan()
QUICK = Plan(
    repetitions=2,
    seed_rows=1_000,
    calls=40,
    get_many_calls=10,
    searches=20,
    warmup=10,
    bulk_entities=1_000,
    naive_entities=200,
    vector_query_size=2_000,
    vector_load_size=10_000,
    vector_memory_size=20_000,
    rebuild_rows=5_000,
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Ratio benchmarks against native clients.")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (not for figures)")
    parser.add_argument("--repetitions", type=int, help="repetitions per benchmark")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--output", type=Path, help=f"where to write the JSON (default {RESULTS.name})"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile each benchmark with pyinstrument into DIR (timings then are not figures, "
        "and the JSON is written only to an explicit --output)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument(
        "--show",
        type=Path,
        metavar="JSON",
        help="print the tables of a saved result and exit (nothing is run)",
    )
    parser.add_argument(
        "--faiss-micro",
        action="store_true",
        help="also run benchmarks/vectors.py (quick sizes) and embed its report",
    )
    return parser.parse_args()


def main() -> None:
    arguments = _arguments()
    console = Console(width=None if sys.stdout.isatty() else 160)
    if arguments.show is not None:
        document = read_json(arguments.show)
        _print(document["figures"], document["meta"], console, markdown=True)
        return
    names = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(SCENARIOS)}")
    plan = QUICK if arguments.quick else FULL
    if arguments.repetitions:
        plan = dataclasses.replace(plan, repetitions=arguments.repetitions)
    started = time.perf_counter()
    figures, meta = asyncio.run(_run(plan, names, arguments.profile, console))
    if arguments.faiss_micro:
        meta["faiss_micro"] = asyncio.run(_faiss_micro())
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    rows = [figure.as_json() for figure in figures]
    _print(rows, meta, console, markdown=arguments.markdown)
    output = arguments.output or (None if arguments.profile else RESULTS)
    if output is not None:
        write_json(output, meta, rows)
        console.print(f"wrote {output}")


def _print(
    rows: list[dict[str, Any]], meta: dict[str, Any], console: Console, *, markdown: bool
) -> None:
    title = (
        f"satellites vs hand-written clients: median ratio of "
        f"{meta['plan']['repetitions']} repetitions (ES refresh={meta['es_refresh']}), "
        f"run {meta['started_at']}, {meta['total_seconds']:.0f}s"
    )
    print_table(rows, title, console)
    if markdown:
        console.print(markdown_table(rows), markup=False, highlight=False, soft_wrap=True)


async def _run(
    plan: Plan, names: list[str], profile: Path | None, console: Console
) -> tuple[list[Figure], dict[str, Any]]:
    meta = _meta(plan)
    figures: list[Figure] = []
    async with bench_environment() as bench:
        meta["run_id"] = bench.run_id
        with console.status("writing the read fixture to both sides"):
            fixture = await seed_fixture(bench, plan, RowFactory(SEED))
        for name in names:
            with console.status(f"running {name}"):
                began = time.perf_counter()
                async with _profiled(profile, name):
                    figures.extend(await SCENARIOS[name](bench, plan, fixture))
                meta["seconds"][name] = round(time.perf_counter() - began, 1)
            console.print(f"{name}: {meta['seconds'][name]}s")
    meta["load_average_end"] = _load_average()
    return figures, meta


@asynccontextmanager
async def _profiled(directory: Path | None, name: str) -> AsyncIterator[None]:
    """Profile the block with pyinstrument (a development tool, not a dependency)."""
    if directory is None:
        yield
        return
    pyinstrument: Any = importlib.import_module("pyinstrument")
    profiler = pyinstrument.Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        _write_profile(profiler, directory, name)


def _write_profile(profiler: Any, directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.txt").write_text(profiler.output_text(color=False))
    (directory / f"{name}.html").write_text(profiler.output_html())


async def _faiss_micro() -> dict[str, Any]:
    vectors: Any = importlib.import_module("vectors")
    report: dict[str, Any] = await vectors.run(vectors.QUICK)
    return report


def _meta(plan: Plan) -> dict[str, Any]:
    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": _load_average(),
        "es_refresh": ES_REFRESH,
        "seed": SEED,
        "plan": dataclasses.asdict(plan),
        "versions": {
            name: version(name)
            for name in ("sqlalchemy", "asyncpg", "redis", "elasticsearch", "faiss-cpu")
        },
        "seconds": {},
    }


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{'+dirty' if dirty else ''}"


def _load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


if __name__ == "__main__":
    main()
