"""Search, similarity and hybrid queries, hydrated into entities.

Elasticsearch and FAISS rank; Postgres (through the cache) supplies the entities, so a
hit is always the committed row, never a stale copy of it. A hit whose row no longer
exists (deleted, the index not yet caught up) is left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from satellites_repo.errors import RepositoryError
from satellites_repo.orm.types import as_float32_vector

if TYPE_CHECKING:
    from satellites_repo.orm.policies import SearchIndex, VectorField
    from satellites_repo.orm.repository import Repository
    from satellites_repo.projections.search import RawPage

__all__ = [
    "BoundSearch",
    "HybridHit",
    "SearchHit",
    "SearchPage",
    "VectorHit",
    "hybrid_search",
    "reciprocal_rank_fusion",
    "similar_search",
]

T = TypeVar("T")

RRF_K = 60
"""The reciprocal-rank-fusion constant: a document's fused score is sum(1 / (RRF_K + rank))."""


@dataclass(frozen=True, slots=True)
class SearchHit(Generic[T]):
    entity: T
    score: float
    highlights: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    """One page of full-text hits; ``total`` counts every match, not just this page."""

    hits: list[SearchHit[T]]
    total: int

    def __iter__(self) -> Any:
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


class BoundSearch(Generic[T]):
    """``repo.search``: full-text search over the repository's ``SearchIndex``."""

    def __init__(self, repository: Repository[T], index: SearchIndex) -> None:
        self._repository = repository
        self._index = index

    @property
    def index(self) -> SearchIndex:
        return self._index

    async def ranking(
        self,
        query: str | Mapping[str, Any],
        *,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> RawPage:
        """The ranked keys, scores and highlights, without loading any entity."""
        _check_paging(limit, offset)
        projection = self._repository.unit_of_work.search_projection
        if projection is None or not self._index.fields:
            raise RepositoryError(
                f"{type(self._repository).__name__} has no SearchIndex: declare "
                "`search = SearchIndex(...)` on the repository"
            )
        es_query = _es_query(self._index, query, filters)
        return await projection.search(
            self._index, es_query, limit=limit, offset=offset, highlight=isinstance(query, str)
        )

    async def __call__(
        self,
        query: str | Mapping[str, Any],
        *,
        filters: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> SearchPage[T]:
        """Text (matched against every text field) or a raw Elasticsearch query dict.

        ``filters`` are exact matches on keyword/numeric fields (a list means any of).
        """
        page = await self.ranking(query, filters=filters, limit=limit, offset=offset)
        entities = await _hydrate(self._repository, [hit.key for hit in page.hits])
        hits = [
            SearchHit(entities[hit.key], hit.score, hit.highlights)
            for hit in page.hits
            if hit.key in entities
        ]
        return SearchPage(hits, page.total)


def _check_paging(limit: int, offset: int) -> None:
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")


def _es_query(
    index: SearchIndex, query: str | Mapping[str, Any], filters: Mapping[str, Any] | None
) -> dict[str, Any]:
    if isinstance(query, str):
        must: dict[str, Any] = {
            "multi_match": {"query": query, "fields": index.text_fields or ["*"]}
        }
    else:
        must = dict(query)
    clauses = _es_filters(index, filters or {})
    if not clauses:
        return must
    return {"bool": {"must": [must], "filter": clauses}}


def _es_filters(index: SearchIndex, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(filters) - set(index.filter_fields))
    if unknown:
        raise ValueError(
            f"cannot filter search index {index.index!r} on {unknown}; "
            f"filterable fields are {index.filter_fields}"
        )
    clauses: list[dict[str, Any]] = []
    for name, value in filters.items():
        if isinstance(value, list | tuple | set | frozenset):
            clauses.append({"terms": {name: [str(item) for item in value]}})
        else:
            clauses.append({"term": {name: str(value)}})
    return clauses


def _vector_filters(field: VectorField, filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    unknown = sorted(set(filters) - set(field.metadata))
    if unknown:
        raise ValueError(
            f"cannot filter vectors of {field.namespace!r} on {unknown}; "
            f"filterable metadata is {list(field.metadata)}"
        )
    return {
        name: list(value) if isinstance(value, tuple | set | frozenset) else value
        for name, value in filters.items()
    }


def _vector_field(repository: Repository[Any]) -> VectorField:
    field = repository.spec.vectors
    if field is None:
        raise RepositoryError(
            f"{type(repository).__name__} has no VectorField: declare "
            "`vectors = VectorField(...)` on the repository"
        )
    return field


async def similar_search(
    repository: Repository[T],
    vector_or_entity: Sequence[float] | T,
    *,
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[VectorHit[T]]:
    field = _vector_field(repository)
    model = repository.spec.model
    exclude: str | None = None
    if isinstance(vector_or_entity, model):
        exclude = str(repository.spec.codec.key_of(vector_or_entity))
        vector: Sequence[float] = getattr(vector_or_entity, field.column)
    else:
        vector = vector_or_entity  # type: ignore[assignment]
    ranked = await _vector_ranking(repository, field, vector, k + (exclude is not None), filters)
    ranked = [(key, score) for key, score in ranked if key != exclude][:k]
    entities = await _hydrate(repository, [key for key, _ in ranked])
    return [VectorHit(entities[key], score) for key, score in ranked if key in entities]


async def _vector_ranking(
    repository: Repository[Any],
    field: VectorField,
    vector: Sequence[float],
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[tuple[str, float]]:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    dimension = repository.spec.model.__table__.c[field.column].type.dimension
    checked = as_float32_vector(vector, dimension)
    matches = await repository.unit_of_work.vectors.query(
        field.namespace, checked, top_k=k, filter=_vector_filters(field, filters)
    )
    return [(match.id, match.score) for match in matches]


async def hybrid_search(
    repository: Repository[T],
    text: str,
    vector: Sequence[float],
    *,
    k: int,
    filters: Mapping[str, Any] | None,
) -> list[HybridHit[T]]:
    field = _vector_field(repository)
    search = repository.search
    depth = max(k * 2, 20)
    text_page, vector_ranked = await asyncio.gather(
        search.ranking(text, filters=filters, limit=depth),
        _vector_ranking(repository, field, vector, depth, filters),
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
