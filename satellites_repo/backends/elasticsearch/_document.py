"""A row's search document: its declared columns, its key and its computed fields.

One function for the fast path, the relay and a reindex, so all three write the same
document for the same committed row. Elasticsearch numbers are finite: a NaN or infinite
float (which the payload carries as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``) is indexed
as no value, so the row is still found by its other fields; reads return it as Postgres
holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satellites_repo.errors import ProjectionError
from satellites_repo.model import KEY_FIELD
from satellites_repo.model.codec import NON_FINITE

if TYPE_CHECKING:
    from satellites_repo.model import Change, EntitySpec, SearchIndex

__all__ = ["document"]

_NUMERIC = frozenset({"integer", "long", "float", "double"})


def document(spec: EntitySpec, index: SearchIndex, change: Change) -> dict[str, Any]:
    """``index`` is the repository's document index (its vector field too, if any)."""
    body = {name: change.payload.get(name) for name in index.fields}
    if index.vector is not None:
        body[index.vector.column] = change.payload.get(index.vector.column)
    for name, kind in index.kinds.items():
        if kind in _NUMERIC and body.get(name) in NON_FINITE:
            body[name] = None
    body[KEY_FIELD] = change.key
    if not index.computed:
        return body
    row = spec.row(change.payload)
    for name, computed in index.computed.items():
        try:
            body[name] = computed.compute(row)
        except Exception as exc:
            raise ProjectionError(
                "elasticsearch",
                f"{spec.name}: computed field {name!r} failed for key {change.key}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
    return body
