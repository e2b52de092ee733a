"""The protocol every projection implements, and what a failed one reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from satellites_repo.orm.changeset import Change

__all__ = ["Projection", "ProjectionFailure", "Target"]

Target = str
"""A projection's name: ``"redis"``, ``"elasticsearch"`` or ``"faiss"``."""


class Projection(Protocol):
    """Applies committed changes to one backend, idempotently and order-safely.

    ``apply`` may be called again with the same changes (a retry, a replay from the
    outbox, another relay): a change whose version is not newer than what the backend
    holds is skipped, so replays never move a projection backwards.
    """

    @property
    def name(self) -> Target: ...

    def covers(self, change: Change) -> bool:
        """Whether this projection has anything to do for ``change``."""
        ...

    async def apply(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in one batch; raise ``ProjectionError`` if any was not applied."""
        ...


@dataclass(frozen=True, slots=True)
class ProjectionFailure:
    """Changes one projection could not apply after a commit, and why."""

    target: Target
    changes: tuple[Change, ...]
    error: str
