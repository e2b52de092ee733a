"""``Repository[T]``: domain access to one model inside a unit of work.

A repository never commits: the unit of work does, and the projections follow the commit.
Reads go through the session's identity map first, then the cache (if the repository
declares a ``CachePolicy``), then Postgres; rows read from Postgres are cached again,
guarded by their version. Entities that come from the cache are attached to the session,
so they can be changed and committed like any loaded entity.

On a ``TenantScoped`` model every read is confined to the unit of work's tenant: a
where-clause on Postgres, cache keys that name the tenant, the tenant filter on every
Elasticsearch and FAISS query, and a check of each entity found in the identity map or the
cache (another tenant's row is ``None``, as if it did not exist). Writes are stamped with
the tenant. ``ALL_TENANTS`` reads by key go to Postgres, not the cache.

Every public method runs inside ``translated``: driver errors leave as library errors. A
cache that fails or is slow is no error: the read falls back to Postgres (the cache
backend logs it).
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import InstrumentedAttribute
from typing_extensions import Unpack

from satellites_repo import observe
from satellites_repo.errors import NotFoundError, UnavailableError
from satellites_repo.model import (
    TENANT_COLUMN,
    CachePolicy,
    HybridHit,
    Page,
    SearchIndex,
    Suggestion,
    SuggestOptions,
    TextSearch,
    VectorField,
    VectorHit,
)
from satellites_repo.model.policies import NO_SEARCH_INDEX
from satellites_repo.orm.pagination import keyset_page
from satellites_repo.orm.search import BoundSearch, hybrid_search, similar_search
from satellites_repo.orm.translate import translated
from satellites_repo.vectors import checked_vector

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.model import EntitySpec
    from satellites_repo.orm.unit_of_work import UnitOfWork
    from satellites_repo.types import CacheReader

__all__ = ["Repository"]

T = TypeVar("T")


class Repository(Generic[T]):
    """Subclass as ``class Articles(Repository[Article])`` and declare projections.

    Optional class attributes: ``cache = CachePolicy(...)``, ``search = SearchIndex(...)``,
    ``vectors = VectorField(...)``. Instances come from ``uow.repository(Articles)``.
    """

    model: ClassVar[type[Any]]
    cache: ClassVar[CachePolicy | None] = None
    search: SearchIndex = NO_SEARCH_INDEX
    vectors: ClassVar[VectorField | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Repository:
                (model,) = get_args(base)
                if isinstance(model, type):
                    cls.model = model

    def __init__(self, uow: UnitOfWork, spec: EntitySpec) -> None:
        self._uow = uow
        self._spec = spec
        self._scope = uow.scope(spec)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._spec.model.__name__}>"

    @property
    def entity_name(self) -> str:
        """The model's name, as error messages say it."""
        return str(self._spec.model.__name__)

    @property
    def session(self) -> AsyncSession:
        return self._uow.session

    @property
    def spec(self) -> EntitySpec:
        return self._spec

    @property
    def unit_of_work(self) -> UnitOfWork:
        return self._uow

    @property
    def tenant(self) -> str | None:
        """The one tenant this repository's reads are confined to (``None``: not confined)."""
        return None if self._scope is None else self._scope.tenant

    def scoped_filters(self, filters: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """``filters`` with the tenant, for a projection query (refuses another tenant's)."""
        return filters if self._scope is None else self._scope.filters(filters)

    def bind_search(self, index: SearchIndex) -> TextSearch[T]:
        """``self.search``: the declared ``SearchIndex`` bound to this repository."""
        return BoundSearch(self, index)

    # -- writes ---------------------------------------------------------------------------

    @translated
    async def add(self, entity: T) -> T:
        """Stage ``entity`` for INSERT at the next flush or commit; returns it."""
        self._check(entity)
        self._stamp(entity)
        self.session.add(entity)
        return entity

    @translated
    async def add_many(self, entities: Iterable[T]) -> list[T]:
        """Stage several entities; they are inserted in one batched statement."""
        staged = list(entities)
        for entity in staged:
            self._check(entity)
            self._stamp(entity)
        self.session.add_all(staged)
        return staged

    @translated
    async def delete(self, entity_or_key: T | object) -> None:
        """Stage a DELETE of an entity, or of the row with that primary key.

        On a ``SoftDelete`` model it sets ``deleted_at`` instead (``purge`` removes the row).
        """
        column = self._spec.soft_delete
        if column is None:
            await self.session.delete(await self._entity(entity_or_key))
            return
        entity = await self._entity(entity_or_key)
        if getattr(entity, column) is None:
            setattr(entity, column, dt.datetime.now(dt.UTC))

    @translated
    async def purge(self, entity_or_key: T | object) -> None:
        """Stage a DELETE of the row itself, soft-deleted or not."""
        await self.session.delete(await self._entity(entity_or_key))

    @translated
    async def restore(self, entity_or_key: T | object) -> T:
        """Undelete a soft-deleted row (clear ``deleted_at``); returns the entity."""
        column = self._soft_delete_column("restore()")
        entity = await self._entity(entity_or_key)
        setattr(entity, column, None)
        return entity

    async def _entity(self, entity_or_key: T | object) -> T:
        if isinstance(entity_or_key, self._spec.model):
            return entity_or_key  # type: ignore[no-any-return]
        entity = await self.get(entity_or_key, include_deleted=True)
        if entity is None:
            raise NotFoundError(self._spec.model.__name__, entity_or_key)
        return entity

    def _soft_delete_column(self, method: str) -> str:
        column = self._spec.soft_delete
        if column is None:
            raise TypeError(
                f"{type(self).__name__}.{method} needs a SoftDelete model: "
                f"{self.entity_name} has no deleted_at column"
            )
        return column

    def _stamp(self, entity: object) -> None:
        if self._scope is not None:
            self._scope.stamp(entity)

    def _live(self, include_deleted: bool) -> list[ColumnElement[bool]]:
        """The where-clauses of every query: the tenant, and soft-deleted rows left out
        (unless asked for them)."""
        clauses = self._tenant_clause()
        column = self._spec.soft_delete
        if column is None or include_deleted:
            return clauses
        return [*clauses, getattr(self._spec.model, column).is_(None)]

    def _tenant_clause(self) -> list[ColumnElement[bool]]:
        if self._scope is None or self._scope.tenant is None:
            return []
        return [getattr(self._spec.model, TENANT_COLUMN) == self._scope.tenant]

    # -- reads by key ---------------------------------------------------------------------

    @translated
    async def get(self, key: object, *, include_deleted: bool = False) -> T | None:
        """The entity with primary key ``key``, or ``None`` (also when soft-deleted)."""
        with observe.read_span("get", self._spec.table):
            found = await self._read([key], include_deleted)
        return found[0] if found else None

    @translated
    async def get_many(self, keys: Sequence[object], *, include_deleted: bool = False) -> list[T]:
        """The entities for ``keys`` in the order asked, missing (or soft-deleted) ones left out.

        Costs at most one MGET and one SELECT, whatever the number of keys.
        """
        with observe.read_span("get_many", self._spec.table):
            return await self._read(keys, include_deleted)

    async def _read(self, keys: Sequence[object], include_deleted: bool) -> list[T]:
        codec = self._spec.codec
        typed = [codec.parse_key(key) for key in keys]
        found: dict[Any, T] = {}
        wanted = [key for key in dict.fromkeys(typed) if not self._from_identity_map(key, found)]
        cache = self._cache()
        if cache is not None and wanted:
            wanted = await self._from_cache(cache, wanted, found)
        if wanted:
            await self._from_postgres(cache, wanted, found)
        column = None if include_deleted else self._spec.soft_delete
        return [
            found[key]
            for key in typed
            if key in found and (column is None or getattr(found[key], column) is None)
        ]

    def _cache(self) -> CacheReader | None:
        """The cache, but not for ``ALL_TENANTS`` reads of a tenant-scoped model: its keys
        name the tenant, which such a read learns only from Postgres (admin work reads it)."""
        if self._scope is not None and self._scope.tenant is None:
            return None
        return self._uow.readers.cache(self._spec)

    def _from_identity_map(self, key: Any, found: dict[Any, T]) -> bool:
        identity = self._spec.codec.mapper.identity_key_from_primary_key((key,))
        entity = self.session.sync_session.identity_map.get(identity)
        if entity is None or not self._owns(entity):
            return False
        found[key] = entity
        return True

    async def _from_cache(
        self, cache: CacheReader, keys: list[Any], found: dict[Any, T]
    ) -> list[Any]:
        table, codec = self._spec.table, self._spec.codec
        texts = {key: str(key) for key in keys}
        touched = self._uow.touched
        try:
            bodies = await cache.cached(
                self._spec,
                [text for text in texts.values() if not touched(table, text)],
                self.tenant,
            )
        except UnavailableError:
            return keys
        if bodies:
            attach = self.session.add
            for key, text in texts.items():
                body = bodies.get(text)
                if body is None:
                    continue
                entity = codec.detached(codec.loads(body))
                if self._owns(entity):  # defence in depth: the keys name the tenant
                    attach(entity)
                    found[key] = entity
        missed = [key for key in keys if key not in found]
        observe.cache_outcome(table, len(keys) - len(missed), len(missed))
        return missed

    def _owns(self, entity: object) -> bool:
        return self._scope is None or self._scope.owns(entity)

    async def _from_postgres(
        self, cache: CacheReader | None, keys: list[Any], found: dict[Any, T]
    ) -> None:
        codec = self._spec.codec
        tenant = None if self._scope is None else self._scope.tenant
        statement = _by_keys(self._spec.model, codec.primary_key, scoped=tenant is not None)
        read_at = time.monotonic()
        loaded = list(await self.session.scalars(statement, {"keys": keys, "tenant": tenant}))
        for entity in loaded:
            found[codec.key_of(entity)] = entity
        if cache is not None and loaded:
            await self._fill_cache(cache, loaded, read_at)

    async def _fill_cache(self, cache: CacheReader, loaded: list[T], read_at: float) -> None:
        codec, table = self._spec.codec, self._spec.table
        rows = [
            (str(codec.key_of(entity)), int(entity.version), codec.dumps(entity))  # type: ignore[attr-defined]
            for entity in loaded
            if not self._uow.touched(table, str(codec.key_of(entity)))
            and entity not in self.session.dirty
        ]
        with contextlib.suppress(UnavailableError):  # logged by the cache; the next read fills
            await cache.fill(self._spec, rows, read_at, self.tenant)

    # -- queries --------------------------------------------------------------------------

    @translated
    async def list(
        self,
        *where: ColumnElement[bool],
        order_by: Sequence[Any] | Any = (),
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
    ) -> builtins.list[T]:
        """Entities matching SQLAlchemy where-clauses, straight from Postgres."""
        statement = select(self._spec.model).where(*where, *self._live(include_deleted))
        orderings = order_by if isinstance(order_by, Sequence) else (order_by,)
        statement = statement.order_by(*orderings).limit(limit).offset(offset)
        return builtins.list(await self.session.scalars(statement))

    @translated
    async def count(self, *where: ColumnElement[bool], include_deleted: bool = False) -> int:
        statement = select(func.count()).select_from(self._spec.model)
        statement = statement.where(*where, *self._live(include_deleted))
        return int(await self.session.scalar(statement) or 0)

    @translated
    async def page(
        self,
        *where: ColumnElement[bool],
        order_by: InstrumentedAttribute[Any] | None = None,
        descending: bool = False,
        limit: int = 50,
        cursor: str | None = None,
        include_deleted: bool = False,
    ) -> Page[T]:
        """One page in keyset order (``order_by`` then primary key) and the next cursor.

        Keyset pagination stays fast and stable on large tables, unlike deep offsets.
        """
        return await keyset_page(
            self.session,
            self._spec,
            [*where, *self._live(include_deleted)],
            order_by=order_by,
            descending=descending,
            limit=limit,
            cursor=cursor,
            bound_to=self.tenant,
        )

    @translated
    async def similar(
        self,
        vector_or_entity: Sequence[float] | T,
        *,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> builtins.list[VectorHit[T]]:
        """The ``k`` nearest entities by cosine similarity, hydrated in rank order.

        Given an entity, its own vector is used and the entity itself is left out.
        """
        with observe.read_span("similar", self._spec.table):
            return await similar_search(
                self, vector_or_entity, k=k, filters=filters, include_deleted=include_deleted
            )

    @translated
    async def hybrid(
        self,
        text: str,
        vector: Sequence[float],
        *,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> builtins.list[HybridHit[T]]:
        """Full-text and vector results fused by reciprocal rank (k=60)."""
        with observe.read_span("hybrid", self._spec.table):
            return await hybrid_search(
                self, text, vector, k=k, filters=filters, include_deleted=include_deleted
            )

    @translated
    async def suggest(
        self, prefix: str, *, field: str, **options: Unpack[SuggestOptions]
    ) -> builtins.list[Suggestion]:
        """Autocomplete on a text field: (key, text) of rows with words starting as typed.

        ``limit`` (default 5), ``filters`` (the tenant, as in search), ``include_deleted``.
        Declare the field ``Text(prefixes=True)`` to make it fast.
        """
        return await self.search.suggest(prefix, field=field, **options)

    def _check(self, entity: object) -> None:
        if not isinstance(entity, self._spec.model):
            raise TypeError(
                f"{type(self).__name__} stores {self._spec.model.__name__}, "
                f"not {type(entity).__name__}"
            )
        field, dimension = self._spec.vectors, self._spec.vector_dimension
        if field is None or dimension is None:
            return
        value = getattr(entity, field.column)
        if value is None:
            return
        try:
            checked_vector(value, dimension)  # converted (and checked again) when bound
        except ValueError as exc:
            raise ValueError(f"{self._spec.model.__name__}.{field.column}: {exc}") from None


_BY_KEYS: dict[tuple[type[Any], bool], Select[Any]] = {}


def _by_keys(model: type[Any], key: str, *, scoped: bool) -> Select[Any]:
    """The SELECT of a read by keys, built once per model: the keys (and the tenant) are
    bound per call, so a read neither builds nor coerces a statement."""
    statement = _BY_KEYS.get((model, scoped))
    if statement is None:
        column = getattr(model, key)
        statement = select(model).where(column.in_(bindparam("keys", expanding=True)))
        if scoped:
            statement = statement.where(getattr(model, TENANT_COLUMN) == bindparam("tenant"))
        _BY_KEYS[(model, scoped)] = statement
    return statement
