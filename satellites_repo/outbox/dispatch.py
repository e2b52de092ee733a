"""After-commit fan-out: every backend at once, failures collected instead of raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from satellites_repo.model import Change, Registry
    from satellites_repo.types import Backend, BackendName

__all__ = ["Dispatcher", "Failure"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """Changes one backend could not apply, and why."""

    target: BackendName
    changes: tuple[Change, ...]
    error: str


class Dispatcher:
    """Applies changes to the registered backends concurrently, one batch per backend.

    A commit already happened when this runs: a failing backend is logged and reported
    back (for the outbox to retry), and never undoes or hides the commit.
    """

    def __init__(self, backends: Sequence[Backend], registry: Registry) -> None:
        self._backends = list(backends)
        self._registry = registry

    @property
    def backends(self) -> list[Backend]:
        return list(self._backends)

    @property
    def local_targets(self) -> tuple[BackendName, ...]:
        """Backends every process holds its own copy of (applied here, followed everywhere)."""
        return tuple(backend.name for backend in self._backends if not backend.shared)

    @property
    def shared_targets(self) -> tuple[BackendName, ...]:
        """Backends one server holds for every instance (applied once, owed in the outbox)."""
        return tuple(backend.name for backend in self._backends if backend.shared)

    def targets_covering(self, change: Change) -> list[BackendName]:
        """The backends that have something to do for ``change``."""
        spec = self._registry.spec_of_table(change.table)
        if spec is None:
            return []
        return [backend.name for backend in self._backends if backend.covers(spec)]

    async def dispatch(
        self, changes: Sequence[Change], targets: Sequence[BackendName]
    ) -> list[Failure]:
        """Apply ``changes`` to each backend named in ``targets`` that covers them."""
        work: list[tuple[Backend, tuple[Change, ...]]] = []
        for backend in self._backends:
            if backend.name not in targets:
                continue
            covered = tuple(change for change in changes if self._covers(backend, change))
            if covered:
                work.append((backend, covered))
        outcomes = await asyncio.gather(
            *(backend.apply(batch) for backend, batch in work), return_exceptions=True
        )
        failures = []
        for (backend, batch), outcome in zip(work, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                continue
            if not isinstance(outcome, Exception):
                raise outcome
            failure = Failure(backend.name, batch, f"{type(outcome).__name__}: {outcome}")
            failures.append(failure)
            logger.warning(
                "%s failed for %d change(s): %s", backend.name, len(batch), failure.error
            )
        return failures

    def _covers(self, backend: Backend, change: Change) -> bool:
        spec = self._registry.spec_of_table(change.table)
        return spec is not None and backend.covers(spec)
