"""A row's search document: its declared columns, its key and its computed fields.

One function for the fast path, the relay and a reindex, so all three write the same
document for the same committed row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satellites_repo.errors import ProjectionError
from satellites_repo.model import KEY_FIELD

if TYPE_CHECKING:
    from satellites_repo.model import Change, EntitySpec

__all__ = ["document"]


def document(spec: EntitySpec, change: Change) -> dict[str, Any]:
    index = spec.search
    assert index is not None
    body = {name: change.payload.get(name) for name in index.fields}
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
