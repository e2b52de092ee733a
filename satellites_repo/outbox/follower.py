"""Keeps this process's FAISS index in step with every instance's commits.

FAISS is in-process, so each instance applies every vector change itself: it follows the
outbox from the position its snapshot records (woken by ``NOTIFY``, or by a short poll),
and rebuilds a namespace from Postgres when it has no usable snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from satellites_repo.orm.codec import json_safe
from satellites_repo.outbox.table import OUTBOX_CHANNEL

if TYPE_CHECKING:
    import asyncpg
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.orm.registry import EntitySpec, Registry
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.store import OutboxStore
    from satellites_repo.projections.vectors import VectorProjection
    from satellites_repo.vectors import VectorIndex

__all__ = ["VectorFollower"]

logger = logging.getLogger(__name__)


class VectorFollower:
    """Follows the outbox into the local ``VectorIndex``; rebuilds it from Postgres if needed."""

    def __init__(
        self,
        *,
        store: OutboxStore,
        projection: VectorProjection,
        rehydrator: Rehydrator,
        index: VectorIndex,
        registry: Registry,
        engine: AsyncEngine,
        page_size: int,
        poll_interval: float,
    ) -> None:
        self._store = store
        self._projection = projection
        self._rehydrator = rehydrator
        self._index = index
        self._specs = [spec for spec in registry.specs if spec.vectors is not None]
        self._engine = engine
        self._page_size = page_size
        self._poll_interval = poll_interval
        self._lock = asyncio.Lock()
        # Transactions this process's fast path applies to its own index itself: their rows
        # are not read back. ``_claimed`` ones are still being applied (or committed) and
        # hold the position back, so that one given back is still followed.
        self._claimed: set[int] = set()
        self._applied: set[int] = set()

    def claim(self, txid: int) -> None:
        """Before COMMIT: this process will apply the transaction's vectors itself."""
        if self._specs:
            self._claimed.add(txid)

    def applied(self, txid: int) -> None:
        """The fast path applied it."""
        if txid in self._claimed:
            self._claimed.discard(txid)
            self._applied.add(txid)

    def release(self, txid: int) -> None:
        """The commit or the fast path failed: follow the transaction like any other."""
        self._claimed.discard(txid)

    @property
    def entities(self) -> list[str]:
        return [spec.table for spec in self._specs]

    async def catch_up(self, *, snapshot_usable: bool) -> None:
        """Bring the index up to date at start: follow from the snapshot, or rebuild."""
        if not self._specs:
            return
        position = self._index.checkpoint
        if not snapshot_usable or position is None or position < await self._store.purged_upto():
            await self.rebuild()
            return
        await self.follow_once()

    async def rebuild(self, specs: Sequence[EntitySpec] | None = None) -> int:
        """Reload namespaces from Postgres, streaming rows; returns the vectors loaded.

        The position is taken before the scan, so changes committed during it are
        followed afterwards (and are harmless if the scan already saw them).
        """
        async with self._lock:
            position = await self._store.current_position()
            loaded = 0
            for spec in specs or self._specs:
                loaded += await self._reload(spec)
            self._index.checkpoint = position
        logger.info("rebuilt FAISS from Postgres: %d vector(s)", loaded)
        return loaded

    async def _reload(self, spec: EntitySpec) -> int:
        field = spec.vectors
        assert field is not None
        await self._index.drop(field.namespace)
        model = spec.model
        key_column = getattr(model, spec.codec.primary_key)
        columns = [key_column, model.version, getattr(model, field.column)]
        columns += [getattr(model, name) for name in field.metadata]
        statement = select(*columns).where(getattr(model, field.column).is_not(None))
        loaded = 0
        async with self._engine.connect() as connection:
            result = await connection.stream(statement.execution_options(yield_per=2000))
            async for rows in result.partitions():
                await self._index.upsert_many(
                    field.namespace,
                    [str(row[0]) for row in rows],
                    [row[2] for row in rows],
                    [_metadata(field.metadata, row[3:]) for row in rows],
                    versions=[row[1] for row in rows],
                )
                loaded += len(rows)
        return loaded

    async def follow_once(self) -> None:
        """Apply every committed vector change since the last position."""
        if not self._specs:
            return
        async with self._lock:
            claimed = set(self._claimed)
            position = await self._store.follow(
                self._index.checkpoint,
                self.entities,
                self._apply,
                page_size=self._page_size,
                skip=sorted(self._applied | claimed),
            )
            if claimed:
                position = min(position, *claimed)
            self._index.checkpoint = position
            self._applied = {txid for txid in self._applied if txid >= position}

    async def _apply(self, records: list[OutboxRecord]) -> None:
        changes = [record.change for record in records if record.change is not None]
        await self._projection.apply(await self._rehydrator.complete(changes))

    async def run(self, listener: asyncpg.Connection) -> None:
        """Follow until cancelled: woken by NOTIFY on ``listener``, else every poll interval."""
        if not self._specs:
            return
        woken = asyncio.Event()

        def wake(*_: object) -> None:
            woken.set()

        await listener.add_listener(OUTBOX_CHANNEL, wake)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=self._poll_interval)
                woken.clear()
                try:
                    await self.follow_once()
                except Exception as exc:
                    logger.warning("following the outbox into FAISS failed (%s); retrying", exc)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(OUTBOX_CHANNEL, wake)


def _metadata(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Metadata as the fast path stores it (the JSON-safe payload's values)."""
    return {name: json_safe(value) for name, value in zip(names, values, strict=True)}
