"""The unit of work: one session, one transaction, projections and events after COMMIT.

    async with data.unit_of_work() as uow:
        articles = uow.repository(Articles)
        await articles.add(article)
        await uow.commit()          # explicit; leaving the block without it rolls back

A unit of work opened for a tenant (``data.unit_of_work(tenant="acme")``) confines its
``TenantScoped`` repositories to that tenant; at the start of each transaction it sets
``satellites.tenant`` (``SET LOCAL``) so the row-level security policies hold raw SQL on
its session to the same tenant. Before each flush it stamps new tenant-scoped entities and
refuses any of another tenant.

What ``commit()`` does, in order:
1. flush; the session's flush hooks have folded every change into the ChangeSet;
2. ``hooks.before_commit`` (the outbox rows go into the same transaction);
3. COMMIT — the only point of truth;
4. ``hooks.after_commit``: projections dispatched, then the DataEvents published.
The hooks are a ``CommitHooks`` (``satellites_repo.types``); the outbox implements them.
A rollback, an exception or leaving without commit discards the ChangeSet and the
emitted events: nothing is projected and nothing is published.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from satellites_repo import observe
from satellites_repo.errors import LifecycleError, TenantError
from satellites_repo.model import (
    BYPASS,
    TENANT_COLUMN,
    TENANT_SETTING,
    AllTenants,
    ChangeSet,
    Tenant,
    TenantScope,
    checked_tenant,
)
from satellites_repo.orm.translate import translating

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from satellites_repo.events import DataEvent
    from satellites_repo.model import EntitySpec, Registry
    from satellites_repo.orm.repository import Repository
    from satellites_repo.types import CommitHooks, Readers

__all__ = ["TrackedSession", "UnitOfWork", "UnitOfWorkContext"]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound="Repository[Any]")

_UOW_KEY = "satellites.unit_of_work"
_COMMIT_ATTRIBUTES = observe.db_attributes("postgresql", "COMMIT")


class TrackedSession(Session):
    """The sync session class behind every unit of work; its flushes feed the ChangeSet."""


@event.listens_for(TrackedSession, "after_flush")
def _fold_flush(session: Session, flush_context: UOWTransaction) -> None:
    uow = session.info.get(_UOW_KEY)
    if uow is not None:
        uow.flushed = True
        uow.changes.record_flush(session)


_SET_TENANT = text("SELECT set_config(:setting, :tenant, true)")
_NO_TENANT = ""
"""``satellites.tenant`` in a unit of work without a tenant: no tenant's rows pass the policy."""


@event.listens_for(TrackedSession, "after_begin")
def _set_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    uow = session.info.get(_UOW_KEY)
    if uow is not None and uow.setting is not None:
        connection.execute(_SET_TENANT, {"setting": TENANT_SETTING, "tenant": uow.setting})


@event.listens_for(TrackedSession, "before_flush")
def _check_tenants(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    uow = session.info.get(_UOW_KEY)
    if uow is not None:
        uow.check_tenants(session)


@event.listens_for(TrackedSession, "after_rollback")
def _forget_changes(session: Session) -> None:
    uow = session.info.get(_UOW_KEY)
    if uow is not None:
        uow.changes.clear()


@dataclass(frozen=True, slots=True)
class UnitOfWorkContext:
    """What a unit of work borrows from its started ``DataLayer``."""

    sessionmaker: async_sessionmaker[AsyncSession]
    registry: Registry
    readers: Readers
    hooks: CommitHooks[Any]


class _State(enum.Enum):
    NEW = "not entered"
    OPEN = "open"
    CLOSED = "closed"


class UnitOfWork:
    """A transaction over the repositories of one ``DataLayer``; use it as ``async with``."""

    entity_name = "unit of work"

    def __init__(self, context: UnitOfWorkContext, tenant: Tenant | None = None) -> None:
        self._context = context
        self._tenant = checked_tenant(tenant)
        self._session: AsyncSession | None = None
        self._state = _State.NEW
        self.changes = ChangeSet(context.registry)
        self.flushed = False
        self._emitted: list[DataEvent] = []
        self._repositories: dict[type[Any], Repository[Any]] = {}

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise LifecycleError("a unit of work can be entered only once")
        session = self._context.sessionmaker()
        session.sync_session.info[_UOW_KEY] = self
        self._session = session
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            if self._has_uncommitted_writes(session):
                await self.rollback()
            self._emitted = []
        finally:
            self._state = _State.CLOSED
            session.sync_session.info.pop(_UOW_KEY, None)
            await session.close()

    def _has_uncommitted_writes(self, session: AsyncSession) -> bool:
        """Writes to undo; a read-only block just closes, so loaded entities stay readable."""
        return self.flushed or bool(session.new or session.dirty or session.deleted)

    @property
    def session(self) -> AsyncSession:
        """The SQLAlchemy ``AsyncSession`` of this unit of work."""
        if self._session is None or self._state is not _State.OPEN:
            raise LifecycleError(
                f"unit of work is {self._state.value}: "
                "use it inside `async with data.unit_of_work()`"
            )
        return self._session

    @property
    def tenant(self) -> Tenant | None:
        """The tenant this unit of work serves, ``ALL_TENANTS``, or ``None`` (no tenant)."""
        return self._tenant

    @property
    def setting(self) -> str | None:
        """What ``satellites.tenant`` is set to for each transaction (``None``: left alone).

        Left alone only when no registered model is tenant-scoped, to save the round trip.
        """
        if isinstance(self._tenant, AllTenants):
            return BYPASS
        if self._tenant is not None:
            return self._tenant
        return _NO_TENANT if self._context.registry.tenant_scoped else None

    def scope(self, spec: EntitySpec) -> TenantScope | None:
        """How reads of ``spec``'s model are confined here (``None``: not tenant-scoped)."""
        if not spec.tenant_scoped:
            return None
        name = str(spec.model.__name__)
        if self._tenant is None:
            raise TenantError(
                f"{name} is TenantScoped: open the unit of work for a tenant, "
                "data.unit_of_work(tenant=...), or tenant=ALL_TENANTS for unscoped admin work"
            )
        return TenantScope(name, None if isinstance(self._tenant, AllTenants) else self._tenant)

    def check_tenants(self, session: Session) -> None:
        """Stamp new tenant-scoped entities; refuse changes to another tenant's (before flush)."""
        registry = self._context.registry
        for entity in (*session.new, *session.dirty, *session.deleted):
            spec = registry.spec_for(type(entity))
            scope = None if spec is None else self.scope(spec)
            if scope is None:
                continue
            if entity in session.new:
                scope.stamp(entity)
            elif not scope.owns(entity):
                raise TenantError(
                    f"{scope.entity}: cannot change or delete tenant "
                    f"{getattr(entity, 'tenant_id', None)!r}'s row from a unit of work of "
                    f"tenant {scope.tenant!r}"
                )
            elif inspect(entity).attrs[TENANT_COLUMN].history.has_changes():
                # Its cache key names the tenant: a moved row would stay cached as the old one's.
                raise TenantError(
                    f"{scope.entity}: a row's {TENANT_COLUMN} does not change; add a copy "
                    "for the new tenant and delete this row"
                )

    @property
    def readers(self) -> Readers:
        """The cache and rankers the repositories read through."""
        return self._context.readers

    def repository(self, repository: type[R]) -> R:
        """The instance of ``repository`` bound to this unit of work (one per class)."""
        existing = self._repositories.get(repository)
        if existing is None:
            spec = self._context.registry.spec_of_repository(repository)
            self.scope(spec)  # refuses a tenant-scoped repository without a tenant
            existing = repository(self, spec)
            self._repositories[repository] = existing
        return existing  # type: ignore[return-value]

    def touched(self, table: str, key: str) -> bool:
        """Whether this unit of work flushed a change to that row (uncommitted state)."""
        return self.changes.touches(table, key)

    def emit(self, event: DataEvent) -> None:
        """Queue a custom event; it is published after COMMIT, or dropped on rollback."""
        self.session  # noqa: B018 - refuses an emit outside the block
        self._emitted.append(event)

    async def flush(self) -> None:
        session = self.session
        try:
            with translating(self.entity_name):
                await session.flush()
        except BaseException:
            await self.rollback()
            raise

    async def commit(self) -> None:
        """Commit, then project and publish; a projection failure never fails the commit."""
        session = self.session
        with observe.commit_timer(), observe.committing():
            try:
                with translating(self.entity_name):
                    ticket = await self._commit(session)
            except BaseException:
                await self.rollback()
                raise
            self._reset()
            await self._context.hooks.after_commit(ticket)

    async def rollback(self) -> None:
        """Roll back; nothing of this transaction is projected or published."""
        self._reset()
        try:
            with translating(self.entity_name):
                await self.session.rollback()
        except Exception:
            # A dead connection cannot roll back, and needs not: the server already did.
            logger.warning("rollback failed; the connection is discarded", exc_info=True)

    def _reset(self) -> None:
        self._emitted = []
        self.changes.clear()
        self.flushed = False

    async def _commit(self, session: AsyncSession) -> Any:
        with observe.span("satellites.flush"):
            await session.flush()
        hooks = self._context.hooks
        ticket = await hooks.before_commit(session, list(self.changes), self._emitted)
        try:
            with observe.span("COMMIT", _COMMIT_ATTRIBUTES):
                await session.commit()
        except BaseException:
            await hooks.commit_failed(ticket)
            raise
        return ticket
