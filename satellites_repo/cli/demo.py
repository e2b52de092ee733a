"""``satellites demo``: the knowledge-base example's guided tour against the real servers.

The tour itself (``satellites_repo/demo/tour.py``) ships with the package, so an installed
wheel runs it too; this command gives it a configuration, a console and exit codes:
0 when every step showed what it promised, 1 when a check failed or a backend could not
be reached, 2 for bad options or configuration.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from satellites_repo.cli._common import console, health_table, load_config
from satellites_repo.errors import SatellitesError

__all__ = ["demo"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_]{0,40}$")


def demo(
    articles: Annotated[
        int, typer.Option(min=30, max=20_000, help="How many articles to load.")
    ] = 1000,
    schema: Annotated[
        str, typer.Option(help="Postgres schema of the sandbox; dropped and recreated.")
    ] = "kb_demo",
    prefix: Annotated[
        str, typer.Option(help="Redis key prefix and Elasticsearch index prefix (no ':' or '-').")
    ] = "kbdemo",
) -> None:
    """Load a multi-tenant knowledge base and show every projection at work."""
    if not _SCHEMA.match(schema) or not _PREFIX.match(prefix):
        console.print("[red]--schema and --prefix take lowercase letters, digits and '_'[/red]")
        raise typer.Exit(2)
    config = load_config()
    # Imported here, not with the CLI: the demo's models would join Base.metadata, and
    # `satellites db revision --autogenerate` would write them into the application's revision.
    from satellites_repo.demo.sandbox import Sandbox
    from satellites_repo.demo.tour import Tour, TourFailure

    with tempfile.TemporaryDirectory(prefix="satellites-demo-") as faiss_dir:
        sandbox = Sandbox(schema, prefix, Path(faiss_dir))
        tour = Tour(config, sandbox, console, articles=articles, health_table=health_table)
        try:
            asyncio.run(tour.run())
        except (TourFailure, SatellitesError) as exc:
            console.print(f"\n[bold red]demo failed:[/bold red] {escape(str(exc))}")
            if isinstance(exc, SatellitesError):
                console.print(
                    'Are the servers up? `make services`; `eval "$(scripts/services env)"`'
                )
            raise typer.Exit(1) from None
