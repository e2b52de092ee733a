"""What a repository projects, declared as class attributes.

    class Articles(Repository[Article]):
        cache = CachePolicy(ttl=300)
        search = SearchIndex("articles", fields={"title": "text", "tenant_id": "keyword"})
        vectors = VectorField("embedding", namespace="articles", metadata=("tenant_id",))

Each declaration is checked against the model when the ``DataLayer`` is built, so a typo
in a field name fails at start, not at the first commit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, get_args, overload

from satellites_repo.model.fields import (
    Computed,
    Condition,
    FieldDeclaration,
    FieldType,
    Row,
    field_mapping,
)
from satellites_repo.model.related import Related, RelatedDeclaration, as_related
from satellites_repo.model.results import TextSearch
from satellites_repo.vectors import check_namespace

__all__ = [
    "KEY_FIELD",
    "ROW_VERSION_FIELD",
    "CachePolicy",
    "DenseVector",
    "FieldType",
    "SearchIndex",
    "SearchOwner",
    "Similarity",
    "VectorEngine",
    "VectorField",
]

T = TypeVar("T")


class SearchOwner(Protocol[T]):
    """What a ``SearchIndex`` is declared on: a repository, which binds it to itself."""

    def bind_search(self, index: SearchIndex) -> TextSearch[T]: ...


VectorEngine = Literal["faiss", "elasticsearch"]
"""Where a ``VectorField``'s vectors are indexed: this process (FAISS) or the search cluster."""

Similarity = Literal["cosine", "dot_product", "l2_norm", "max_inner_product"]
_ENGINES = frozenset(get_args(VectorEngine))
_SIMILARITIES = frozenset(get_args(Similarity))
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")
_TEXT_TYPES = ("text", "search_as_you_type")

KEY_FIELD = "@key"
"""The document field holding the primary key as text: the sort tiebreaker of every query
(``_id`` cannot be sorted on), so cursor paging is stable. ``@`` keeps it clear of columns."""

ROW_VERSION_FIELD = "@version"
"""In a document with related fields, its row's own version (the document's version is
taken when it is built): what ``verify`` compares with Postgres."""


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Read-through and write-through Redis caching of whole rows.

    ``ttl``: seconds a cached row lives. ``tombstone_ttl``: seconds a deleted row's
    tombstone blocks slow readers from caching the row again.
    """

    ttl: int = 300
    tombstone_ttl: int = 60

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.tombstone_ttl <= 0:
            raise ValueError("CachePolicy ttl and tombstone_ttl must be positive seconds")


@dataclass(frozen=True, slots=True)
class DenseVector:
    """A ``dense_vector`` field of a search document (the Elasticsearch vector engine)."""

    column: str
    dims: int
    similarity: Similarity = "cosine"
    index_options: Mapping[str, Any] | None = None

    def mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {
            "type": "dense_vector",
            "dims": self.dims,
            "index": True,
            "similarity": self.similarity,
        }
        if self.index_options is not None:
            mapping["index_options"] = dict(self.index_options)
        return mapping


@dataclass(frozen=True)
class SearchIndex:
    """An Elasticsearch index over some of the model's columns.

    ``fields`` maps column names to Elasticsearch field types (``"text"``, ``"keyword"``...),
    to ``Text(analyzer=..., prefixes=...)``, or to ``(type, {mapping options})``. Text fields
    are searched and highlighted; the others can be filtered, sorted and faceted on.
    ``computed`` adds fields computed from the row (``Computed``). ``related`` embeds
    columns of rows reached through the model's relationships (``customer.name``; see
    ``model.related``). ``index_when`` is a
    predicate on the committed row: a row for which it is false is kept out of the index
    (and out of the repository's vectors), and removed when it stops matching; a plain
    function may read any column, a ``Condition`` names the ones it reads. The index is
    reached through an alias named ``index`` (plus the configured prefix), so a reindex can
    swap the index behind it without downtime.

    On a repository instance, ``repo.search(...)`` runs a query against this index.
    """

    index: str
    fields: Mapping[str, FieldDeclaration]
    settings: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Computed] = field(default_factory=dict)
    index_when: Callable[[Row], bool] | None = None
    related: Mapping[str, RelatedDeclaration] = field(default_factory=dict)
    vector: DenseVector | None = None
    """Set by the Elasticsearch backend when the repository's vectors live in this index."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.index):
            raise ValueError(
                f"SearchIndex name {self.index!r} must be lowercase letters, digits, '_', '-', '.'"
            )
        if not self.fields and self.vector is None:
            raise ValueError(f"SearchIndex {self.index!r} needs at least one field")
        both = sorted(set(self.fields) & set(self.computed))
        if both:
            raise ValueError(f"SearchIndex {self.index!r}: {both} are both columns and computed")
        try:
            related = {name: as_related(name, declared) for name, declared in self.related.items()}
        except ValueError as exc:
            raise ValueError(f"SearchIndex {self.index!r}: {exc}") from None
        object.__setattr__(self, "related", related)
        clash = sorted(set(related) & {*self.fields, *self.computed})
        if clash:
            raise ValueError(f"SearchIndex {self.index!r}: {clash} are both columns and related")
        if self.index_when is not None and not callable(self.index_when):
            raise ValueError(
                f"SearchIndex {self.index!r}: index_when must be a function of the row"
            )
        try:
            self.properties()
        except ValueError as exc:
            raise ValueError(f"SearchIndex {self.index!r}: {exc}") from None

    @property
    def embedded(self) -> dict[str, Related]:
        """The ``related`` declarations (each a ``Related``)."""
        return {name: as_related(name, declared) for name, declared in self.related.items()}

    @property
    def columns(self) -> frozenset[str] | None:
        """The columns a document is made of (``None``: possibly every one): an update of
        none of them leaves the document as it was, so it is not sent."""
        inputs = self.condition_columns
        if inputs is None or self.related:  # related fields: the foreign keys count too
            return None
        computed = (column for spec in self.computed.values() for column in spec.depends_on)
        vector = () if self.vector is None else (self.vector.column,)
        return frozenset((*self.fields, *computed, *vector, *inputs))

    @property
    def condition_columns(self) -> frozenset[str] | None:
        """What ``index_when`` reads: nothing without one, ``None`` (any column) for a plain
        function, a ``Condition``'s ``depends_on``."""
        if self.index_when is None:
            return frozenset()
        if isinstance(self.index_when, Condition):
            return frozenset(self.index_when.depends_on)
        return None

    def properties(self) -> dict[str, dict[str, Any]]:
        """Each document field's mapping: the declared columns, the computed ones, then the
        related ones (``customer.name``; those whose type is the column's once resolved)."""
        properties = {name: field_mapping(name, declared) for name, declared in self.fields.items()}
        properties.update((name, spec.mapping(name)) for name, spec in self.computed.items())
        for name, related in self.embedded.items():
            for column, declared in related.columns.items():
                if declared is not None:
                    dotted = f"{name}.{column}"
                    properties[dotted] = field_mapping(dotted, declared)
        return properties

    @property
    def kinds(self) -> dict[str, str]:
        """Each document field's Elasticsearch type (columns, computed and related fields)."""
        return dict(self._kinds)

    @functools.cached_property
    def _kinds(self) -> dict[str, str]:
        # Once per declaration: every document built reads it.
        return {name: mapping["type"] for name, mapping in self.properties().items()}

    @property
    def text_fields(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind in _TEXT_TYPES]

    @property
    def filter_fields(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind not in _TEXT_TYPES]

    def mappings(self) -> dict[str, Any]:
        """The index mapping; a related field is a property of an object named after its
        relationship (``customer: {properties: {name: ...}}``), as Elasticsearch keeps it."""
        properties: dict[str, Any] = {KEY_FIELD: {"type": "keyword"}}
        if self.related:
            properties[ROW_VERSION_FIELD] = {"type": "long"}
        for name, mapping in self.properties().items():
            head, dot, tail = name.partition(".")
            if dot:
                properties.setdefault(head, {"properties": {}})["properties"][tail] = mapping
            else:
                properties[name] = mapping
        if self.vector is not None:
            properties[self.vector.column] = self.vector.mapping()
        return {"dynamic": "strict", "properties": properties}

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> SearchIndex: ...

    @overload
    def __get__(self, instance: SearchOwner[T], owner: type[Any]) -> TextSearch[T]: ...

    def __get__(
        self, instance: SearchOwner[T] | None, owner: type[Any]
    ) -> SearchIndex | TextSearch[T]:
        if instance is None:
            return self
        return instance.bind_search(self)


@dataclass(frozen=True, slots=True)
class VectorField:
    """The model's ``Vector`` column, indexed for ``similar`` and ``hybrid``.

    ``metadata`` names the columns stored beside each vector, which ``similar`` and
    ``hybrid`` can filter on (typically the tenant).

    ``engine="faiss"`` (the default): every process holds the vectors in FAISS under
    ``namespace``. ``engine="elasticsearch"``: the vector is a ``dense_vector`` field of
    the repository's search document (an index named ``namespace``, else the table, when
    the repository declares no ``SearchIndex``), ranked by a filtered kNN search;
    ``similarity`` and ``index_options`` (e.g. ``{"type": "int8_hnsw"}``) go into its
    mapping and apply to that engine only.
    """

    column: str
    namespace: str = ""
    metadata: tuple[str, ...] = ()
    engine: VectorEngine = "faiss"
    similarity: Similarity = "cosine"
    index_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.column:
            raise ValueError("VectorField needs the name of a Vector column")
        if self.engine not in _ENGINES:
            raise ValueError(
                f"VectorField engine {self.engine!r} is unknown; use one of {sorted(_ENGINES)}"
            )
        if self.similarity not in _SIMILARITIES:
            raise ValueError(
                f"VectorField similarity {self.similarity!r} is unknown; "
                f"use one of {sorted(_SIMILARITIES)}"
            )
        if self.engine == "faiss":
            if self.similarity != "cosine" or self.index_options is not None:
                raise ValueError(
                    "VectorField similarity and index_options apply to "
                    "engine='elasticsearch' only (FAISS ranks by cosine; see FaissConfig)"
                )
            check_namespace(self.namespace)
        elif self.namespace and not _NAME.match(self.namespace):
            raise ValueError(
                f"VectorField namespace {self.namespace!r} names an index: use lowercase "
                "letters, digits, '_', '-', '.'"
            )
        object.__setattr__(self, "metadata", tuple(self.metadata))

    def checked_filters(self, filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``filters`` on the metadata (a tuple or set as a list), or ``ValueError``."""
        if not filters:
            return None
        unknown = sorted(set(filters) - set(self.metadata))
        if unknown:
            raise ValueError(
                f"cannot filter vectors of {self.namespace or self.column!r} on {unknown}; "
                f"filterable metadata is {list(self.metadata)}"
            )
        return {
            name: list(value) if isinstance(value, tuple | set | frozenset) else value
            for name, value in filters.items()
        }


class _NoSearchIndex(SearchIndex):
    """The default of ``Repository.search``: calling it says how to declare an index."""

    def __post_init__(self) -> None:
        pass


NO_SEARCH_INDEX: SearchIndex = _NoSearchIndex("", {})
