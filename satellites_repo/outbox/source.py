"""``PostgresSource``: the ``RowSource`` that rebuilds read, Postgres plus the outbox.

A rebuild streams the table, then replays the outbox's changes committed since a point
taken before the stream started, so a change made during the rebuild is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from satellites_repo.model.rows import stream_changes, stream_rows
from satellites_repo.outbox.related import document_version, with_related

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.model import Change, EntitySpec
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.store import OutboxStore
    from satellites_repo.types import ApplyChanges

__all__ = ["PostgresSource"]

REPLAY_PAGE = 500


class PostgresSource:
    def __init__(self, engine: AsyncEngine, store: OutboxStore, rehydrator: Rehydrator) -> None:
        self._engine = engine
        self._store = store
        self._rehydrator = rehydrator

    async def changes(self, spec: EntitySpec, batch_size: int) -> AsyncIterator[list[Change]]:
        """Every row, with its related fields if its document has some (all at a version
        taken before the stream starts: later changes are replayed above it)."""
        version = await document_version(self._engine) if spec.related else None
        async for batch in stream_changes(self._engine, spec, batch_size):
            if version is None:
                yield batch
            else:
                yield await with_related(self._engine, spec, batch, version)

    def rows(
        self, spec: EntitySpec, columns: Sequence[Any], batch_size: int
    ) -> AsyncIterator[Sequence[Row[Any]]]:
        return stream_rows(self._engine, spec, columns, batch_size=batch_size)

    async def position(self) -> int:
        return await self._store.current_position()

    async def replay(self, spec: EntitySpec, since: int, apply: ApplyChanges) -> int:
        replayed = 0

        async def page(records: list[OutboxRecord]) -> None:
            nonlocal replayed
            completed = await self._rehydrator.complete(records)
            await apply(completed)
            replayed += len(completed)

        await self._store.follow(since, [spec.table], page, page_size=REPLAY_PAGE)
        return replayed

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """A Postgres advisory lock keyed on ``name``, on a connection of its own."""
        async with self._engine.connect() as connection:
            key = {"name": f"satellites:{name}"}
            await connection.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), key)
            await connection.commit()
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), key)
                await connection.commit()
