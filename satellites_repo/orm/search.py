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

from satellites_repo.errors import RepositoryError
from satellites_repo.model import (
    HybridHit,
    Query,
    RankedPage,
    SearchHit,
    SearchOptions,
    SearchPage,
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
    "RRF_K",
    "BoundSearch",
    "hybrid_search",
    "reciprocal_rank_fusion",
    "similar_search",
]

T = TypeVar("T")
R = TypeVar("R")

RRF_K = 60
"""The reciprocal-rank-fusion constant: a document's fused score is sum(1 / (RRF_K + rank))."""


class BoundSearch(Generic[T]):
    """``repo.search``: full-text search over the repository's ``SearchIndex``."""

    def __init__(self, repository: Repository[T], index: SearchIndex) -> None:
        self._repository = repository
        self._index = index

    @property
    def index(self) -> SearchIndex:
        return self._index

    async def ranking(self, query: Query, **options: Unpack[SearchOptions]) -> RankedPage:
        """The ranked keys, scores and highlights, without loading any entity."""
        request = TextQuery(query, **options)
        spec = self._repository.spec
        request = dataclasses.replace(request, filters=spec.codec.filter_values(request.filters))
        _check_count("limit", request.limit)
        _check_count("offset", request.offset, minimum=0)
        return await _text_ranker(self._repository).rank(self._repository.spec, request)

    async def __call__(self, query: Query, **options: Unpack[SearchOptions]) -> SearchPage[T]:
        """Text (matched against every text field) or a raw Elasticsearch query dict.

        ``filters`` are exact matches on keyword/numeric fields (a list means any of);
        ``limit`` (default 10) and ``offset`` page through the hits.
        """
        page = await self.ranking(query, **options)
        entities = await _hydrate(self._repository, [hit.key for hit in page.hits])
        hits = [
            SearchHit(entities[hit.key], hit.score, hit.highlights)
            for hit in page.hits
            if hit.key in entities
        ]
        return SearchPage(hits, page.total)


def _check_count(name: str, value: object, *, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


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
) -> list[VectorHit[T]]:
    _check_count("k", k)
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
    entities = await _hydrate(repository, [key for key, _ in ranked])
    return [VectorHit(entities[key], score) for key, score in ranked if key in entities]


async def _vector_ranking(
    repository: Repository[Any],
    ranker: VectorRanker,
    vector: Sequence[float],
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[tuple[str, float]]:
    spec = repository.spec
    dimension = spec.vector_dimension
    assert dimension is not None
    checked = as_float32_vector(vector, dimension)
    typed = spec.codec.filter_values(filters)
    return await ranker.nearest(spec, VectorQuery(checked, k, typed))


async def hybrid_search(
    repository: Repository[T],
    text: str,
    vector: Sequence[float],
    *,
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[HybridHit[T]]:
    _check_count("k", k)
    ranker = _vector_ranker(repository)
    depth = max(k * 2, 20)
    text_page, vector_ranked = await asyncio.gather(
        repository.search.ranking(text, filters=filters, limit=depth),
        _vector_ranking(repository, ranker, vector, depth, filters),
    )
    text_keys = [hit.key for hit in text_page.hits]
    vector_keys = [key for key, _ in vector_ranked]
    fused = reciprocal_rank_fusion(text_keys, vector_keys)[:k]
    ordered = [key for key, _ in fused]
    scores = dict(fused)
    text_ranks = {key: rank for rank, key in enumerate(text_keys, start=1)}
    vector_ranks = {key: rank for rank, key in enumerate(vector_keys, start=1)}
    entities = await _hydrate(repository, ordered)
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


async def _hydrate(repository: Repository[T], keys: Sequence[str]) -> dict[str, T]:
    codec = repository.spec.codec
    entities = await repository.get_many(keys)
    return {str(codec.key_of(entity)): entity for entity in entities}
