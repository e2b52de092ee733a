"""Keeps this process's local backends (FAISS) in step with every instance's commits.

A local backend lives in each process, so each instance applies every change itself: it
follows the outbox from the position its snapshot records (woken by ``NOTIFY``, or by a
short poll), and rebuilds from Postgres when it has no usable position.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from satellites_repo.errors import ProjectionError
from satellites_repo.outbox.dispatch import wants
from satellites_repo.outbox.related_capture import RELATED_PREFIX
from satellites_repo.outbox.table import OUTBOX_CHANNEL
from satellites_repo.retry import FailureLog, wait_until

if TYPE_CHECKING:
    import asyncpg

    from satellites_repo.model import EntitySpec, Registry
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.store import FollowPoint, OutboxStore
    from satellites_repo.types import LocalBackend, RowSource

__all__ = ["Follower"]

logger = logging.getLogger(__name__)


class Follower:
    """Follows the outbox into one ``LocalBackend``; rebuilds it from Postgres if needed."""

    def __init__(
        self,
        *,
        store: OutboxStore,
        backend: LocalBackend,
        rehydrator: Rehydrator,
        registry: Registry,
        source: RowSource,
        page_size: int,
        poll_interval: float,
    ) -> None:
        self._store = store
        self.backend = backend
        self._rehydrator = rehydrator
        self._registry = registry
        self._specs = [spec for spec in registry.specs if backend.covers(spec)]
        self._source = source
        self._page_size = page_size
        self._poll_interval = poll_interval
        self._lock = asyncio.Lock()
        self.failures = FailureLog(logger, f"following the outbox into {backend.name}")
        # Transactions this process's fast path applies to its own copy itself: their rows
        # are not read back. ``_claimed`` ones are still being applied (or committed) and
        # hold the position back, so that one given back (``_released``) is still followed.
        # ``_applied`` keeps only those the next read could still see: with ``_point``,
        # what is remembered is bounded by the transactions open at once, not by commits.
        self._claimed: set[int] = set()
        self._applied: set[int] = set()
        self._released: set[int] = set()
        self._point: FollowPoint | None = None
        self._woken = asyncio.Event()

    def claim(self, txid: int) -> None:
        """Before COMMIT: this process will apply the transaction's changes itself."""
        if self._specs:
            self._claimed.add(txid)

    def applied(self, txid: int) -> None:
        """The fast path applied it."""
        if txid in self._claimed:
            self._claimed.discard(txid)
            self._applied.add(txid)

    def release(self, txid: int) -> None:
        """The commit or the fast path failed: follow the transaction like any other."""
        if txid in self._claimed:
            self._claimed.discard(txid)
            self._released.add(txid)
            self._woken.set()  # its NOTIFY was passed over as this process's own

    @property
    def tables(self) -> list[str]:
        return [spec.table for spec in self._specs]

    async def catch_up(self) -> None:
        """Bring the copy up to date at start: follow from its checkpoint, or rebuild.

        The snapshot is trusted only if it was made from this database (its identity:
        system identifier, database, schema) and its position is one this database has
        reached and still holds in the outbox; otherwise Postgres rebuilds it.
        """
        if not self._specs:
            return
        if self.backend.checkpoint is None:
            await self.rebuild()
            return
        distrust = await self._distrust()
        if distrust is not None:
            logger.warning("%s snapshot not used (%s): rebuilding", self.backend.name, distrust)
            await self.rebuild()
            return
        await self.follow_once()

    async def _distrust(self) -> str | None:
        """Why the loaded snapshot cannot be followed from, or ``None``."""
        position, origin = self.backend.checkpoint or 0, self.backend.origin
        identity = await self._store.identity()
        if origin != identity:
            return f"made for {origin or 'an unknown database'}, this is {identity}"
        if position < await self._store.purged_upto():
            return "the outbox was purged past its position"
        if position > await self._store.current_position():
            return "its position is ahead of the database (restored from a backup?)"
        return None

    async def rebuild(self, specs: Sequence[EntitySpec] | None = None) -> int:
        """Reload repositories from Postgres; returns the rows loaded.

        The position is taken before the scan, so changes committed during it are
        followed afterwards (and are harmless if the scan already saw them).
        """
        async with self._lock:
            position = await self._store.current_position()
            loaded = 0
            for spec in specs or self._specs:
                loaded += await self.backend.rebuild(spec, self._source, lambda done: None)
            self.backend.checkpoint = position
            self.backend.origin = await self._store.identity()
            self._point = None
        logger.info("rebuilt %s from Postgres: %d row(s)", self.backend.name, loaded)
        return loaded

    async def follow_once(self) -> None:
        """Apply every committed change since the last position."""
        if not self._specs:
            return
        async with self._lock:
            claimed = set(self._claimed)
            released = set(self._released)
            point = await self._store.follow(
                self._point if self._point is not None else self.backend.checkpoint,
                self.tables,
                self._apply,
                page_size=self._page_size,
                skip=sorted(self._applied | claimed),
                reread=released,
            )
            self._point = point
            self._released -= released
            self.backend.checkpoint = min({point.xmin, *claimed, *self._released})
            self._applied = {txid for txid in self._applied if point.holds(txid)}

    def _own(self, payload: str) -> bool:
        """Whether a NOTIFY is for a transaction this process's fast path applies itself:
        following it would read nothing (its rows are skipped), at five round trips."""
        txid = int(payload) if payload.isdigit() else None
        return txid in self._claimed or txid in self._applied

    async def _apply(self, records: list[OutboxRecord]) -> None:
        """Apply a page; rows the backend refuses are logged and passed over, never
        retried here (each instance's copy would stop following at a poison row).
        Re-projections of documents with related fields concern the search index only;
        rows it need not see (``wants``) are not even read back from Postgres."""
        records = [r for r in records if not r.event_id.startswith(RELATED_PREFIX)]
        if not records:
            return
        spec_of = self._registry.spec_of_table
        wanted = [
            record
            for record in records
            if (change := record.change) is not None
            and wants(self.backend, spec_of(record.entity), change)
        ]
        try:
            await self.backend.apply(await self._rehydrator.complete(wanted))
        except ProjectionError as exc:
            if not exc.rejected:
                raise
            for (table, key), why in exc.rejected.items():
                logger.error("%s: %s %r not applied: %s", self.backend.name, table, key, why.reason)

    async def run(self, listener: asyncpg.Connection) -> None:
        """Follow until cancelled: woken by NOTIFY on ``listener``, else every poll interval."""
        if not self._specs:
            return
        woken = self._woken

        def wake(connection: object, pid: int, channel: str, payload: object) -> None:
            if not self._own(str(payload)):
                woken.set()

        await listener.add_listener(OUTBOX_CHANNEL, wake)
        try:
            while True:
                await wait_until(woken, self._poll_interval)
                woken.clear()
                try:
                    await self.follow_once()
                    self.failures.succeeded()
                except Exception as exc:
                    self.failures.failed(exc)
        finally:
            try:
                await listener.remove_listener(OUTBOX_CHANNEL, wake)
            except Exception:
                logger.debug("removing the outbox listener failed", exc_info=True)
