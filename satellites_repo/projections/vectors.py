"""The FAISS projection: vectors of committed rows, with per-id versions.

FAISS lives in each process, so unlike Redis and Elasticsearch every instance applies
every vector change to its own index. Versions make that safe to repeat: the index
ignores an upsert or delete whose version is not newer than the one it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from satellites_repo.errors import ProjectionError
from satellites_repo.orm.changeset import Change, Operation

if TYPE_CHECKING:
    from satellites_repo.orm.policies import VectorField
    from satellites_repo.orm.registry import Registry
    from satellites_repo.vectors import VectorIndex

__all__ = ["VectorProjection"]


class _NamespaceBatch:
    """The upserts and deletes of one commit for one namespace."""

    def __init__(self) -> None:
        self.upsert_ids: list[str] = []
        self.upsert_vectors: list[Sequence[float]] = []
        self.upsert_metadata: list[dict[str, Any]] = []
        self.upsert_versions: list[int | None] = []
        self.delete_ids: list[str] = []
        self.delete_versions: list[int | None] = []

    def add(self, field: VectorField, change: Change) -> None:
        vector = change.payload.get(field.column)
        if change.operation is Operation.DELETED or vector is None:
            self.delete_ids.append(change.key)
            self.delete_versions.append(change.version)
            return
        self.upsert_ids.append(change.key)
        self.upsert_vectors.append(vector)
        self.upsert_metadata.append({name: change.payload.get(name) for name in field.metadata})
        self.upsert_versions.append(change.version)


class VectorProjection:
    """Applies vector changes to this process's ``VectorIndex``."""

    name = "faiss"

    def __init__(self, index: VectorIndex, registry: Registry) -> None:
        self._index = index
        self._registry = registry

    def covers(self, change: Change) -> bool:
        spec = self._registry.spec_of_table(change.table)
        return spec is not None and spec.vectors is not None

    async def apply(self, changes: Sequence[Change]) -> None:
        batches: dict[str, _NamespaceBatch] = {}
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.vectors is None:
                continue
            batches.setdefault(spec.vectors.namespace, _NamespaceBatch()).add(spec.vectors, change)
        for namespace, batch in batches.items():
            try:
                await self._apply_batch(namespace, batch)
            except (ValueError, RuntimeError) as exc:
                raise ProjectionError("faiss", f"namespace {namespace!r}: {exc}") from exc

    async def _apply_batch(self, namespace: str, batch: _NamespaceBatch) -> None:
        if batch.upsert_ids:
            await self._index.upsert_many(
                namespace,
                batch.upsert_ids,
                batch.upsert_vectors,
                batch.upsert_metadata,
                versions=batch.upsert_versions,
            )
        if batch.delete_ids:
            await self._index.delete_many(
                namespace, batch.delete_ids, versions=batch.delete_versions
            )
