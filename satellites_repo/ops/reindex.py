"""Rebuild projections from Postgres alone, without downtime.

Elasticsearch: a new numbered index is filled from a server-side cursor (memory stays
flat), with a bounded number of bulk requests in flight and backoff on 429s; the outbox
rows committed meanwhile are replayed into it; the alias is swapped in one atomic step
(readers never see an empty or half-built index); the rows committed around the swap are
replayed again; then the old index is dropped. Every write carries the row's version, so
replays and races are harmless and running it again after an interruption is safe.

Redis: every row is written again through the version guard (warming, never flushing:
tombstones stay, so slow readers still cannot resurrect deleted rows).

FAISS: the namespace is rebuilt from Postgres and saved as a snapshot with its position,
for instances to load at start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from satellites_repo.errors import ProjectionError
from satellites_repo.orm.changeset import Change, Operation
from satellites_repo.outbox.rehydrate import row_change, row_columns

if TYPE_CHECKING:
    from satellites_repo.facade import DataLayer
    from satellites_repo.orm.registry import EntitySpec
    from satellites_repo.outbox.records import OutboxRecord

__all__ = ["ReindexReport", "Target", "count_rows", "reindex"]

logger = logging.getLogger(__name__)

Target = str
TARGETS: tuple[Target, ...] = ("es", "redis", "vectors")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ReindexReport:
    repository: str
    target: Target
    rows: int
    replayed: int = 0
    new_index: str | None = None
    dropped: tuple[str, ...] = ()


async def count_rows(layer: DataLayer, spec: EntitySpec) -> int:
    async with layer.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(spec.model)) or 0)


async def stream_changes(
    layer: DataLayer, spec: EntitySpec, batch_size: int
) -> AsyncIterator[list[Change]]:
    """Every row as an ``updated`` change at its version, in batches, from a server cursor."""
    statement = select(*row_columns(spec)).execution_options(yield_per=batch_size)
    async with layer.engine.connect() as connection:
        result = await connection.stream(statement)
        async for rows in result.partitions():
            yield [row_change(spec, row._mapping, Operation.UPDATED) for row in rows]


async def reindex(
    layer: DataLayer,
    spec: EntitySpec,
    target: Target,
    *,
    batch_size: int = 500,
    in_flight: int = 2,
    progress: Progress | None = None,
) -> ReindexReport:
    """Rebuild one projection of one repository from Postgres."""
    report = progress or (lambda done: None)
    if target == "es":
        return await _reindex_search(layer, spec, batch_size, in_flight, report)
    if target == "redis":
        return await _warm_cache(layer, spec, batch_size, report)
    if target == "vectors":
        return await _rebuild_vectors(layer, spec, report)
    raise ValueError(f"unknown reindex target {target!r}; use one of {', '.join(TARGETS)}")


async def _write_with_backoff(layer: DataLayer, changes: Sequence[Change], into: str) -> None:
    """Bulk write into ``into``; a rejected (429) or failed request is retried with backoff."""
    search = layer.search_projection
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(ProjectionError),
        wait=wait_exponential_jitter(multiplier=0.5, max=30),
        stop=stop_after_attempt(8),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await search.write(changes, into=into, refresh="false")


async def _reindex_search(
    layer: DataLayer, spec: EntitySpec, batch_size: int, in_flight: int, report: Progress
) -> ReindexReport:
    index = spec.search
    if index is None:
        raise ValueError(f"{spec.repository.__name__} has no SearchIndex to reindex")
    search = layer.search_projection
    _, leftovers = await search.indices_of(index)
    for name in leftovers:  # a reindex that was interrupted before its swap
        await layer.elasticsearch.indices.delete(index=name)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    new_index = f"{search.alias(index)}-{stamp}"
    await search.create_index(index, new_index, aliased=False)
    start = await layer.outbox.current_position()

    slots = asyncio.Semaphore(in_flight)
    done = 0

    async def write(batch: list[Change]) -> None:
        nonlocal done
        try:
            await _write_with_backoff(layer, batch, new_index)
        finally:
            slots.release()
        done += len(batch)
        report(done)

    try:
        async with asyncio.TaskGroup() as writers:
            async for batch in stream_changes(layer, spec, batch_size):
                await slots.acquire()  # at most ``in_flight`` bulk requests at once
                writers.create_task(write(batch))
    except BaseException as exc:
        await layer.elasticsearch.indices.delete(index=new_index, ignore_unavailable=True)
        if isinstance(exc, BaseExceptionGroup):
            raise exc.exceptions[0] from exc
        raise

    replayed = await _replay(layer, spec, start, new_index)
    await layer.elasticsearch.indices.refresh(index=new_index)
    dropped = await search.swap_alias(index, new_index)
    replayed += await _replay(layer, spec, start, new_index)
    await layer.elasticsearch.indices.refresh(index=new_index)
    for name in dropped:
        await layer.elasticsearch.indices.delete(index=name, ignore_unavailable=True)
    logger.info(
        "reindexed %s into %s (%d rows, %d replayed)", spec.table, new_index, done, replayed
    )
    return ReindexReport(spec.repository.__name__, "es", done, replayed, new_index, tuple(dropped))


async def _replay(layer: DataLayer, spec: EntitySpec, start: int, into: str) -> int:
    """Write the outbox's changes since ``start`` into ``into`` (versions keep it harmless)."""
    replayed = 0

    async def apply(records: list[OutboxRecord]) -> None:
        nonlocal replayed
        changes = [record.change for record in records if record.change is not None]
        await _write_with_backoff(layer, changes, into)
        replayed += len(changes)

    await layer.outbox.follow(start, [spec.table], apply, page_size=500)
    return replayed


async def _warm_cache(
    layer: DataLayer, spec: EntitySpec, batch_size: int, report: Progress
) -> ReindexReport:
    if spec.cache is None:
        raise ValueError(f"{spec.repository.__name__} has no CachePolicy to warm")
    done = 0
    async for batch in stream_changes(layer, spec, batch_size):
        await layer.cache_projection.apply(batch)
        done += len(batch)
        report(done)
    return ReindexReport(spec.repository.__name__, "redis", done)


async def _rebuild_vectors(layer: DataLayer, spec: EntitySpec, report: Progress) -> ReindexReport:
    if spec.vectors is None:
        raise ValueError(f"{spec.repository.__name__} has no VectorField to rebuild")
    loaded = await layer.follower.rebuild([spec])
    await layer.vectors.save()
    report(loaded)
    return ReindexReport(spec.repository.__name__, "vectors", loaded)
