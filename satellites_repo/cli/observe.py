"""``satellites top`` and ``satellites metrics``: watching the projections keep up.

``top`` reads everything it shows from Postgres and the backends' health probes, so it
works from any machine, whichever processes commit and relay. ``metrics`` serves the
OpenTelemetry instruments of its own process for Prometheus, the outbox gauges included.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from satellites_repo.cli._common import console, load_config
from satellites_repo.cli.ops import RepositoriesOption, import_repositories
from satellites_repo.facade import DataLayer
from satellites_repo.health import Health
from satellites_repo.observe import TargetBacklog
from satellites_repo.observe.prometheus import serve_prometheus
from satellites_repo.outbox.monitor import Throughput

__all__ = ["metrics_command", "top_command"]

WINDOW = 60.0
"""Seconds of outbox history behind commits/s and the lag percentiles."""


def render_frame(health: Health, backlog: list[TargetBacklog], throughput: Throughput) -> Group:
    """One frame of ``satellites top``."""
    backends = Table(title="Backends", title_justify="left")
    for column in ("backend", "status", "latency ms"):
        backends.add_column(column, justify="right" if column == "latency ms" else "left")
    for name, entry in health.details.items():
        colour = "green" if entry["status"] == "ok" else "red"
        status = f"[{colour}]{entry['status']}[/{colour}]"
        backends.add_row(name, status, f"{entry['latency_ms']:.1f}")
    outbox = Table(title="Outbox", title_justify="left")
    for column in ("target", "owed", "oldest owed s", "dead letters"):
        outbox.add_column(column, justify="left" if column == "target" else "right")
    for entry in backlog:
        dead = f"[red]{entry.dead}[/red]" if entry.dead else "0"
        outbox.add_row(entry.target, str(entry.owed), f"{entry.oldest_age:.1f}", dead)
    lag = throughput.settle_lag
    lag_text = " / ".join(f"{value * 1000:.0f}" for value in lag) if lag else "-"
    summary = Text(
        f"commits/s {throughput.commits_per_second:.2f} (last {throughput.window:.0f} s)   "
        f"commit-to-settled lag p50/p95/p99 ms {lag_text}"
    )
    stamp = Text(f"satellites top  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC", style="bold")
    return Group(stamp, backends, outbox, summary)


async def _frame(layer: DataLayer) -> Group:
    operations = layer.operations
    health, backlog, throughput = await asyncio.gather(
        layer.health(), operations.backlog(), operations.throughput(WINDOW)
    )
    return render_frame(health, backlog, throughput)


def top_command(
    once: Annotated[bool, typer.Option(help="Print one frame and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between frames.")] = 1.0,
) -> None:
    """A live view: backend health and latency, outbox backlog, dead letters, commits/s, lag."""
    config = load_config()
    config = config.replace(outbox=config.outbox.replace(relay=False, follow=False))

    async def run() -> None:
        async with DataLayer(config) as layer:
            if once:
                console.print(await _frame(layer))
                return
            with Live(await _frame(layer), console=console, auto_refresh=False) as live:
                while True:
                    await asyncio.sleep(interval)
                    live.update(await _frame(layer), refresh=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a live view ends
        asyncio.run(run())


def metrics_command(
    repositories: RepositoriesOption,
    prometheus: Annotated[
        str,
        typer.Option(help="Serve /metrics for Prometheus at host:port (:9464: every interface)."),
    ] = ":9464",
    relay: Annotated[bool, typer.Option(help="Also run a relay in this process.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between backlog reads.")] = 1.0,
) -> None:
    """Serve the satellites.* metrics (outbox gauges included) until Ctrl-C."""
    config = load_config()
    config = config.replace(outbox=config.outbox.replace(relay=relay, follow=False))
    endpoint = serve_prometheus(prometheus)
    console.print(f"serving metrics on http://{endpoint.host}:{endpoint.port}/metrics")

    async def run() -> None:
        async with DataLayer(config, repositories=import_repositories(repositories)) as layer:
            while True:
                await layer.operations.backlog()  # publishes the outbox gauges
                await asyncio.sleep(interval)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("metrics stopped")
    finally:
        endpoint.close()
