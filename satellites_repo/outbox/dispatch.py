"""After-commit fan-out: every backend at once, failures collected instead of raised.

A backend is sent only the changes it must see (``wants``): an update of columns none of
which its projection holds (a view counter, for the search index) leaves it untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo import observe
from satellites_repo.errors import ProjectionError, Rejection

if TYPE_CHECKING:
    from satellites_repo.model import Change, EntitySpec, Registry
    from satellites_repo.types import Backend, BackendName

__all__ = ["Dispatcher", "Failure", "wants"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """Changes one backend could not apply, and why.

    ``rejected``: the rows the backend refused one by one, (table, key) -> why; then
    ``changes`` holds only those, and the rest of the batch was applied.
    """

    target: BackendName
    changes: tuple[Change, ...]
    error: str
    rejected: Mapping[tuple[str, str], Rejection] = field(default_factory=dict)

    def reason(self, table: str, key: str) -> Rejection:
        """Why this row failed: its own rejection, or the whole batch's error (retryable)."""
        return self.rejected.get((table, key)) or Rejection(self.error, permanent=False)


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
        self,
        changes: Sequence[Change],
        targets: Sequence[BackendName],
        *,
        written: Mapping[tuple[str, str], float] | None = None,
    ) -> list[Failure]:
        """Apply ``changes`` to each backend named in ``targets`` that covers them.

        ``written``: when each (table, key) was written to the outbox, for the lag metric.
        """
        work: list[tuple[Backend, tuple[Change, ...]]] = []
        for backend in self._backends:
            if backend.name not in targets:
                continue
            covered = tuple(change for change in changes if self._covers(backend, change))
            if covered:
                work.append((backend, covered))
        outcomes = await asyncio.gather(
            *(self._applying(backend, batch, written or {}) for backend, batch in work),
            return_exceptions=True,
        )
        failures = []
        for (backend, batch), outcome in zip(work, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                continue
            if not isinstance(outcome, Exception):
                raise outcome
            failure = _failure(backend.name, batch, outcome)
            failures.append(failure)
            logger.warning(
                "%s failed for %d change(s): %s",
                backend.name,
                len(batch),
                failure.error,
                extra=_log_fields(batch),
            )
        return failures

    @staticmethod
    def _applying(
        backend: Backend, batch: tuple[Change, ...], written: Mapping[tuple[str, str], float]
    ) -> Awaitable[None]:
        """``backend.apply(batch)``, in its span and timed when OpenTelemetry is on."""
        tables = {change.table for change in batch}
        return observe.applying(
            backend.name,
            next(iter(tables)) if len(tables) == 1 else None,
            len(batch),
            backend.apply(batch),
            [at for c in batch if (at := written.get((c.table, c.key))) is not None],
        )

    def wanted(self, change: Change, targets: Sequence[BackendName]) -> bool:
        """Whether any backend named in ``targets`` must be sent ``change``."""
        return any(
            self._covers(backend, change) for backend in self._backends if backend.name in targets
        )

    def _covers(self, backend: Backend, change: Change) -> bool:
        return wants(backend, self._registry.spec_of_table(change.table), change)


def wants(backend: Backend, spec: EntitySpec | None, change: Change) -> bool:
    """Whether ``backend`` must be sent ``change``: it covers the repository, and the change
    is not an update of columns none of which its projection holds."""
    return spec is not None and backend.covers(spec) and change.affects(backend.columns_held(spec))


def _log_fields(batch: Sequence[Change]) -> dict[str, str | int]:
    """The table (and key, for one change) a failure log record is about."""
    tables = {change.table for change in batch}
    table = next(iter(tables)) if len(tables) == 1 else None
    key = batch[0].key if len(batch) == 1 else None
    return observe.log_fields(table=table, key=key)


def _failure(target: BackendName, batch: tuple[Change, ...], error: Exception) -> Failure:
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, ProjectionError) and error.rejected:
        refused = tuple(c for c in batch if (c.table, c.key) in error.rejected)
        return Failure(target, refused, message, error.rejected)
    return Failure(target, batch, message)
