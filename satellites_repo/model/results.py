"""What reads ask and return: requests to rankers, pages and hits over entities.

The ORM layer asks a backend to rank (``TextQuery``, ``VectorQuery``); the backend answers
with keys (``RankedPage``); the ORM layer hydrates them into entities (``SearchPage``,
``VectorHit``, ``HybridHit``). ``TextSearch`` is the shape of ``repository.search``, so a
``SearchIndex`` declaration can promise it without knowing the repository behind it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeAlias, TypedDict, TypeVar

from typing_extensions import Unpack

__all__ = [
    "HybridHit",
    "Page",
    "Query",
    "RankedHit",
    "RankedPage",
    "SearchHit",
    "SearchOptions",
    "SearchPage",
    "SuggestOptions",
    "SuggestQuery",
    "Suggestion",
    "TextQuery",
    "TextSearch",
    "VectorHit",
    "VectorQuery",
]

T = TypeVar("T")

Query: TypeAlias = "str | Mapping[str, Any]"
"""Text to match against every text field, or a raw Elasticsearch query dict."""


Facets: TypeAlias = "Mapping[str, dict[Any, int]]"
"""Per faceted field, each value's count of matching documents (most frequent first)."""


class SearchOptions(TypedDict, total=False):
    """``repository.search`` options.

    ``filters``: exact matches (a list means any of) or ``Range`` bounds; ``sort``: field
    names, ``-`` for descending, ``_score`` for relevance; ``facets``: fields to count values
    of; ``after``: the previous page's ``next_cursor``; ``highlight``: highlight text fields;
    ``include_deleted``: on a ``SoftDelete`` model, also soft-deleted rows.
    """

    filters: Mapping[str, Any] | None
    limit: int
    offset: int
    sort: Sequence[str]
    facets: Sequence[str]
    after: str | None
    highlight: bool
    include_deleted: bool


class AnyOf(tuple[Any, ...]):
    """A filter value that matches any of the values given: ``{"status": AnyOf("a", "b")}``.

    The one way to widen a filter: a plain list, tuple or set is refused, so a value that
    arrives as a list (``tenant_id=["acme", "evil"]`` from a request) can never widen a
    tenant filter by accident.
    """

    def __new__(cls, *values: Any) -> AnyOf:
        if not values:
            raise ValueError("AnyOf() needs at least one value")
        return super().__new__(cls, values)


def check_filters(filters: Mapping[str, Any] | None) -> None:
    """Refuse collection values that are not ``AnyOf`` (naming the field)."""
    for name, value in (filters or {}).items():
        if isinstance(value, list | tuple | set | frozenset) and not isinstance(value, AnyOf):
            raise ValueError(
                f"filter {name!r} got a {type(value).__name__}; a filter matches one value, "
                f"pass AnyOf(...) to match any of several"
            )


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A full-text ranking request, checked by the ORM layer before a backend sees it."""

    query: Query
    filters: Mapping[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    sort: Sequence[str] = ()
    facets: Sequence[str] = ()
    after: str | None = None
    highlight: bool = True
    include_deleted: bool = False

    def __post_init__(self) -> None:
        check_filters(self.filters)
        for name in ("sort", "facets"):
            value = getattr(self, name)
            if isinstance(value, str):  # sort="-opened_at": one field, not its letters
                value = (value,)
            object.__setattr__(self, name, tuple(value))


class SuggestOptions(TypedDict, total=False):
    """``repository.suggest`` options: how many (``limit``, default 5), ``filters`` as in search."""

    limit: int
    filters: Mapping[str, Any] | None
    include_deleted: bool


@dataclass(frozen=True, slots=True)
class SuggestQuery:
    """An autocomplete request: rows whose ``field`` has words starting with ``prefix``."""

    prefix: str
    field: str
    limit: int = 5
    filters: Mapping[str, Any] | None = None
    include_deleted: bool = False

    def __post_init__(self) -> None:
        check_filters(self.filters)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One autocomplete answer: the row's key and the field's indexed text."""

    key: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """A nearest-neighbour request: ``vector`` already checked against the dimension."""

    vector: list[float]
    k: int
    filters: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_filters(self.filters)


@dataclass(frozen=True, slots=True)
class RankedHit:
    """One hit as a backend ranks it, before any entity is loaded."""

    key: str
    score: float
    highlights: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RankedPage:
    """Ranked keys; ``next_cursor`` (``None`` on the last page) continues after the last hit."""

    hits: list[RankedHit]
    total: int
    facets: Facets = field(default_factory=dict)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class SearchHit(Generic[T]):
    entity: T
    score: float
    highlights: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    """One page of full-text hits; ``total`` counts every match, not just this page.

    ``facets`` holds the counts asked for; ``next_cursor`` (``None`` on the last page) is
    passed as ``after=`` for the next page. ``dropped`` counts ranked hits whose row was
    gone when hydrated (the index not caught up yet): the page was refilled past them.
    """

    hits: list[SearchHit[T]]
    total: int
    facets: Facets = field(default_factory=dict)
    next_cursor: str | None = None
    dropped: int = 0

    def __iter__(self) -> Iterator[SearchHit[T]]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def entities(self) -> list[T]:
        return [hit.entity for hit in self.hits]


@dataclass(frozen=True, slots=True)
class VectorHit(Generic[T]):
    entity: T
    score: float


@dataclass(frozen=True, slots=True)
class HybridHit(Generic[T]):
    """A fused hit: ``score`` is the RRF score; the ranks say where each source put it."""

    entity: T
    score: float
    text_rank: int | None
    vector_rank: int | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items of one page; ``next_cursor`` is ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None


class TextSearch(Protocol[T]):
    """``repository.search``: call it for hydrated hits, or ``ranking`` for keys only."""

    async def __call__(self, query: Query, **options: Unpack[SearchOptions]) -> SearchPage[T]: ...

    async def ranking(self, query: Query, **options: Unpack[SearchOptions]) -> RankedPage: ...

    async def suggest(
        self, prefix: str, *, field: str, **options: Unpack[SuggestOptions]
    ) -> list[Suggestion]: ...
