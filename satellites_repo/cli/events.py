"""``satellites events``: durable subscribers, their dead letters, and purging.

With ``events.backend = memory`` the subscribers are those of the publication registry
in Postgres (every one, or those named with ``--subscriber``); with ``rabbitmq`` they are
the brokers' queues of the subscribers named with ``--subscriber`` (a broker cannot list
them by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from satellites_repo import postgres
from satellites_repo.cli._common import console, load_config
from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import SatellitesError
from satellites_repo.subscriptions import DeliveryRegistry, SubscriberStatus
from satellites_repo.subscriptions.rabbitmq import RabbitMQAdmin

__all__ = ["events_app"]

T = TypeVar("T")

events_app = typer.Typer(help="Durable event subscribers: status, dead letters, purging.")

SubscriberOption = Annotated[
    list[str] | None,
    typer.Option("--subscriber", "-s", help="A durable subscriber's name (repeatable)."),
]


@events_app.command()
def status(subscriber: SubscriberOption = None) -> None:
    """Deliveries owed, dead-lettered and done, per durable subscriber."""
    config = load_config()
    names = subscriber or []
    if config.events.backend == "rabbitmq":
        rows = _run(RabbitMQAdmin(config.events).status(_required(names)))
    else:
        rows = _with_registry(config, lambda registry: registry.status())
        rows = [row for row in rows if not names or row.name in names]
    console.print(_status_table(rows))


@events_app.command()
def retry(subscriber: SubscriberOption = None) -> None:
    """Revive dead-lettered events: delivered again, with a fresh set of attempts."""
    config = load_config()
    names = subscriber or []
    if config.events.backend == "rabbitmq":
        admin = RabbitMQAdmin(config.events)
        revived = sum(_run(admin.retry_dead(name)) for name in _required(names))
    else:
        revived = _with_registry(config, lambda registry: _each(names, registry.retry_dead))
    console.print(f"{revived} dead-lettered event(s) revived")


@events_app.command()
def purge(
    subscriber: SubscriberOption = None,
    dead: Annotated[bool, typer.Option(help="Also discard the dead-lettered events.")] = False,
) -> None:
    """Delete done deliveries (and, with --dead, give up on the dead-lettered ones)."""
    config = load_config()
    names = subscriber or []
    if config.events.backend == "rabbitmq":
        if not dead:
            console.print("RabbitMQ keeps no done deliveries; pass --dead to drop dead letters")
            return
        admin = RabbitMQAdmin(config.events)
        purged = sum(_run(admin.purge(name)) for name in _required(names))
    else:

        async def delete(registry: DeliveryRegistry) -> int:
            return await _each(names, lambda name: registry.purge(name, dead=dead))

        purged = _with_registry(config, delete)
    console.print(f"purged {purged} deliverie(s)")


async def _each(names: Sequence[str], work: Callable[[str | None], Awaitable[int]]) -> int:
    """``work`` for each subscriber named, or once for all of them."""
    if not names:
        return await work(None)
    return sum([await work(name) for name in names])


def _required(names: list[str]) -> list[str]:
    if not names:
        raise typer.BadParameter(
            "name the durable subscribers with --subscriber: a RabbitMQ broker cannot list them"
        )
    return names


def _with_registry(config: DataLayerConfig, work: Callable[[DeliveryRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        pool = await postgres.open_postgres_pool(config.postgres.replace(min_connections=0))
        try:
            return await work(DeliveryRegistry.configured(pool, config.events))
        finally:
            await pool.close()

    return _run(run())


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except (SatellitesError, OSError, asyncpg.PostgresError, ImportError) as exc:
        console.print(f"[red]error:[/red] {escape(f'{type(exc).__name__}: {exc}')}")
        raise typer.Exit(1) from None


def _status_table(rows: Sequence[SubscriberStatus]) -> Table:
    table = Table(title="Durable subscribers", title_justify="left")
    for column in ("subscriber", "pattern", "pending", "dead", "done", "oldest pending"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    for row in rows:
        table.add_row(
            row.name,
            row.pattern or "-",
            str(row.pending),
            str(row.dead),
            "-" if row.done is None else str(row.done),
            row.oldest_pending.isoformat() if row.oldest_pending else "-",
            escape(row.last_error or ""),
        )
    return table
