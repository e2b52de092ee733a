"""The typer application; each command group lives in a module of its own."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from satellites_repo.cli._common import console, health_table, load_config, settings
from satellites_repo.cli.db import db_app
from satellites_repo.cli.demo import demo
from satellites_repo.cli.events import events_app
from satellites_repo.cli.init import init
from satellites_repo.cli.observe import metrics_command, top_command
from satellites_repo.cli.ops import outbox_app, reindex_command, verify_command
from satellites_repo.cli.tenant import tenant_app
from satellites_repo.errors import SatellitesError
from satellites_repo.facade import probe_backends

__all__ = ["app", "main"]

# Plain click help: typer's rich panels print a "<bool>" type after every flag.
app = typer.Typer(
    name="satellites",
    help="Postgres as the truth; Redis, Elasticsearch and FAISS kept in step after commit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)


def _working_directory_first() -> None:
    """Let ``--repositories myapp.repos:ALL`` and ``env.py`` find the application's modules.

    A console script's ``sys.path`` starts with its own ``bin`` folder, not the current
    directory (unlike ``python -m``), so an application run from its checkout would need
    ``PYTHONPATH=.``. The directory goes first, as ``python -m`` would put it.
    """
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)


@app.callback()
def _configure(
    env_file: Annotated[
        Path | None,
        typer.Option(help="A dotenv file with SATELLITES_* variables (the environment wins)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Configuration comes from SATELLITES_* variables (see the README) or --env-file."""
    settings.env_file = env_file
    _working_directory_first()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    if not verbose:  # its retries are logged per attempt; the command reports the outcome
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)


@app.command()
def health() -> None:
    """Check every backend; exit 1 if any is down."""
    config = load_config()
    result = asyncio.run(probe_backends(config))
    console.print(health_table(result))
    raise typer.Exit(0 if result.ok else 1)


app.command()(init)
app.command()(demo)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(events_app, name="events")
app.add_typer(tenant_app, name="tenant")
app.command("reindex")(reindex_command)
app.command("verify")(verify_command)
app.command("top")(top_command)
app.command("metrics")(metrics_command)


def main() -> None:
    """The console script: a library error is one line on stderr and exit code 1."""
    try:
        app()
    except (SatellitesError, asyncpg.PostgresError, OSError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(1)
