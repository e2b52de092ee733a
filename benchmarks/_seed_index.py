"""The seed's ``VectorIndex`` (implementation plan, Task 6), kept as the naive baseline.

Written the way the seed's sample reads, typed but otherwise unchanged in behaviour:
one ``asyncio.to_thread`` per vector, no lock, and a delete (also the delete inside an
upsert of an existing id) that rebuilds the whole namespace vector by vector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import faiss
import numpy as np

__all__ = ["SeedVectorIndex"]


class SeedVectorIndex:
    """The seed's in-memory part: one ``IndexFlatIP`` per namespace and dict id maps."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension
        self._namespaces: dict[str, Any] = {}
        self._id_to_idx: dict[str, dict[str, int]] = {}
        self._idx_to_id: dict[str, dict[int, str]] = {}
        self._metadata: dict[str, dict[str, Mapping[str, Any]]] = {}

    def _get_or_create_namespace(self, namespace: str) -> Any:
        if namespace not in self._namespaces:
            self._namespaces[namespace] = faiss.IndexFlatIP(self._dimension)
            self._id_to_idx[namespace] = {}
            self._idx_to_id[namespace] = {}
            self._metadata[namespace] = {}
        return self._namespaces[namespace]

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: Sequence[float],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        def _upsert() -> None:
            if namespace in self._id_to_idx and vector_id in self._id_to_idx[namespace]:
                self._delete_sync(namespace, vector_id)
            index = self._get_or_create_namespace(namespace)
            vec = np.array([vector], dtype=np.float32)
            faiss.normalize_L2(vec)
            idx = index.ntotal
            index.add(vec)
            self._id_to_idx[namespace][vector_id] = idx
            self._idx_to_id[namespace][idx] = vector_id
            if metadata:
                self._metadata[namespace][vector_id] = metadata

        await asyncio.to_thread(_upsert)

    def _delete_sync(self, namespace: str, vector_id: str) -> bool:
        """Rebuilds the namespace without ``vector_id``: O(n) per delete."""
        if vector_id not in self._id_to_idx.get(namespace, {}):
            return False
        old_index = self._namespaces[namespace]
        new_index = faiss.IndexFlatIP(self._dimension)
        new_id_to_idx: dict[str, int] = {}
        new_idx_to_id: dict[int, str] = {}
        for vid, old_idx in self._id_to_idx[namespace].items():
            if vid == vector_id:
                continue
            new_idx = new_index.ntotal
            new_index.add(old_index.reconstruct(old_idx).reshape(1, -1))
            new_id_to_idx[vid] = new_idx
            new_idx_to_id[new_idx] = vid
        self._namespaces[namespace] = new_index
        self._id_to_idx[namespace] = new_id_to_idx
        self._idx_to_id[namespace] = new_idx_to_id
        self._metadata[namespace].pop(vector_id, None)
        return True

    async def delete(self, namespace: str, vector_id: str) -> bool:
        return await asyncio.to_thread(self._delete_sync, namespace, vector_id)
