"""``satellites init``: an application's Alembic project and test fixtures, ready to run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from satellites_repo.cli._common import console
from satellites_repo.errors import SatellitesError
from satellites_repo.migrate.scaffold import write_project

__all__ = ["init"]


def init(
    directory: Annotated[
        Path, typer.Argument(help="The application's folder (created if missing).")
    ] = Path(),
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="A module that declares models, imported by migrations/env.py (repeatable).",
        ),
    ] = None,
) -> None:
    """Write alembic.ini, migrations/ (env.py, template, versions/) and a conftest.py.

    Exits 1 without writing anything if one of those files exists.
    """
    try:
        written = write_project(directory, models or [])
    except SatellitesError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for path in written:
        console.print(f"wrote {path}")
    console.print("next: satellites db revision --autogenerate -m init, then satellites db upgrade")
