"""What happens around COMMIT: the hooks a unit of work calls before and after it.

Before COMMIT, the changes and the emitted events are written to the outbox in the same
transaction. After COMMIT, the fast path applies them (projections concurrently, then the
events in order) and settles the outbox rows; whatever failed stays owed and the relay
delivers it later. Nothing after COMMIT can make the commit look failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo.outbox.delivery import deliver

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.events import DataEvent, EventBus
    from satellites_repo.orm.changeset import Change
    from satellites_repo.outbox.follower import VectorFollower
    from satellites_repo.outbox.records import OutboxRecord
    from satellites_repo.outbox.rehydrate import Rehydrator
    from satellites_repo.outbox.settler import Settler
    from satellites_repo.outbox.store import OutboxStore
    from satellites_repo.projections import Dispatcher

__all__ = ["CommitPipeline", "CommitTicket"]

logger = logging.getLogger(__name__)

LOCAL_TARGETS = ("faiss",)
"""Projections held in each process: applied by the fast path, followed by every instance."""


@dataclass(slots=True)
class CommitTicket:
    """What one commit wrote to the outbox, handed from before to after COMMIT."""

    records: list[OutboxRecord] = field(default_factory=list)


class CommitPipeline:
    """Writes the outbox before COMMIT and delivers it right after."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        events: EventBus,
        outbox: OutboxStore,
        settler: Settler,
        follower: VectorFollower,
        rehydrator: Rehydrator,
    ) -> None:
        self._rehydrator = rehydrator
        self._dispatcher = dispatcher
        self._events = events
        self._outbox = outbox
        self._settler = settler
        self._follower = follower

    async def before_commit(
        self, session: AsyncSession, changes: list[Change], emitted: list[DataEvent]
    ) -> CommitTicket:
        """Runs inside the transaction, after the last flush."""
        owed = [(change, self._shared_targets(change)) for change in changes]
        records = await self._outbox.insert(session, owed, emitted)
        if records:
            # Before COMMIT, or the NOTIFY could wake the follower first: this process's
            # fast path applies its own FAISS changes (given back if that fails).
            self._follower.claim(records[0].txid)
        return CommitTicket(records)

    async def commit_failed(self, ticket: CommitTicket) -> None:
        """COMMIT raised: whatever happened to the transaction, followers must see it."""
        if ticket.records:
            self._follower.release(ticket.records[0].txid)

    async def after_commit(self, ticket: CommitTicket) -> None:
        if not ticket.records:
            return
        txid = ticket.records[0].txid
        applied_here = False
        try:
            delivery = await deliver(
                ticket.records,
                self._dispatcher,
                self._events,
                self._rehydrator,
                local_targets=LOCAL_TARGETS,
            )
            applied_here = not delivery.local_failures
            self._settler.submit(delivery.settlements)
        except Exception:
            logger.exception("after-commit delivery failed; the relay will deliver it")
        finally:
            # Also when cancelled half-way: a claim never outlives its commit's delivery.
            if applied_here:
                self._follower.applied(txid)
            else:
                self._follower.release(txid)

    def _shared_targets(self, change: Change) -> list[str]:
        return [
            target
            for target in self._dispatcher.targets_covering(change)
            if target not in LOCAL_TARGETS
        ]
