"""Search, similarity and hybrid queries, hydrated into entities.

A backend ranks (keys and scores); Postgres (through the cache) supplies the entities, so
a hit is always the committed row, never a stale copy of it. A hit whose row no longer
exists (deleted, the index not yet caught up) is left out.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from typing_extensions import Unpack

from satellites_repo import observe
from satellites_repo.errors import RepositoryError
from satellites_repo.model import (
    HybridHit,
    Query,
    RankedPage,
    SearchHit,
    SearchOptions,
    SearchPage,
    Suggestion,
    SuggestOptions,
    SuggestQuery,
    TextQuery,
    VectorHit,
    VectorQuery,
    as_float32_vector,
)

if TYPE_CHECKING:
    from satellites_repo.model import SearchIndex
    from satellites_repo.orm.repository import Repository
    from satellites_repo.types import TextRanker, VectorRanker

__all__ = [
    "MAX_LIMIT",
    "RRF_K",
    "BoundSearch",
    "hybrid_search",
    "reciprocal_rank_fusion",
    "similar_search",
]

T = TypeVar("T")
R = TypeVar("R")
Options = TypeVar("Options", SearchOptions, SuggestOptions)

RRF_K = 60
"""The reciprocal-rank-fusion constant: a document's fused score is sum(1 / (RRF_K + rank))."""

MAX_LIMIT = 1000
"""The most hits (or suggestions) one call returns; deeper pages go through ``after``."""

REFILLS = 3
"""How many more requests fill a page whose ranked hits were not all hydrated."""


class BoundSearch(Generic[T]):
    """``repo.search``: full-text search over the repository's ``SearchIndex``."""

    def __init__(self, repository: Repository[T], index: SearchIndex) -> None:
        self._repository = repository
        self._index = index

    @property
    def index(self) -> SearchIndex:
        return self._index

    async def ranking(self, query: Query, **options: Unpack[SearchOptions]) -> RankedPage:
        """The ranked keys, scores, highlights and facets, without loading any entity."""
        request = _checked(self._repository, TextQuery(query, **self._scoped(options)))
        return await _text_ranker(self._repository).rank(self._repository.spec, request)

    async def __call__(self, query: Query, **options: Unpack[SearchOptions]) -> SearchPage[T]:
        """Text (matched against every text field) or a raw Elasticsearch query dict.

        See ``SearchOptions`` for filters (``AnyOf(...)`` for any of several values; a list
        is refused, so it cannot widen a tenant filter), sort, facets and ``after`` cursors.
        A ranked hit whose row is gone (the index not caught up yet) is skipped and the
        page refilled with the hits after it, so a page is short only at the end;
        ``dropped`` counts them.
        """
        with observe.read_span("search", self._repository.spec.table):
            request = TextQuery(query, **self._scoped(options))
            return await self._search(_checked(self._repository, request))

    def _scoped(self, options: Options) -> Options:
        """``options`` with the repository's tenant in the filters (a raw query dict is
        wrapped by them: the backend ANDs filters around the query, so it cannot widen)."""
        filters = self._repository.scoped_filters(options.get("filters"))
        return options if filters is None else {**options, "filters": filters}

    async def _search(self, request: TextQuery) -> SearchPage[T]:
        ranker, spec = _text_ranker(self._repository), self._repository.spec
        first = await ranker.rank(spec, request)
        hits, dropped = await self._hydrated(first, request.include_deleted)
        cursor = first.next_cursor
        for _ in range(REFILLS):
            if len(hits) >= request.limit or cursor is None:
                break
            more = dataclasses.replace(
                request, limit=request.limit - len(hits), offset=0, after=cursor, facets=()
            )
            page = await ranker.rank(spec, more)
            extra, lost = await self._hydrated(page, request.include_deleted)
            hits, dropped, cursor = hits + extra, dropped + lost, page.next_cursor
        return SearchPage(hits, first.total, first.facets, cursor, dropped)

    async def _hydrated(
        self, page: RankedPage, include_deleted: bool
    ) -> tuple[list[SearchHit[T]], int]:
        keys = [hit.key for hit in page.hits]
        entities = await _hydrate(self._repository, keys, include_deleted)
        hits = [
            SearchHit(entities[hit.key], hit.score, hit.highlights)
            for hit in page.hits
            if hit.key in entities
        ]
        return hits, len(page.hits) - len(hits)

    async def suggest(
        self, prefix: str, *, field: str, **options: Unpack[SuggestOptions]
    ) -> list[Suggestion]:
        """Autocomplete: (key, text) of rows whose ``field`` has words starting as typed."""
        if not isinstance(prefix, str) or not prefix.strip():
            raise ValueError(f"suggest needs the text typed so far, got {prefix!r}")
        request = SuggestQuery(prefix, field, **self._scoped(options))
        request = dataclasses.replace(request, filters=_typed(self._repository, request.filters))
        _check_count("limit", request.limit, maximum=MAX_LIMIT)
        return await _text_ranker(self._repository).suggest(self._repository.spec, request)


def _checked(repository: Repository[Any], request: TextQuery) -> TextQuery:
    _check_count("limit", request.limit, maximum=MAX_LIMIT)
    _check_count("offset", request.offset, minimum=0)
    return dataclasses.replace(request, filters=_typed(repository, request.filters))


def _typed(
    repository: Repository[Any], filters: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """Filter values typed like their columns, the same for every ranker (``"false"`` is
    ``False`` in Elasticsearch and FAISS alike), or ``ValueError`` naming the field."""
    return repository.spec.codec.filter_values(filters)


def _check_count(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}; page with after=")


def _offered(ranker: R | None, repository: Repository[Any], declaration: str) -> R:
    """``ranker``, or an error saying which declaration (``search = SearchIndex``) is missing."""
    if ranker is None:
        attribute, kind = declaration.split(" = ")
        raise RepositoryError(
            f"{type(repository).__name__} has no {kind}: declare "
            f"`{attribute} = {kind}(...)` on the repository"
        )
    return ranker


def _text_ranker(repository: Repository[Any]) -> TextRanker:
    ranker = repository.unit_of_work.readers.text(repository.spec)
    return _offered(ranker, repository, "search = SearchIndex")


def _vector_ranker(repository: Repository[Any]) -> VectorRanker:
    ranker = repository.unit_of_work.readers.vectors(repository.spec)
    return _offered(ranker, repository, "vectors = VectorField")


async def similar_search(
    repository: Repository[T],
    vector_or_entity: Sequence[float] | T,
    *,
    k: int,
    filters: Mapping[str, Any] | None,
    include_deleted: bool = False,
) -> list[VectorHit[T]]:
    _check_count("k", k)
    filters = repository.scoped_filters(filters)
    ranker = _vector_ranker(repository)
    spec = repository.spec
    exclude: str | None = None
    if isinstance(vector_or_entity, spec.model):
        assert spec.vectors is not None
        exclude = str(spec.codec.key_of(vector_or_entity))
        vector: Sequence[float] = getattr(vector_or_entity, spec.vectors.column)
    else:
        vector = vector_or_entity  # type: ignore[assignment]
    ranked = await _vector_ranking(repository, ranker, vector, k + (exclude is not None), filters)
    ranked = [(key, score) for key, score in ranked if key != exclude][:k]
    entities = await _hydrate(repository, [key for key, _ in ranked], include_deleted)
    return [VectorHit(entities[key], score) for key, score in ranked if key in entities]


async def _vector_ranking(
    repository: Repository[Any],
    ranker: VectorRanker,
    vector: Sequence[float],
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[tuple[str, float]]:
    checked = _checked_vector(repository, vector)
    typed = _typed(repository, filters)
    return await ranker.nearest(repository.spec, VectorQuery(checked, k, typed))


def _checked_vector(repository: Repository[Any], vector: Sequence[float]) -> list[float]:
    dimension = repository.spec.vector_dimension
    assert dimension is not None
    return as_float32_vector(vector, dimension)


async def hybrid_search(
    repository: Repository[T],
    text: str,
    vector: Sequence[float],
    *,
    k: int,
    filters: Mapping[str, Any] | None,
    include_deleted: bool = False,
) -> list[HybridHit[T]]:
    _check_count("k", k)
    filters = repository.scoped_filters(filters)
    ranker = _vector_ranker(repository)
    depth = max(k * 2, 20)
    both = repository.unit_of_work.readers.hybrid(repository.spec)
    if both is not None:  # one backend holds both: one round trip
        text_page, vector_ranked = await both.rank_both(
            repository.spec,
            _checked(
                repository,
                TextQuery(text, filters=filters, limit=depth, include_deleted=include_deleted),
            ),
            VectorQuery(_checked_vector(repository, vector), depth, _typed(repository, filters)),
        )
    else:
        text_page, vector_ranked = await asyncio.gather(
            repository.search.ranking(
                text, filters=filters, limit=depth, include_deleted=include_deleted
            ),
            _vector_ranking(repository, ranker, vector, depth, filters),
        )
    text_keys = [hit.key for hit in text_page.hits]
    vector_keys = [key for key, _ in vector_ranked]
    fused = reciprocal_rank_fusion(text_keys, vector_keys)[:k]
    ordered = [key for key, _ in fused]
    scores = dict(fused)
    text_ranks = {key: rank for rank, key in enumerate(text_keys, start=1)}
    vector_ranks = {key: rank for rank, key in enumerate(vector_keys, start=1)}
    entities = await _hydrate(repository, ordered, include_deleted)
    return [
        HybridHit(entities[key], scores[key], text_ranks.get(key), vector_ranks.get(key))
        for key in ordered
        if key in entities
    ]


def reciprocal_rank_fusion(*rankings: Sequence[str]) -> list[tuple[str, float]]:
    """Keys by fused score, best first: each ranking adds 1 / (RRF_K + rank) per key.

    Ties break on the key, so the order is deterministic.
    """
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


async def _hydrate(
    repository: Repository[T], keys: Sequence[str], include_deleted: bool
) -> dict[str, T]:
    codec = repository.spec.codec
    entities = await repository.get_many(keys, include_deleted=include_deleted)
    return {str(codec.key_of(entity)): entity for entity in entities}
