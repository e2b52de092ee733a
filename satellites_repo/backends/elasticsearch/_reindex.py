"""Rebuilding one search index from Postgres alone, without downtime.

A new numbered index is filled from a server-side cursor (memory stays flat), with a
bounded number of bulk requests in flight and backoff on rejections; the outbox rows
committed meanwhile are replayed into it; the alias is swapped in one atomic step (readers
never see an empty or half-built index); the rows committed around the swap are replayed
again; then the old index is dropped. Every write carries the row's version, so replays
and races are harmless and running it again after an interruption is safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.backends.elasticsearch._mapping import diff
from satellites_repo.errors import ProjectionError
from satellites_repo.retry import Backoff

if TYPE_CHECKING:
    from satellites_repo.backends.elasticsearch._backend import ElasticsearchBackend
    from satellites_repo.model import Change, EntitySpec, SearchIndex
    from satellites_repo.types import Progress, RowSource

__all__ = ["Reindexed", "reindex"]

logger = logging.getLogger(__name__)

BATCH = 500
IN_FLIGHT = 2
WRITE_ATTEMPTS = 8
WRITE_BACKOFF = Backoff(initial=0.5, maximum=30.0)


@dataclass(frozen=True, slots=True)
class Reindexed:
    rows: int
    replayed: int
    new_index: str
    dropped: tuple[str, ...]


async def reindex(
    backend: ElasticsearchBackend, spec: EntitySpec, source: RowSource, progress: Progress
) -> Reindexed:
    """One reindex per alias at a time (a Postgres advisory lock on the alias): a second
    waits, then rebuilds after the first, instead of deleting the index it is filling."""
    index = backend.index_of(spec)
    assert index is not None
    async with source.exclusive(f"reindex:{backend.alias(index)}"):
        return await _reindex(backend, spec, source, progress)


async def _reindex(
    backend: ElasticsearchBackend, spec: EntitySpec, source: RowSource, progress: Progress
) -> Reindexed:
    index = backend.index_of(spec)
    assert index is not None
    client = backend.client
    _, leftovers = await backend.indices_of(index)
    for name in leftovers:  # a reindex that was interrupted before its swap
        await client.indices.delete(index=name)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    new_index = f"{backend.alias(index)}-{stamp}"
    await backend.create_index(index, new_index, aliased=False)
    start = await source.position()

    async def write(changes: Sequence[Change]) -> None:
        await WRITE_BACKOFF.run(
            lambda: backend.write(changes, into=new_index, refresh="false"),
            attempts=WRITE_ATTEMPTS,
            retry_on=(ProjectionError,),
        )

    try:
        done = await _fill(source, spec, write, progress)
    except BaseException:
        await client.indices.delete(index=new_index, ignore_unavailable=True)
        raise

    replayed = await source.replay(spec, start, write)
    await client.indices.refresh(index=new_index)
    await _require_declared_mapping(backend, index, new_index)
    dropped = await backend.swap_alias(index, new_index)
    replayed += await source.replay(spec, start, write)
    await client.indices.refresh(index=new_index)
    for name in dropped:
        await client.indices.delete(index=name, ignore_unavailable=True)
    logger.info(
        "reindexed %s into %s (%d rows, %d replayed)", spec.table, new_index, done, replayed
    )
    return Reindexed(done, replayed, new_index, tuple(dropped))


async def _require_declared_mapping(
    backend: ElasticsearchBackend, index: SearchIndex, name: str
) -> None:
    """Refuse to swap to an index whose mapping is not the declared one (an index that
    Elasticsearch auto-created with a dynamic mapping, say); it is deleted instead."""
    found = await backend.client.indices.get_mapping(index=name)
    mappings = found.get(name, {}).get("mappings", {})
    differences = diff(mappings, index)
    if not differences.changed and not differences.added:
        return
    await backend.client.indices.delete(index=name, ignore_unavailable=True)
    raise ProjectionError(
        backend.name,
        f"reindex of {index.index!r}: {name} has mapping {mappings}, not the declared "
        f"{index.mappings()}; the alias was left where it was",
    )


async def _fill(
    source: RowSource,
    spec: EntitySpec,
    write: Callable[[Sequence[Change]], Awaitable[None]],
    progress: Progress,
) -> int:
    """Stream every row into the new index, at most ``IN_FLIGHT`` bulk requests at once."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    done = 0

    async def one(batch: list[Change]) -> None:
        nonlocal done
        try:
            await write(batch)
        finally:
            slots.release()
        done += len(batch)
        progress(done)

    try:
        async with asyncio.TaskGroup() as writers:
            async for batch in source.changes(spec, BATCH):
                await slots.acquire()
                writers.create_task(one(batch))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from group
    return done
