"""The typer application; each command group lives in a module of its own."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import SatellitesError
from satellites_repo.facade import DataLayer
from satellites_repo.health import Health

__all__ = ["app", "main"]

app = typer.Typer(
    name="satellites",
    help="Postgres as the truth; Redis, Elasticsearch and FAISS kept in step after commit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(width=100)


class _State:
    env_file: Path | None = None


@app.callback()
def _configure(
    env_file: Annotated[
        Path | None,
        typer.Option(help="A dotenv file with SATELLITES_* variables (the environment wins)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Configuration comes from SATELLITES_* variables (see the README) or --env-file."""
    _State.env_file = env_file
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


def load_config() -> DataLayerConfig:
    """The configuration for a command; a bad one exits with code 2 and says why."""
    try:
        return DataLayerConfig.from_env(_State.env_file)
    except SatellitesError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def health_table(health: Health) -> Table:
    table = Table(title="Health", title_justify="left")
    for column in ("backend", "status", "latency ms", "error"):
        table.add_column(column)
    for name, entry in health.details.items():
        colour = "green" if entry["status"] == "ok" else "red"
        table.add_row(
            name,
            f"[{colour}]{entry['status']}[/{colour}]",
            f"{entry['latency_ms']:.1f}",
            entry["error"] or "",
        )
    return table


@app.command()
def health() -> None:
    """Check every backend; exit 1 if any is down."""
    config = load_config()

    async def check() -> Health:
        layer = DataLayer(config)
        try:
            await layer.start()
        except SatellitesError as exc:
            console.print(f"[red]{exc}[/red]")
        try:
            return await layer.health()
        finally:
            await layer.stop()

    result = asyncio.run(check())
    console.print(health_table(result))
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    app()
