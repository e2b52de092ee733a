"""What a repository projects, declared as class attributes.

    class Articles(Repository[Article]):
        cache = CachePolicy(ttl=300)
        search = SearchIndex("articles", fields={"title": "text", "tenant_id": "keyword"})
        vectors = VectorField("embedding", namespace="articles", metadata=("tenant_id",))

Each declaration is checked against the model when the ``DataLayer`` is built, so a typo
in a field name fails at start, not at the first commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from satellites_repo.model.fields import (
    Computed,
    FieldDeclaration,
    FieldType,
    Row,
    field_mapping,
)
from satellites_repo.model.results import TextSearch
from satellites_repo.vectors import check_namespace

__all__ = [
    "KEY_FIELD",
    "CachePolicy",
    "FieldType",
    "SearchIndex",
    "SearchOwner",
    "VectorField",
]

T = TypeVar("T")


class SearchOwner(Protocol[T]):
    """What a ``SearchIndex`` is declared on: a repository, which binds it to itself."""

    def bind_search(self, index: SearchIndex) -> TextSearch[T]: ...


_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")
_TEXT_TYPES = ("text", "search_as_you_type")

KEY_FIELD = "@key"
"""The document field holding the primary key as text: the sort tiebreaker of every query
(``_id`` cannot be sorted on), so cursor paging is stable. ``@`` keeps it clear of columns."""


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


@dataclass(frozen=True)
class SearchIndex:
    """An Elasticsearch index over some of the model's columns.

    ``fields`` maps column names to Elasticsearch field types (``"text"``, ``"keyword"``...),
    to ``Text(analyzer=..., prefixes=...)``, or to ``(type, {mapping options})``. Text fields
    are searched and highlighted; the others can be filtered, sorted and faceted on.
    ``computed`` adds fields computed from the row (``Computed``). ``index_when`` is a
    predicate on the committed row: a row for which it is false is kept out of the index
    (and out of the repository's vectors), and removed when it stops matching. The index is
    reached through an alias named ``index`` (plus the configured prefix), so a reindex can
    swap the index behind it without downtime.

    On a repository instance, ``repo.search(...)`` runs a query against this index.
    """

    index: str
    fields: Mapping[str, FieldDeclaration]
    settings: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Computed] = field(default_factory=dict)
    index_when: Callable[[Row], bool] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.index):
            raise ValueError(
                f"SearchIndex name {self.index!r} must be lowercase letters, digits, '_', '-', '.'"
            )
        if not self.fields:
            raise ValueError(f"SearchIndex {self.index!r} needs at least one field")
        both = sorted(set(self.fields) & set(self.computed))
        if both:
            raise ValueError(f"SearchIndex {self.index!r}: {both} are both columns and computed")
        if self.index_when is not None and not callable(self.index_when):
            raise ValueError(
                f"SearchIndex {self.index!r}: index_when must be a function of the row"
            )
        try:
            self.properties()
        except ValueError as exc:
            raise ValueError(f"SearchIndex {self.index!r}: {exc}") from None

    def properties(self) -> dict[str, dict[str, Any]]:
        """Each document field's mapping: the declared columns, then the computed ones."""
        properties = {name: field_mapping(name, declared) for name, declared in self.fields.items()}
        properties.update((name, spec.mapping(name)) for name, spec in self.computed.items())
        return properties

    @property
    def kinds(self) -> dict[str, str]:
        """Each document field's Elasticsearch type (columns and computed fields)."""
        return {name: mapping["type"] for name, mapping in self.properties().items()}

    @property
    def text_fields(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind in _TEXT_TYPES]

    @property
    def filter_fields(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind not in _TEXT_TYPES]

    def mappings(self) -> dict[str, Any]:
        properties = {KEY_FIELD: {"type": "keyword"}, **self.properties()}
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
    """The model's ``Vector`` column indexed in FAISS under ``namespace``.

    ``metadata`` names the columns stored beside each vector, which ``similar`` and
    ``hybrid`` can filter on (typically the tenant).
    """

    column: str
    namespace: str
    metadata: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.column:
            raise ValueError("VectorField needs the name of a Vector column")
        check_namespace(self.namespace)
        object.__setattr__(self, "metadata", tuple(self.metadata))


class _NoSearchIndex(SearchIndex):
    """The default of ``Repository.search``: calling it says how to declare an index."""

    def __post_init__(self) -> None:
        pass


NO_SEARCH_INDEX: SearchIndex = _NoSearchIndex("", {})
