"""Operations on a running system: rebuild projections, find and mend drift, the outbox.

``DataLayer.operations`` is an ``Operations``; the CLI is a thin shell around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from satellites_repo import observe
from satellites_repo.model import checked_tenant
from satellites_repo.ops.reindex import ReindexReport, count_rows, rebuild
from satellites_repo.ops.tenants import PURGE_BATCH, export_tenant, purge_tenant
from satellites_repo.ops.verify import KINDS, Drift, repair, verify
from satellites_repo.orm.translate import translated

if TYPE_CHECKING:
    from satellites_repo.bootstrap import Runtime
    from satellites_repo.model import EntitySpec
    from satellites_repo.outbox import OutboxStore, Relay
    from satellites_repo.outbox.monitor import Throughput
    from satellites_repo.subscriptions import DeliveryRegistry
    from satellites_repo.types import Backend, Progress

__all__ = ["KINDS", "Drift", "Operations", "ReindexReport"]


class Operations:
    """Reindex, verify, repair and the outbox of one started ``DataLayer``.

    Every method, and the outbox, relay and subscriptions it hands out, raises
    ``UnavailableError`` naming Postgres when the database cannot be reached (the one
    translation, ``orm.translate``), never the driver's error."""

    def __init__(self, runtime: Runtime) -> None:
        self.entity_name = "operations"
        self._runtime = runtime

    @property
    def backends(self) -> list[Backend]:
        return list(self._runtime.backends)

    def backend(self, name: str) -> Backend:
        """The registered backend called ``name`` (``redis``, ``elasticsearch``, ``faiss``)."""
        for backend in self._runtime.backends:
            if backend.name == name:
                return backend
        known = ", ".join(backend.name for backend in self._runtime.backends)
        raise ValueError(f"no backend {name!r}; registered: {known}")

    @property
    def specs(self) -> list[EntitySpec]:
        """The projected repositories."""
        return [spec for spec in self._runtime.registry.specs if spec.projected]

    def spec(self, repository: type[Any] | str) -> EntitySpec:
        """A registered repository, by class or class name."""
        for spec in self._runtime.registry.specs:
            if repository in (spec.repository, spec.name):
                return spec
        known = ", ".join(spec.name for spec in self.specs)
        raise ValueError(f"no projected repository {repository!r}; known: {known}")

    def targets(self, repository: type[Any] | str) -> list[Backend]:
        """The backends that project ``repository``."""
        spec = self.spec(repository)
        return [backend for backend in self._runtime.backends if backend.covers(spec)]

    @property
    def outbox(self) -> OutboxStore:
        """The transactional outbox: status, retries, purge."""
        return self._runtime.outbox

    @property
    def relay(self) -> Relay:
        """The relay that delivers what the fast path could not (also run in the background)."""
        return self._runtime.relay

    @translated
    async def backlog(self) -> list[observe.TargetBacklog]:
        """Rows owed, oldest owed age and dead letters per target; also what the gauges report."""
        backlog = await self._runtime.backlog()
        observe.publish_backlog(backlog)
        return backlog

    @translated
    async def throughput(self, window: float = 60.0) -> Throughput:
        """Commits written in the last ``window`` seconds and how late their rows settled."""
        return await self._runtime.monitor.throughput(window)

    @property
    def subscriptions(self) -> DeliveryRegistry:
        """Durable subscribers of the in-process bus: status, dead letters, purge."""
        return self._runtime.deliveries

    @translated
    async def deliver_durable(self) -> int:
        """Run this process's durable subscribers until nothing is due now (tests)."""
        durable = self._runtime.durable
        return 0 if durable is None else await durable.drain()

    @translated
    async def settled(self) -> None:
        """Wait until the outbox marks of every commit so far are written (tests, shutdown)."""
        await self._runtime.settler.settled()

    @translated
    async def follow(self) -> None:
        """Bring this process's local backends (FAISS) up to the outbox now."""
        for follower in self._runtime.followers:
            await follower.follow_once()

    @translated
    async def count(self, repository: type[Any] | str) -> int:
        return await count_rows(self._runtime, self.spec(repository))

    @translated
    async def reindex(
        self,
        repository: type[Any] | str,
        targets: Sequence[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[ReindexReport]:
        """Rebuild the repository's projections (all, or the ``targets`` named) from Postgres."""
        spec = self.spec(repository)
        chosen = self._chosen(spec, targets)
        report = progress or (lambda done: None)
        return [await rebuild(self._runtime, spec, backend, report) for backend in chosen]

    @translated
    async def verify(
        self, repository: type[Any] | str, *, sample: int | None = None
    ) -> list[Drift]:
        """Compare Postgres with each projection of ``repository``, on versions and content:
        every row, or ``sample`` rows picked at random (and as many entries of each backend,
        for extras)."""
        return await verify(self._runtime, self.spec(repository), sample)

    @translated
    async def repair(self, repository: type[Any] | str, drifts: Sequence[Drift]) -> int:
        return await repair(self._runtime, self.spec(repository), drifts)

    @translated
    async def purge_tenant(self, tenant: str, *, batch: int = PURGE_BATCH) -> dict[str, int]:
        """Delete one tenant's rows of every tenant-scoped repository, and (through the
        outbox) every projection of them; resumable. Rows deleted per repository."""
        checked = _one_tenant(tenant)
        return await purge_tenant(self._runtime.unit_of_work, self.specs, checked, batch=batch)

    def export_tenant(self, tenant: str) -> AsyncIterator[bytes]:
        """One tenant's rows of every tenant-scoped repository, as JSON lines."""
        return export_tenant(self._runtime.unit_of_work, self.specs, _one_tenant(tenant))

    def _chosen(self, spec: EntitySpec, targets: Sequence[str] | None) -> list[Backend]:
        covering = [backend for backend in self._runtime.backends if backend.covers(spec)]
        if targets is None:
            return covering
        chosen = [self.backend(name) for name in targets]
        for backend in chosen:
            if backend not in covering:
                raise ValueError(f"{spec.name} is not projected into {backend.name}")
        return chosen


def _one_tenant(tenant: str) -> str:
    checked = checked_tenant(tenant)
    if not isinstance(checked, str):
        raise ValueError(f"a tenant's lifecycle needs one tenant's name, got {tenant!r}")
    return checked
