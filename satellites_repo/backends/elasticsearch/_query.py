"""A repository's query as Elasticsearch's: text over the text fields, filters as terms,
and a vector as a filtered ``knn`` search over the document's ``dense_vector`` field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from satellites_repo.model import SearchIndex, VectorField, VectorQuery

__all__ = ["es_knn", "es_query", "similarity"]

MAX_CANDIDATES = 10_000
"""Elasticsearch's ceiling for ``num_candidates``."""
CANDIDATES_PER_HIT = 10
"""HNSW candidates examined per requested neighbour: recall against query cost."""


def es_query(
    index: SearchIndex, query: str | Mapping[str, Any], filters: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Text (matched against every text field) or a raw query dict, AND the filters."""
    if isinstance(query, str):
        must: dict[str, Any] = {
            "multi_match": {"query": query, "fields": index.text_fields or ["*"]}
        }
    else:
        must = dict(query)
    clauses = _filters(index, filters or {})
    if not clauses:
        return must
    return {"bool": {"must": [must], "filter": clauses}}


def _filters(index: SearchIndex, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
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


def es_knn(index: SearchIndex, field: VectorField, request: VectorQuery) -> dict[str, Any]:
    """The ``knn`` clause: ``request.k`` neighbours among the documents the filters allow.

    The filters are checked against the ``VectorField``'s metadata, as FAISS checks them,
    so both engines accept and refuse the same ones.
    """
    assert index.vector is not None
    knn: dict[str, Any] = {
        "field": index.vector.column,
        "query_vector": request.vector,
        "k": request.k,
        "num_candidates": min(MAX_CANDIDATES, max(request.k * CANDIDATES_PER_HIT, 100)),
    }
    clauses = _filters(index, field.checked_filters(request.filters) or {})
    if clauses:
        knn["filter"] = clauses
    return knn


def similarity(index: SearchIndex, score: float) -> float:
    """Elasticsearch's kNN score as the similarity itself, where it is a transform of it.

    For cosine and dot_product Elasticsearch reports (1 + similarity) / 2; this returns
    the similarity, as FAISS does. Other similarities keep Elasticsearch's score.
    """
    assert index.vector is not None
    if index.vector.similarity in ("cosine", "dot_product"):
        return 2.0 * score - 1.0
    return score
