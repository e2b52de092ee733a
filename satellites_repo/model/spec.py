"""The repositories a DataLayer knows, checked against their models once, at construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import NoInspectionAvailable

from satellites_repo.errors import ConfigurationError
from satellites_repo.model.change import Change, Operation
from satellites_repo.model.codec import RowCodec, unencodable_columns
from satellites_repo.model.fields import Row
from satellites_repo.model.policies import NO_SEARCH_INDEX, CachePolicy, SearchIndex, VectorField
from satellites_repo.model.related import RelatedJoin, resolve_related
from satellites_repo.model.tenancy import TENANT_COLUMN
from satellites_repo.model.vector import Vector

__all__ = ["EntitySpec", "Registry"]


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """Everything the write and read paths need to know about one repository's model."""

    repository: type[Any]
    """The ``Repository`` subclass (typed loosely: the ORM layer sits above this one)."""
    model: type[Any]
    codec: RowCodec
    cache: CachePolicy | None
    search: SearchIndex | None
    vectors: VectorField | None
    hidden: frozenset[str] = frozenset()
    """Vector columns: kept out of outbox payloads and events (see ``Change.hidden``)."""
    soft_delete: str | None = None
    """The ``SoftDelete`` column (``deleted_at``), if the model has one."""
    tenant_scoped: bool = False
    """``TenantScoped``: every read is confined to the unit of work's tenant."""
    related: tuple[RelatedJoin, ...] = ()
    """The relationships the search document embeds columns of (``SearchIndex.related``)."""

    def row(self, payload: Mapping[str, Any]) -> Row:
        """A change's payload as the row ``Computed`` and ``index_when`` functions receive."""
        return SimpleNamespace(**self.codec.typed(payload))

    def indexed(self, change: Change) -> bool:
        """Whether the committed row belongs in the index (and vectors): ``index_when``."""
        if change.operation is Operation.DELETED:
            return False
        when = self.search.index_when if self.search is not None else None
        return when is None or bool(when(self.row(change.payload)))

    @property
    def vector_columns(self) -> frozenset[str] | None:
        """The columns the repository's vectors are made of (``None``: possibly every one):
        the vector, its metadata and what ``index_when`` reads."""
        if self.vectors is None:
            return frozenset()
        inputs = self.search.condition_columns if self.search is not None else frozenset()
        if inputs is None:
            return None
        return frozenset((self.vectors.column, *self.vectors.metadata, *inputs))

    @property
    def table(self) -> str:
        return self.codec.table

    @property
    def name(self) -> str:
        """The repository's class name, as messages and the CLI's ``--repository`` say it."""
        return str(self.repository.__name__)

    @property
    def projected(self) -> bool:
        return any(target is not None for target in (self.cache, self.search, self.vectors))

    @property
    def vector_dimension(self) -> int | None:
        """The dimension of the ``VectorField``'s column (checked to be a ``Vector``)."""
        if self.vectors is None:
            return None
        column_type = self.model.__table__.c[self.vectors.column].type
        return int(column_type.dimension)


class Registry:
    """Model, table and repository lookups for the repositories given to ``DataLayer``."""

    def __init__(self, repositories: Sequence[type[Any]], dimension: int | None = None) -> None:
        """``dimension``: the vector index's, if configured; else the columns' (which agree)."""
        self._by_model: dict[type[Any], EntitySpec] = {}
        self._by_repository: dict[type[Any], EntitySpec] = {}
        self._by_table: dict[str, EntitySpec] = {}
        for repository in repositories:
            self._add(_spec_of(repository))
        self.vector_dimension = _agreed_dimension(self.specs, dimension)

    @property
    def tenant_scoped(self) -> bool:
        """Whether any registered model is ``TenantScoped``."""
        return any(spec.tenant_scoped for spec in self._by_repository.values())

    @property
    def specs(self) -> list[EntitySpec]:
        return list(self._by_repository.values())

    def spec_for(self, model: type[Any]) -> EntitySpec | None:
        return self._by_model.get(model)

    def spec_of_table(self, table: str) -> EntitySpec | None:
        return self._by_table.get(table)

    def spec_of_repository(self, repository: type[Any]) -> EntitySpec:
        spec = self._by_repository.get(repository)
        if spec is None:
            raise ConfigurationError(
                f"{repository.__name__} is not registered: pass it to "
                "DataLayer(config, repositories=[...])"
            )
        return spec

    def _add(self, spec: EntitySpec) -> None:
        name = spec.repository.__name__
        if spec.model in self._by_model:
            other = self._by_model[spec.model].repository.__name__
            raise ConfigurationError(f"{name} and {other} both manage {spec.model.__name__}")
        if spec.search is not None:
            for other_spec in self._by_model.values():
                if other_spec.search is not None and other_spec.search.index == spec.search.index:
                    raise ConfigurationError(
                        f"{name} and {other_spec.repository.__name__} share the search index "
                        f"{spec.search.index!r}"
                    )
        self._by_model[spec.model] = spec
        self._by_repository[spec.repository] = spec
        self._by_table[spec.table] = spec


def _agreed_dimension(specs: Sequence[EntitySpec], configured: int | None) -> int | None:
    """The one vector dimension of every ``VectorField`` (and the configured one, if any)."""
    dimension = configured
    source = "the FAISS index has dimension {} (FaissConfig.dimension)"
    for spec in specs:
        found = spec.vector_dimension
        if found is None:
            continue
        if dimension is not None and found != dimension:
            assert spec.vectors is not None
            raise ConfigurationError(
                f"{spec.name}: column {spec.vectors.column!r} is Vector({found}) but "
                + source.format(dimension)
            )
        if dimension is None:
            dimension = found
            source = f"{spec.name}'s vectors have dimension {{}}"
    return dimension


def _spec_of(repository: type[Any]) -> EntitySpec:
    name = repository.__name__
    model = getattr(repository, "model", None)
    if model is None:
        raise ConfigurationError(f"{name} must subclass Repository[Model] with a mapped model")
    try:
        mapper = inspect(model)
    except NoInspectionAvailable:
        raise ConfigurationError(f"{name}: {model!r} is not a mapped SQLAlchemy model") from None
    try:
        codec = RowCodec(mapper)
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None
    unencodable = unencodable_columns(mapper)
    if unencodable:
        raise ConfigurationError(
            f"{name}: {model.__name__} has columns whose values cannot be cached, indexed or "
            f"published as JSON: {', '.join(unencodable)}"
        )
    soft_delete: str | None = getattr(model, "soft_delete_column", None)
    search = _declared_search(repository)
    if search is not None and soft_delete is not None and soft_delete not in search.fields:
        # Soft-deleted rows stay in the index, filtered out at query time, so that
        # ``include_deleted=True`` can still find them.
        search = dataclasses.replace(search, fields={**search.fields, soft_delete: "date"})
    joins: tuple[RelatedJoin, ...] = ()
    if search is not None and search.related:
        try:
            typed, joins = resolve_related(name, mapper, search.embedded)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        search = dataclasses.replace(search, related=typed)
    tenant_scoped = bool(getattr(model, "tenant_scoped", False))
    if search is not None and tenant_scoped and TENANT_COLUMN not in search.fields:
        # Every query of a tenant-scoped index carries the tenant filter: index the column.
        search = dataclasses.replace(search, fields={**search.fields, TENANT_COLUMN: "keyword"})
    hidden = frozenset(
        attr.key for attr in mapper.column_attrs if isinstance(attr.columns[0].type, Vector)
    )
    spec = EntitySpec(
        repository,
        model,
        codec,
        repository.cache,
        search,
        repository.vectors,
        hidden,
        soft_delete,
        tenant_scoped,
        joins,
    )
    if spec.projected and mapper.version_id_col is None:
        raise ConfigurationError(
            f"{name}: {model.__name__} must be Versioned to be projected (the version orders "
            "every change in Redis, Elasticsearch and FAISS)"
        )
    _check_columns(spec)
    return spec


def _declared_search(repository: type[Any]) -> SearchIndex | None:
    """The ``search`` declaration itself (class attribute lookup would run its descriptor)."""
    for klass in repository.__mro__:
        declared = klass.__dict__.get("search")
        if isinstance(declared, SearchIndex):
            return None if declared is NO_SEARCH_INDEX else declared
    return None


def _check_columns(spec: EntitySpec) -> None:
    name = spec.repository.__name__
    columns = set(spec.codec.columns)
    if spec.search is not None:
        unknown = sorted(set(spec.search.fields) - columns)
        if unknown:
            raise ConfigurationError(
                f"{name}: SearchIndex {spec.search.index!r} names unknown columns {unknown}"
            )
        for field_name, computed in spec.search.computed.items():
            unknown = sorted(set(computed.depends_on) - columns)
            if unknown:
                raise ConfigurationError(
                    f"{name}: computed field {field_name!r} depends on unknown columns {unknown}"
                )
        unknown = sorted((spec.search.condition_columns or frozenset()) - columns)
        if unknown:
            raise ConfigurationError(f"{name}: index_when depends on unknown columns {unknown}")
    field = spec.vectors
    if field is None:
        return
    if field.column not in columns:
        raise ConfigurationError(f"{name}: VectorField column {field.column!r} does not exist")
    column_type = spec.model.__table__.c[field.column].type
    if not isinstance(column_type, Vector):
        raise ConfigurationError(f"{name}: column {field.column!r} is not a Vector column")
    unknown = sorted(set(field.metadata) - columns)
    if unknown:
        raise ConfigurationError(f"{name}: VectorField metadata names unknown columns {unknown}")
    if spec.tenant_scoped and TENANT_COLUMN not in field.metadata:
        raise ConfigurationError(
            f"{name}: {spec.model.__name__} is TenantScoped, so its VectorField must carry the "
            f"tenant: add {TENANT_COLUMN!r} to metadata=(...) (every similar() filters on it)"
        )
