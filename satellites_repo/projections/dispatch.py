"""After-commit fan-out: every projection at once, failures collected instead of raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from satellites_repo.projections.base import Projection, ProjectionFailure

if TYPE_CHECKING:
    from satellites_repo.orm.changeset import Change

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)


class Dispatcher:
    """Runs the projections of one commit concurrently, one batch per backend.

    A commit already happened when this runs: a failing backend is logged and reported
    back (for the outbox to retry), and never undoes or hides the commit.
    """

    def __init__(self, projections: Sequence[Projection]) -> None:
        self._projections = list(projections)

    @property
    def targets(self) -> list[str]:
        return [projection.name for projection in self._projections]

    def targets_covering(self, change: Change) -> list[str]:
        """The projections that have something to do for ``change``."""
        return [projection.name for projection in self._projections if projection.covers(change)]

    async def dispatch(
        self, changes: Sequence[Change], targets: Sequence[str] | None = None
    ) -> list[ProjectionFailure]:
        """Apply ``changes`` to every projection (or only to ``targets``)."""
        work: list[tuple[Projection, tuple[Change, ...]]] = []
        for projection in self._projections:
            if targets is not None and projection.name not in targets:
                continue
            covered = tuple(change for change in changes if projection.covers(change))
            if covered:
                work.append((projection, covered))
        outcomes = await asyncio.gather(
            *(projection.apply(batch) for projection, batch in work), return_exceptions=True
        )
        failures = []
        for (projection, batch), outcome in zip(work, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                failures.append(ProjectionFailure(projection.name, batch, _describe(outcome)))
                logger.warning(
                    "projection %s failed for %d change(s): %s",
                    projection.name,
                    len(batch),
                    _describe(outcome),
                )
        return failures


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
