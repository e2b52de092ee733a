"""What happens around COMMIT: the hooks a unit of work calls before and after it.

Before COMMIT nothing leaves Postgres. After COMMIT the projections are dispatched and
then the DataEvents are published, automatic ones (in the order entities were first
touched) before the ones given to ``uow.emit``. Nothing after COMMIT can make the commit
look failed: failures are logged and kept for a retry.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.events import DataEvent, EventBus
    from satellites_repo.orm.changeset import Change
    from satellites_repo.projections import Dispatcher, ProjectionFailure

__all__ = ["CommitPipeline"]

logger = logging.getLogger(__name__)


class CommitPipeline:
    """Dispatches committed changes to the projections and publishes their events."""

    def __init__(self, dispatcher: Dispatcher, events: EventBus, *, keep_failures: int = 1000):
        self._dispatcher = dispatcher
        self._events = events
        self._failures: deque[ProjectionFailure] = deque(maxlen=keep_failures)

    @property
    def failures(self) -> list[ProjectionFailure]:
        """The latest projection failures, oldest first."""
        return list(self._failures)

    async def before_commit(self, session: AsyncSession, changes: list[Change]) -> None:
        """Runs inside the transaction, after the last flush."""

    async def after_commit(self, changes: list[Change], emitted: list[DataEvent]) -> None:
        if changes:
            self._failures.extend(await self._dispatcher.dispatch(changes))
        await self.publish([change.event() for change in changes] + emitted)

    async def publish(self, events: Sequence[DataEvent]) -> None:
        for event in events:
            try:
                await self._events.publish(event)
            except Exception:
                logger.exception("publishing %s (event id %s) failed", event.type, event.id)
