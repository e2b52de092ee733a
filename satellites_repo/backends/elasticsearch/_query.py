"""A repository's query as Elasticsearch's: the query with its filters, the sort, the facets,
and a vector as a filtered ``knn`` search over the document's ``dense_vector`` field.

Every sort ends with the key (``@key``), so hits that tie keep one order from request to
request and ``search_after`` cursors neither repeat nor skip a hit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from satellites_repo.model import (
    KEY_FIELD,
    AnyOf,
    Range,
    SearchIndex,
    VectorField,
    VectorQuery,
    json_safe,
)

__all__ = [
    "FACET_SIZE",
    "es_aggregations",
    "es_knn",
    "es_query",
    "es_sort",
    "facet_counts",
    "similarity",
    "suggestion",
]

FACET_SIZE = 100
"""At most this many values are counted per facet (the most frequent ones)."""
MAX_CANDIDATES = 10_000
"""Elasticsearch's ceiling for ``num_candidates``."""
CANDIDATES_PER_HIT = 10
"""HNSW candidates examined per requested neighbour: recall against query cost."""

_RANGE_TYPES = frozenset({"integer", "long", "float", "double", "date"})
_SCORE = "_score"


def es_query(
    index: SearchIndex,
    query: str | Mapping[str, Any],
    filters: Mapping[str, Any] | None,
    *,
    unset: str | None = None,
) -> dict[str, Any]:
    """Text (matched against every text field) or a raw query dict, AND the filters.

    ``unset`` names a field that must be missing (the soft-delete timestamp).
    """
    if isinstance(query, str):
        must: dict[str, Any] = {
            "multi_match": {"query": query, "fields": index.text_fields or ["*"]}
        }
    else:
        must = dict(query)
    clauses = _filters(index, filters or {})
    if unset is not None:
        clauses.append(_missing(unset))
    if not clauses:
        return must
    return {"bool": {"must": [must], "filter": clauses}}


def suggestion(index: SearchIndex, field: str, prefix: str) -> dict[str, Any]:
    """Words starting as typed: a bool-prefix match (served by ``index_prefixes`` if set)."""
    kind = index.kinds.get(field)
    if kind == "search_as_you_type":
        fields = [field, f"{field}._2gram", f"{field}._3gram"]
        return {"multi_match": {"query": prefix, "type": "bool_prefix", "fields": fields}}
    if kind != "text":
        raise ValueError(
            f"cannot suggest on {field!r} of search index {index.index!r}: "
            f"text fields are {index.text_fields}"
        )
    return {"match_bool_prefix": {field: {"query": prefix}}}


def es_sort(index: SearchIndex, sort: Sequence[str]) -> list[dict[str, Any]]:
    """``["-opened_at", "priority"]`` as Elasticsearch sort clauses, then the key.

    No sort means relevance. ``_score`` sorts best first; ``-name`` sorts descending.
    """
    clauses: list[dict[str, Any]] = []
    for item in sort or (_SCORE,):
        if not isinstance(item, str) or not item.lstrip("-"):
            raise ValueError(f"sort takes field names such as '-opened_at', got {item!r}")
        name = item.lstrip("-")
        descending = item.startswith("-")
        if name == _SCORE:
            if descending:
                raise ValueError("sort '_score' already sorts best first; drop the '-'")
            clauses.append({_SCORE: {"order": "desc"}})
            continue
        _check(index, name, "sort")
        clauses.append({name: {"order": "desc" if descending else "asc"}})
    clauses.append({KEY_FIELD: {"order": "asc"}})
    return clauses


def es_aggregations(index: SearchIndex, facets: Sequence[str]) -> dict[str, Any] | None:
    if not facets:
        return None
    for name in facets:
        _check(index, name, "facet")
    return {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in facets}


def facet_counts(
    index: SearchIndex, aggregations: Mapping[str, Any], facets: Sequence[str]
) -> dict[str, dict[Any, int]]:
    """Each facet's ``{value: count}``, values typed as the field is (``True``, ``3``, text)."""
    kinds = index.kinds
    counts: dict[str, dict[Any, int]] = {}
    for name in facets:
        buckets = aggregations.get(name, {}).get("buckets", [])
        counts[name] = {
            _bucket_value(kinds[name], bucket): bucket["doc_count"] for bucket in buckets
        }
    return counts


def _bucket_value(kind: str, bucket: Mapping[str, Any]) -> Any:
    if kind == "boolean":
        return bucket.get("key_as_string") == "true"
    if kind == "date":
        return bucket.get("key_as_string", bucket["key"])
    return bucket["key"]


def _check(index: SearchIndex, name: str, purpose: str) -> None:
    if name not in index.filter_fields:
        raise ValueError(
            f"cannot {purpose} search index {index.index!r} on {name!r}; "
            f"{purpose}able fields are {index.filter_fields}"
        )


def _filters(index: SearchIndex, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(filters) - set(index.filter_fields))
    if unknown:
        raise ValueError(
            f"cannot filter search index {index.index!r} on {unknown}; "
            f"filterable fields are {index.filter_fields}"
        )
    kinds = index.kinds
    return [_clause(name, kinds[name], value) for name, value in filters.items()]


def _clause(name: str, kind: str, value: Any) -> dict[str, Any]:
    if value is None:
        return _missing(name)
    if isinstance(value, Range):
        if kind not in _RANGE_TYPES:
            raise ValueError(f"Range filters numbers and dates; {name!r} is {kind}")
        return {"range": {name: value.bounds()}}
    if isinstance(value, AnyOf):  # a plain list was refused by TextQuery: never widens
        return {"terms": {name: [json_safe(item) for item in value]}}
    # json_safe, not str(): True must reach Elasticsearch as true, not "True" (a 400).
    return {"term": {name: json_safe(value)}}


def _missing(name: str) -> dict[str, Any]:
    return {"bool": {"must_not": [{"exists": {"field": name}}]}}


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
    field.checked_filters(request.filters)  # the metadata FAISS would accept, no more
    clauses = _filters(index, request.filters or {})
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
