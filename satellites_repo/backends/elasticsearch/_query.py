"""A repository's query as Elasticsearch's: text over the text fields, filters as terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from satellites_repo.model import SearchIndex, json_safe

__all__ = ["es_query"]


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
            clauses.append({"terms": {name: [json_safe(item) for item in value]}})
        else:
            clauses.append({"term": {name: json_safe(value)}})
    return clauses
