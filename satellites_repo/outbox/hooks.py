"""``OutboxHooks``: what happens around COMMIT (the one ``CommitHooks`` implementation).

Before COMMIT, the changes and the emitted events are written to the outbox in the same
transaction. After COMMIT, the fast path applies them (backends concurrently, then the
events in order) and settles the outbox rows; whatever failed stays owed and the relay
delivers it later. Nothing after COMMIT can make the commit look failed, and the delivery
has a deadline (``OutboxConfig.delivery_timeout``): a hung backend cannot hold a commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo import observe
from satellites_repo.model import Operation
from satellites_repo.outbox.delivery import deliver
from satellites_repo.outbox.table import outbox_table
from satellites_repo.retry import FailureLog

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.events import DataEvent, EventBus
    from satellites_repo.model import Change
    from satellites_repo.outbox.dispatch import Dispatcher
    from satellites_repo.outbox.follower import Follower
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.settler import Settler
    from satellites_repo.outbox.store import OutboxStore

__all__ = ["CommitTicket", "OutboxHooks"]

logger = logging.getLogger(__name__)

_INSERT_ATTRIBUTES = observe.db_attributes("postgresql", "INSERT", outbox_table.name)


@dataclass(slots=True)
class CommitTicket:
    """What one commit wrote to the outbox, handed from before to after COMMIT."""

    records: list[OutboxRecord] = field(default_factory=list)

    @property
    def txid(self) -> int | None:
        return self.records[0].txid if self.records else None


class OutboxHooks:
    """Writes the outbox before COMMIT and delivers it right after."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        events: EventBus,
        outbox: OutboxStore,
        settler: Settler,
        followers: Sequence[Follower],
        rehydrator: Rehydrator,
        *,
        timeout: float,
    ) -> None:
        """``timeout``: the after-commit delivery's deadline; past it the relay finishes."""
        self._timeout = timeout
        self.failures = FailureLog(
            logger, "after-commit delivery", then="the relay will deliver what is owed"
        )
        self._rehydrator = rehydrator
        self._dispatcher = dispatcher
        self._events = events
        self._outbox = outbox
        self._settler = settler
        self._followers = list(followers)
        self.captured: frozenset[str] = frozenset()
        """Tables the database captures (set at start): their rows come from the triggers."""

    async def before_commit(
        self, session: AsyncSession, changes: Sequence[Change], emitted: Sequence[DataEvent]
    ) -> CommitTicket:
        """Runs inside the transaction, after the last flush.

        The capture triggers have written a row per change of a captured table (ORM or
        not); the ORM's in-memory changes ride along with them, so the fast path needs no
        read back. Changes of tables without capture (event-only entities) and the
        emitted events are written here.
        """
        local = self._dispatcher.local_targets
        flushed = {(change.table, change.key): change for change in changes}
        records = [
            _with_whole(record, flushed.get((record.entity, record.key)))
            for record in await self._outbox.captured(session)
        ]
        owed = [
            (change, [t for t in self._dispatcher.targets_covering(change) if t not in local])
            for change in changes
            if change.table not in self.captured
        ]
        with observe.span(f"INSERT {outbox_table.name}", _INSERT_ATTRIBUTES) as current:
            records.extend(await self._outbox.insert(session, owed, emitted))
            ticket = CommitTicket(records)
            current.set_attribute("satellites.rows", len(ticket.records))
        if ticket.txid is not None:
            # Before COMMIT, or the NOTIFY could wake a follower first: this process's
            # fast path applies its own local changes (given back if that fails).
            for follower in self._followers:
                follower.claim(ticket.txid)
        return ticket

    async def commit_failed(self, ticket: CommitTicket) -> None:
        """COMMIT raised: whatever happened to the transaction, followers must see it."""
        if ticket.txid is not None:
            for follower in self._followers:
                follower.release(ticket.txid)

    async def after_commit(self, ticket: CommitTicket) -> None:
        txid = ticket.txid
        if txid is None:
            return
        failed_here: frozenset[str] = frozenset(self._dispatcher.local_targets)
        try:
            async with asyncio.timeout(self._timeout):
                delivery = await deliver(
                    ticket.records,
                    self._dispatcher,
                    self._events,
                    self._rehydrator,
                    local_targets=self._dispatcher.local_targets,
                )
            failed_here = delivery.local_failures
            self._settler.submit(delivery.settlements)
            self.failures.succeeded()
        except Exception as exc:  # TimeoutError included: the rows stay owed to the relay
            self.failures.failed(exc, fields=observe.log_fields(txid=txid))
        finally:
            # Also when cancelled half-way: a claim never outlives its commit's delivery.
            for follower in self._followers:
                if follower.backend.name in failed_here:
                    follower.release(txid)
                else:
                    follower.applied(txid)


def _with_whole(record: OutboxRecord, flushed: Change | None) -> OutboxRecord:
    """``record`` with the flushed change as its whole content, when that is what it holds.

    A delete needs no content; a create or update only if no statement after the flush
    changed the row again (the versions then differ, and delivery reads the row back).
    """
    operation = Operation(record.operation)
    if flushed is None or (
        operation is not Operation.DELETED and flushed.version != record.version
    ):
        return dataclasses.replace(record, attempts=1)
    whole = flushed
    if (
        flushed.operation is not operation
        or flushed.version != record.version
        or flushed.changed != record.changed
    ):
        whole = dataclasses.replace(
            flushed, operation=operation, version=record.version, changed=record.changed
        )
    return dataclasses.replace(record, attempts=1, whole=whole)
