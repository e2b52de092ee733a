"""What every command shares: the console, the configuration, the health table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import SatellitesError
from satellites_repo.health import Health

__all__ = ["console", "exit_codes", "health_table", "load_config", "settings"]

console = Console(width=100)


class _Settings:
    """Options given before the command (``satellites --env-file F db upgrade``)."""

    env_file: Path | None = None


settings = _Settings()


def load_config() -> DataLayerConfig:
    """The configuration for a command; a bad one exits with code 2 and says why."""
    try:
        return DataLayerConfig.from_env(settings.env_file)
    except SatellitesError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@contextmanager
def exit_codes(*codes: tuple[type[Exception], int]) -> Iterator[None]:
    """End the command with the code of the first listed error type raised, its message in red.

    The codes are the command's documented contract (e.g. 1 refused, 2 bad configuration),
    so a known error becomes a one-line message instead of a traceback.
    """
    try:
        yield
    except tuple(kind for kind, _ in codes) as exc:
        code = next(code for kind, code in codes if isinstance(exc, kind))
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code) from None


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
