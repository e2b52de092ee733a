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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, get_args, overload

from satellites_repo.model.codec import NON_FINITE
from satellites_repo.model.results import TextSearch
from satellites_repo.vectors import check_namespace

__all__ = ["CachePolicy", "FieldType", "SearchIndex", "SearchOwner", "VectorField"]

T = TypeVar("T")


class SearchOwner(Protocol[T]):
    """What a ``SearchIndex`` is declared on: a repository, which binds it to itself."""

    def bind_search(self, index: SearchIndex) -> TextSearch[T]: ...


FieldType = Literal[
    "text", "keyword", "integer", "long", "float", "double", "boolean", "date", "search_as_you_type"
]
_FIELD_TYPES = frozenset(get_args(FieldType))
_NUMERIC = frozenset({"integer", "long", "float", "double"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")


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

    ``fields`` maps column names to Elasticsearch field types. Text fields are searched
    and highlighted; keyword (and numeric, boolean, date) fields can be filtered on. The
    index is reached through an alias named ``index`` (plus the configured prefix), so a
    reindex can swap the index behind it without downtime.

    On a repository instance, ``repo.search(...)`` runs a query against this index.
    """

    index: str
    fields: Mapping[str, FieldType]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.index):
            raise ValueError(
                f"SearchIndex name {self.index!r} must be lowercase letters, digits, '_', '-', '.'"
            )
        if not self.fields:
            raise ValueError(f"SearchIndex {self.index!r} needs at least one field")
        for name, kind in self.fields.items():
            if kind not in _FIELD_TYPES:
                raise ValueError(
                    f"SearchIndex {self.index!r}: field {name!r} has unknown type {kind!r}; "
                    f"use one of {sorted(_FIELD_TYPES)}"
                )

    @property
    def text_fields(self) -> list[str]:
        return [
            name for name, kind in self.fields.items() if kind in ("text", "search_as_you_type")
        ]

    @property
    def filter_fields(self) -> list[str]:
        return [name for name, kind in self.fields.items() if kind not in ("text",)]

    def mappings(self) -> dict[str, Any]:
        properties = {name: {"type": kind} for name, kind in self.fields.items()}
        return {"dynamic": "strict", "properties": properties}

    def document(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The indexed fields of a row's JSON-safe payload.

        Elasticsearch numbers are finite: a NaN or infinite float (which the payload
        carries as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``) is indexed as no value, so
        the row is still found by its other fields; reads return it as Postgres holds it.
        """
        document = {name: payload.get(name) for name in self.fields}
        for name, kind in self.fields.items():
            if kind in _NUMERIC and document[name] in NON_FINITE:
                document[name] = None
        return document

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
