"""Re-projecting the documents that embed a renamed row: the library against native code.

An account with ``--tickets`` tickets (10,000) is renamed. The library's side is one bulk
``UPDATE`` committed through a unit of work, then the relay draining the re-projections the
capture of related tables owed (in ``OutboxConfig.batch_size`` batches), then an index
refresh; the figure is the time until every ticket's document shows the new name. The
native side is what a team writes by hand on the same clients: the ``UPDATE``, then a
``SELECT`` joining tickets to the account and bulk requests of the same size into an index
of the same mapping, then a refresh. Runs alternate (``--repetitions``); the medians and
their ratio are printed. Everything lives in a schema and an index prefix of its own,
dropped afterwards. Elasticsearch writes use ``refresh=false`` on both sides.

    .venv/bin/python benchmarks/related.py [--tickets 10000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from typing import Any

from sqlalchemy import ForeignKey, MetaData, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from satellites_repo import DataLayer, DataLayerConfig, Repository, SearchIndex, Versioned
from satellites_repo.migrate import create_tables
from satellites_repo.orm.base import NAMING_CONVENTION
from satellites_repo.outbox.table import meta_table, outbox_table
from satellites_repo.postgres import open_postgres_pool


class BenchModel(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


for _table in (outbox_table, meta_table):
    _table.to_metadata(BenchModel.metadata)


class Account(BenchModel):
    __tablename__ = "bench_accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    tier: Mapped[str]


class Ticket(BenchModel, Versioned):
    __tablename__ = "bench_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str]
    account_id: Mapped[int] = mapped_column(ForeignKey("bench_accounts.id"), index=True)
    account: Mapped[Account] = relationship(lazy="raise")


class Tickets(Repository[Ticket]):
    search = SearchIndex(
        "bench-tickets", fields={"subject": "text"}, related={"account": ("name", "tier")}
    )


async def _library(data: DataLayer, name: str, tickets: int) -> float:
    started = time.perf_counter()
    async with data.unit_of_work() as uow:
        await uow.session.execute(update(Account).where(Account.id == 1).values(name=name))
        await uow.commit()
    await data.operations.relay.drain()
    alias = f"{data.config.elasticsearch.index_prefix}bench-tickets"
    await data.elasticsearch.indices.refresh(index=alias)
    elapsed = time.perf_counter() - started
    await _require(data, alias, name, tickets)
    return elapsed


async def _native(data: DataLayer, index: str, name: str, tickets: int, batch: int) -> float:
    started = time.perf_counter()
    await data.postgres.execute("UPDATE bench_accounts SET name = $1 WHERE id = 1", name)
    rows = await data.postgres.fetch(
        "SELECT t.id, t.subject, a.name, a.tier FROM bench_tickets t "
        "JOIN bench_accounts a ON a.id = t.account_id WHERE a.id = 1"
    )
    for start in range(0, len(rows), batch):
        operations: list[dict[str, Any]] = []
        for row in rows[start : start + batch]:
            operations.append({"index": {"_index": index, "_id": str(row["id"])}})
            operations.append(
                {
                    "@key": str(row["id"]),
                    "subject": row["subject"],
                    "account.name": row["name"],
                    "account.tier": row["tier"],
                }
            )
        await data.elasticsearch.bulk(operations=operations, refresh="false")
    await data.elasticsearch.indices.refresh(index=index)
    elapsed = time.perf_counter() - started
    await _require(data, index, name, tickets)
    return elapsed


async def _require(data: DataLayer, index: str, name: str, tickets: int) -> None:
    found = await data.elasticsearch.count(index=index, query={"term": {"account.name": name}})
    if int(found["count"]) != tickets:
        raise SystemExit(f"{index}: {found['count']} documents show {name!r}, not {tickets}")


async def main(tickets: int, repetitions: int) -> None:
    run = secrets.token_hex(4)
    base = DataLayerConfig.from_env()
    schema = f"bench_related_{run}"
    config = base.replace(
        postgres=base.postgres.replace(schema_name=schema),
        elasticsearch=base.elasticsearch.replace(index_prefix=f"bench{run}-", refresh="false"),
        outbox=base.outbox.replace(relay=False),  # the run drains the relay itself
    )
    admin = await open_postgres_pool(base.postgres.replace(min_connections=1, max_connections=1))
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await create_tables(config, BenchModel.metadata, repositories=[Tickets])
        async with DataLayer(config, repositories=[Tickets]) as data:
            try:
                await _measure(data, tickets, repetitions)
            finally:
                found = await data.elasticsearch.indices.get(index=f"bench{run}-*")
                for name in found:  # by name: the cluster refuses wildcard deletes
                    await data.elasticsearch.indices.delete(index=name)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def _ignore(event: object) -> None:
    """A subscriber, so the relay publishes the inserts' events instead of leaving them owed."""


async def _measure(data: DataLayer, tickets: int, repetitions: int) -> None:
    data.events.subscribe_all(_ignore)
    await data.postgres.execute("INSERT INTO bench_accounts VALUES (1, 'Acme', 'gold')")
    await data.postgres.execute(
        "INSERT INTO bench_tickets (id, subject, account_id, version) "
        "SELECT n, 'ticket ' || n, 1, 0 FROM generate_series(1, $1) AS n",
        tickets,
    )
    await data.operations.relay.drain()
    native_index = f"{data.config.elasticsearch.index_prefix}native-tickets"
    spec = data.operations.spec(Tickets)
    assert spec.search is not None
    await data.elasticsearch.indices.create(index=native_index, mappings=spec.search.mappings())
    batch = data.config.outbox.batch_size
    library: list[float] = []
    native: list[float] = []
    for round_ in range(repetitions):
        library.append(await _library(data, f"library {round_}", tickets))
        native.append(await _native(data, native_index, f"native {round_}", tickets, batch))
    lib, nat = statistics.median(library), statistics.median(native)
    print(
        f"rename of an account with {tickets:,} tickets, {repetitions} runs each, "
        f"batches of {batch}:\n"
        f"  library (bulk UPDATE -> capture -> outbox -> relay -> ES): median {lib:.2f}s, "
        f"{tickets / lib:,.0f} rows/s  (runs: {', '.join(f'{t:.2f}' for t in library)})\n"
        f"  native  (UPDATE, SELECT join, bulk by hand):              median {nat:.2f}s, "
        f"{tickets / nat:,.0f} rows/s  (runs: {', '.join(f'{t:.2f}' for t in native)})\n"
        f"  ratio library/native: {lib / nat:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.tickets, arguments.repetitions))
