"""A row's search document: its declared columns, its key, its computed fields and its
related fields (read with the change: ``Change.related``).

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
from satellites_repo.model.policies import ROW_VERSION_FIELD

if TYPE_CHECKING:
    from satellites_repo.model import Change, EntitySpec, SearchIndex
    from satellites_repo.model.change import RelatedValues

__all__ = ["document", "document_version", "related_values"]

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
    if index.related:
        body.update(related_values(spec, change).fields)
        body[ROW_VERSION_FIELD] = change.version
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


def related_values(spec: EntitySpec, change: Change) -> RelatedValues:
    """The related fields read with ``change``; a change that missed them is never written
    (its document would lose them, at a version that could hide the right one)."""
    if change.related is None:
        raise ProjectionError(
            "elasticsearch",
            f"{spec.name}: key {change.key} reached the index without its related fields",
        )
    return change.related


def document_version(spec: EntitySpec, index: SearchIndex, change: Change) -> int:
    """The version a document is written at: its row's, or, with related fields, the one
    taken before they were read (``outbox.related``)."""
    return related_values(spec, change).version if index.related else change.version
