"""``satellites outbox``, ``reindex`` and ``verify``: operating the projections.

These commands need the application's repositories: ``--repositories myapp.repos:ALL``
(or ``SATELLITES_REPOSITORIES``) names a module attribute holding a Repository class or a
list of them; several may be given, comma-separated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from satellites_repo.cli._common import console, exit_codes, load_config
from satellites_repo.config import MappingConflict
from satellites_repo.errors import SatellitesError
from satellites_repo.facade import DataLayer
from satellites_repo.model import EntitySpec
from satellites_repo.ops import KINDS, Drift, Operations
from satellites_repo.orm.repository import Repository

__all__ = ["RepositoriesOption", "outbox_app", "reindex_command", "verify_command", "with_layer"]

T = TypeVar("T")

outbox_app = typer.Typer(help="The transactional outbox: status, retries, the relay, purging.")

RepositoriesOption = Annotated[
    str,
    typer.Option(
        "--repositories",
        envvar="SATELLITES_REPOSITORIES",
        help="module:attribute of the application's repositories (comma-separated).",
    ),
]
OnlyOption = Annotated[
    str | None, typer.Option("--repository", "-r", help="Only this repository (class name).")
]


def import_repositories(reference: str) -> list[type[Repository[Any]]]:
    """Resolve ``module:attribute[,module:attribute]`` to repository classes."""
    found: list[type[Repository[Any]]] = []
    for part in filter(None, (piece.strip() for piece in reference.split(","))):
        module_name, _, attribute = part.partition(":")
        if not attribute:
            raise typer.BadParameter(f"{part!r} must look like module:attribute")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise typer.BadParameter(f"cannot load {part!r}: {exc}") from None
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if not (isinstance(item, type) and issubclass(item, Repository)):
                raise typer.BadParameter(f"{part!r} holds {item!r}, not a Repository class")
            found.append(item)
    return found


def with_layer(
    repositories: str,
    work: Callable[[Operations], Awaitable[T]],
    *,
    relay: bool = False,
    follow: bool = False,
    on_mapping_conflict: MappingConflict | None = None,
) -> T:
    """Run ``work`` on a started layer; by default without background relay or follower,
    and with the configured ``elasticsearch.on_mapping_conflict``.

    Every library error ends the command with its one-line message and exit code 1; a
    wrong repository or target name, with exit code 2.
    """
    config = load_config()
    config = config.replace(outbox=config.outbox.replace(relay=relay, follow=follow))
    if on_mapping_conflict is not None:
        search = config.elasticsearch.replace(on_mapping_conflict=on_mapping_conflict)
        config = config.replace(elasticsearch=search)
    layer = DataLayer(config, repositories=import_repositories(repositories))

    async def run() -> T:
        async with layer:
            return await work(layer.operations)

    with exit_codes((SatellitesError, 1), (ValueError, 2)):
        return asyncio.run(run())


def _selected(operations: Operations, only: str | None) -> list[EntitySpec]:
    return operations.specs if only is None else [operations.spec(only)]


@outbox_app.command()
def status(repositories: RepositoriesOption) -> None:
    """Rows owed, dead-lettered and done, per target."""

    async def read(operations: Operations) -> None:
        state = await operations.outbox.status()
        table = Table(title="Outbox", title_justify="left")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("pending rows", str(state.pending))
        table.add_row("dead-lettered rows", str(state.dead))
        table.add_row("settled rows", str(state.done))
        oldest = state.oldest_pending.isoformat() if state.oldest_pending else "-"
        table.add_row("oldest pending", oldest)
        for target, count in state.by_target.items():
            table.add_row(f"owed to {target}", str(count))
        console.print(table)

    with_layer(repositories, read)


@outbox_app.command()
def retry(
    repositories: RepositoriesOption,
    dead: Annotated[bool, typer.Option("--dead", help="Also revive dead-lettered rows.")] = False,
) -> None:
    """Make owed rows due now (and revive dead-lettered ones with --dead)."""

    async def revive(operations: Operations) -> None:
        revived = await operations.outbox.retry_dead() if dead else 0
        due = await operations.outbox.retry_now()
        console.print(f"{due} row(s) due now ({revived} revived from the dead letters)")

    with_layer(repositories, revive)


_AGE = re.compile(r"^(\d+)([smhd])$")


def parse_age(text: str) -> dt.timedelta:
    match = _AGE.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not an age like 30m, 12h or 7d")
    amount, unit = int(match[1]), match[2]
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return dt.timedelta(seconds=amount * seconds)


@outbox_app.command()
def purge(
    repositories: RepositoriesOption,
    done_older_than: Annotated[
        str, typer.Option(help="Delete settled rows older than this (30m, 12h, 7d).")
    ] = "7d",
) -> None:
    """Delete settled rows; FAISS snapshots older than them are rebuilt at start."""
    age = parse_age(done_older_than)

    async def delete(operations: Operations) -> None:
        console.print(f"purged {await operations.outbox.purge(age)} settled row(s)")

    with_layer(repositories, delete)


@outbox_app.command()
def relay(
    repositories: RepositoriesOption,
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit.")] = False,
) -> None:
    """Run a relay in this process (until Ctrl-C), or one pass with --once."""

    async def deliver(operations: Operations) -> None:
        if once:
            console.print(f"delivered {await operations.relay.drain()} row(s)")
            return
        console.print("relay running; Ctrl-C stops it")
        await asyncio.Event().wait()

    try:
        with_layer(repositories, deliver, relay=not once)
    except KeyboardInterrupt:
        console.print("relay stopped")


def reindex_command(
    repositories: RepositoriesOption,
    repository: OnlyOption = None,
    target: Annotated[
        str, typer.Option(help="A backend (redis, elasticsearch, faiss) or all.")
    ] = "all",
) -> None:
    """Rebuild projections from Postgres: a new index behind the alias, no downtime."""

    async def rebuild(operations: Operations) -> None:
        for spec in _selected(operations, repository):
            total = await operations.count(spec.name)
            for backend in operations.targets(spec.name):
                if target in ("all", backend.name):
                    await _with_progress(operations, spec, backend.name, total)
        if target != "all":
            operations.backend(target)  # an unknown name is an error, not a silent no-op

    # Followers catch up first: a local backend's snapshot records one position for all.
    # A search index whose mapping conflicts with its declaration is what a reindex fixes,
    # so the conflict does not stop this start.
    with_layer(repositories, rebuild, follow=True, on_mapping_conflict="warn")


async def _with_progress(operations: Operations, spec: EntitySpec, target: str, total: int) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{spec.name} -> {target}", total=total)
        (report,) = await operations.reindex(
            spec.name, [target], progress=lambda done: progress.update(task, completed=done)
        )
    console.print(f"{report.repository} {target}: {report.rows} row(s)")


def verify_command(
    repositories: RepositoriesOption,
    repository: OnlyOption = None,
    mend: Annotated[
        bool, typer.Option("--repair", help="Enqueue outbox rows that mend the drift.")
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            help="Check N rows picked at random (and N entries of each backend for extras).",
        ),
    ] = None,
) -> None:
    """Compare Postgres with every projection, on versions and content; exit 1 if any
    drifted (and was not repaired)."""

    async def compare(operations: Operations) -> bool:
        clean = True
        for spec in _selected(operations, repository):
            drifts = await operations.verify(spec.name, sample=sample)
            console.print(_drift_table(drifts))
            if all(drift.clean for drift in drifts):
                continue
            if mend:
                owed = await operations.repair(spec.name, drifts)
                delivered = await operations.relay.drain()
                await operations.follow()
                console.print(f"repair: {owed} change(s) enqueued, {delivered} delivered")
                clean = clean and not any(drift.ahead for drift in drifts)
            else:
                clean = False
        return clean

    if not with_layer(repositories, compare, follow=True):
        raise typer.Exit(1)


def _drift_table(drifts: Sequence[Drift]) -> Table:
    """One line per backend: rows checked (sampled or all), then each kind's count."""
    table = Table(title="Drift", title_justify="left")
    table.add_column("repository")
    table.add_column("target")
    table.add_column("checked", justify="right")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    for drift in drifts:
        checked = str(drift.checked) if drift.sample is None else f"{drift.checked} (sample)"
        counts = [str(count) for count in drift.counts.values()]
        table.add_row(drift.repository, drift.target, checked, *counts)
    return table
