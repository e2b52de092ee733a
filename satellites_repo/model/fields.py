"""How a search document's fields are declared: a type, options, or a value computed from the row.

    fields={"subject": Text(analyzer="standard", prefixes=True), "status": "keyword",
            "body": ("text", {"analyzer": "standard"})}
    computed={"words": Computed(lambda t: len(t.body.split()), type="integer",
                                depends_on=("body",))}

A plain type name keeps working; ``Text`` and ``(type, options)`` add Elasticsearch mapping
options. A ``Computed`` field is a function of the committed row (the change's payload, typed
back by the model's codec), so the fast path, the relay and a reindex compute the same value.
``Condition`` is an ``index_when`` predicate that names the columns it reads, so an update
of other columns need not reach the index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal, TypeAlias, get_args

__all__ = [
    "ANALYZER_OPTIONS",
    "Computed",
    "Condition",
    "FieldDeclaration",
    "FieldType",
    "Row",
    "Text",
    "field_mapping",
]

FieldType = Literal[
    "text", "keyword", "integer", "long", "float", "double", "boolean", "date", "search_as_you_type"
]
FIELD_TYPES = frozenset(get_args(FieldType))
ANALYZER_OPTIONS = ("analyzer", "search_analyzer")
"""Mapping options that name an analyzer: checked against the cluster at start."""

Row: TypeAlias = SimpleNamespace
"""The committed row as attributes (``t.body``, ``t.deleted_at``), typed like the columns."""


@dataclass(frozen=True, slots=True)
class Text:
    """A ``text`` field with options.

    ``analyzer`` (and ``search_analyzer``) name an analyzer the cluster must offer, checked
    at start. ``prefixes=True`` indexes prefixes (``index_prefixes``), which makes
    ``repository.suggest`` fast on any Elasticsearch distribution.
    """

    analyzer: str | None = None
    search_analyzer: str | None = None
    prefixes: bool = False

    def mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {"type": "text"}
        if self.analyzer is not None:
            mapping["analyzer"] = self.analyzer
        if self.search_analyzer is not None:
            mapping["search_analyzer"] = self.search_analyzer
        if self.prefixes:
            mapping["index_prefixes"] = {"min_chars": 1, "max_chars": 10}
        return mapping


FieldDeclaration: TypeAlias = "FieldType | Text | tuple[FieldType, Mapping[str, Any]]"


def field_mapping(name: str, declared: object) -> dict[str, Any]:
    """The Elasticsearch mapping of one declared field, or ``ValueError`` naming the problem."""
    if isinstance(declared, Text):
        return declared.mapping()
    if isinstance(declared, tuple) and len(declared) == 2 and isinstance(declared[1], Mapping):
        kind, options = declared
        if "type" in options:
            raise ValueError(f"field {name!r}: give the type once, not again in its options")
        return {"type": _checked_type(name, kind), **options}
    return {"type": _checked_type(name, declared)}


def _checked_type(name: str, kind: object) -> str:
    if kind not in FIELD_TYPES:
        raise ValueError(
            f"field {name!r} has unknown type {kind!r}; use one of {sorted(FIELD_TYPES)}, "
            "Text(...) or (type, {options})"
        )
    return str(kind)


@dataclass(frozen=True, slots=True)
class Computed:
    """A document field computed from the row: ``compute(row)`` gives its value.

    ``depends_on`` names the columns the value is computed from (checked against the model
    at start): the contract that the value changes only when those columns do.
    """

    compute: Callable[[Row], Any]
    type: FieldType
    depends_on: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.compute):
            raise ValueError("Computed needs a function of the row")
        object.__setattr__(self, "depends_on", tuple(self.depends_on))
        if not self.depends_on:
            raise ValueError("Computed needs depends_on: the columns its value is computed from")

    def mapping(self, name: str) -> dict[str, Any]:
        return field_mapping(name, (self.type, self.options) if self.options else self.type)


@dataclass(frozen=True, slots=True)
class Condition:
    """An ``index_when`` predicate with its inputs: ``Condition(fn, depends_on=("deleted_at",))``.

    A plain function given to ``index_when`` may read any column, so every update of the row
    is sent to the index (and the vectors); naming the columns lets an update of other
    columns skip them. ``depends_on`` is checked against the model at start.
    """

    predicate: Callable[[Row], bool]
    depends_on: tuple[str, ...]

    def __post_init__(self) -> None:
        if not callable(self.predicate):
            raise ValueError("Condition needs a function of the row")
        object.__setattr__(self, "depends_on", tuple(self.depends_on))
        if not self.depends_on:
            raise ValueError("Condition needs depends_on: the columns its predicate reads")

    def __call__(self, row: Row) -> bool:
        return bool(self.predicate(row))
