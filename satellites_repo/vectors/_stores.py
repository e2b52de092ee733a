"""The FAISS index of one namespace, behind one small interface for both index types.

Both types wrap their index in ``IndexIDMap2`` so vectors carry stable int64 labels
(the namespace maps string ids to them) and can be read back with ``reconstruct``.
They differ in how a vector leaves the index:

* ``flat`` (``IndexFlatIP``) removes it at once with ``remove_ids``: one pass over the
  stored vectors per call, however many labels the call removes.
* ``hnsw`` (``IndexHNSWFlat``) cannot remove from its graph. Retired labels are kept
  in a ``dead`` set that every search excludes with an ``IDSelectorNot``; when dead
  entries exceed ``COMPACT_FRACTION`` of the index the graph is rebuilt from the live
  vectors. The rebuild costs as much as inserting the live vectors again and happens
  inside the namespace lock, so the call that crosses the threshold is slow.

None of these classes lock: the owning namespace's lock guards every call.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import faiss
import numpy as np

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors._rows import Rows
from satellites_repo.vectors._types import FloatMatrix, IdArray, IndexType

__all__ = ["COMPACT_FRACTION", "FlatStore", "HnswStore", "IndexSpec", "SearchResult", "Store"]

logger = logging.getLogger(__name__)

COMPACT_FRACTION = 0.25
"""An HNSW namespace is rebuilt once dead entries exceed this share of its index."""

EXACT_FACTOR = 8
"""HNSW scores a filter's candidates exactly when at most this many x ef_search."""

SearchResult = tuple[np.ndarray[Any, np.dtype[np.float32]], IdArray]
"""Scores and labels of one query, best first, without FAISS's ``-1`` padding."""


@dataclass(frozen=True)
class IndexSpec:
    """What every namespace of one ``VectorIndex`` is built with; recorded in snapshots."""

    dimension: int
    index_type: IndexType
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef_search: int

    metric: ClassVar[str] = "inner_product"

    def new_store(self) -> Store:
        """Return an empty store of this spec's type."""
        if self.index_type == "hnsw":
            return HnswStore(self.new_hnsw_index(), self, dead=())
        return FlatStore(faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension)))

    def new_hnsw_index(self) -> faiss.IndexIDMap2:
        """Return an empty ``IndexIDMap2`` over an inner-product ``IndexHNSWFlat``."""
        inner = faiss.IndexHNSWFlat(self.dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = self.hnsw_ef_construction
        inner.hnsw.efSearch = self.hnsw_ef_search
        return faiss.IndexIDMap2(inner)

    def restore_store(self, data: np.ndarray[Any, Any], dead: list[int], where: str) -> Store:
        """Rebuild a store from ``faiss.serialize_index`` bytes, checking it fits this spec."""
        try:
            index = faiss.deserialize_index(data)
        except RuntimeError as exc:
            raise VectorIndexError(f"{where}: FAISS could not read the index ({exc})") from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise VectorIndexError(f"{where}: the index is not an IndexIDMap2")
        if index.d != self.dimension:
            raise VectorIndexError(f"{where}: index dimension {index.d} != {self.dimension}")
        inner = faiss.downcast_index(index.index)
        if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise VectorIndexError(f"{where}: the index does not use inner product")
        if self.index_type == "hnsw" and isinstance(inner, faiss.IndexHNSWFlat):
            inner.hnsw.efSearch = self.hnsw_ef_search
            return HnswStore(index, self, dead=dead)
        if self.index_type == "flat" and isinstance(inner, faiss.IndexFlatIP) and not dead:
            return FlatStore(index)
        raise VectorIndexError(
            f"{where}: a {type(inner).__name__} index is not a {self.index_type} index"
        )


class Store(ABC):
    """A namespace's FAISS index: add, retire, search and read vectors by label."""

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        self._index = index

    @property
    def dead_labels(self) -> list[int]:
        """Labels still in the index but no longer live (always empty for flat)."""
        return []

    def serialize(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Return the FAISS index as bytes (a uint8 array) for a snapshot."""
        return faiss.serialize_index(self._index)

    def labels(self) -> IdArray:
        """Every label the FAISS index holds, live or dead."""
        stored: IdArray = faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)
        return stored

    @abstractmethod
    def add(self, rows: Rows, labels: IdArray) -> None:
        """Add ``rows``, normalised, under new, unused ``labels`` in one FAISS add."""

    @abstractmethod
    def retire(self, labels: IdArray) -> None:
        """Make ``labels`` unreachable by searches."""

    @abstractmethod
    def search(self, query: FloatMatrix, k: int, allowed: IdArray | None) -> SearchResult:
        """Return the ``k`` best live labels for ``query`` (among ``allowed`` if given)."""

    def vectors(self, labels: IdArray) -> FloatMatrix:
        """Return the stored vectors of live ``labels``, one row each."""
        found: FloatMatrix = self._index.reconstruct_batch(labels)
        return found

    def _search(
        self, query: FloatMatrix, k: int, params: faiss.SearchParameters | None
    ) -> SearchResult:
        scores, found = self._index.search(query, k, params=params)
        if found[0, -1] >= 0:  # FAISS pads missing hits with -1 at the end
            return scores[0], found[0]
        keep = found[0] >= 0
        return scores[0][keep], found[0][keep]


class FlatStore(Store):
    """Exact search over ``IndexFlatIP``; removal compacts the vectors in one pass."""

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        super().__init__(index)
        flat = faiss.downcast_index(index.index)
        if not isinstance(flat, faiss.IndexFlat):
            raise TypeError(f"expected an IndexIDMap2 over IndexFlat, got {type(flat).__name__}")
        self._flat = flat

    def add(self, rows: Rows, labels: IdArray) -> None:
        """Add ``rows`` as given, then normalise them inside the flat index's storage.

        FAISS copies the rows into its storage anyway; normalising them there saves a
        second copy of the batch. The new rows are the last ones of the storage, and
        no search sees them before this returns (the namespace lock is held).
        """
        before = self._index.ntotal
        self._index.add_with_ids(rows.data, labels)
        total, dimension = self._flat.ntotal, self._flat.d
        stored = faiss.rev_swig_ptr(self._flat.get_xb(), total * dimension)
        rows.normalize_copy(stored.reshape(total, dimension)[before:])

    def retire(self, labels: IdArray) -> None:
        """Remove ``labels`` from the index (one O(n) pass for the whole array)."""
        if len(labels):
            self._index.remove_ids(faiss.IDSelectorBatch(labels))

    def search(self, query: FloatMatrix, k: int, allowed: IdArray | None) -> SearchResult:
        """Exhaustive search; with ``allowed`` only those rows are scored.

        The scan still visits every row to test membership (a bloom filter and a hash
        probe per row), but computes inner products only for allowed ones.
        """
        if allowed is None:
            return self._search(query, k, None)
        selector = faiss.IDSelectorBatch(allowed)
        params = faiss.SearchParameters()
        params.sel = selector
        return self._search(query, k, params)


class HnswStore(Store):
    """Approximate search over ``IndexHNSWFlat``; retired labels are excluded, then compacted."""

    def __init__(self, index: faiss.IndexIDMap2, spec: IndexSpec, *, dead: Iterable[int]) -> None:
        super().__init__(index)
        self._spec = spec
        self._dead: set[int] = set(dead)
        # SWIG keeps no Python reference to a selector's inner selector: hold both.
        self._exclusion: tuple[faiss.IDSelectorBatch, faiss.IDSelectorNot] | None = None

    @property
    def dead_labels(self) -> list[int]:
        """Labels still in the graph but excluded from every search."""
        return sorted(self._dead)

    def add(self, rows: Rows, labels: IdArray) -> None:
        """Add normalised copies of ``rows``: the graph is built from what is added."""
        self._index.add_with_ids(rows.normalized(), labels)

    def retire(self, labels: IdArray) -> None:
        """Exclude ``labels`` from searches; rebuild the graph when too many are dead."""
        if not len(labels):
            return
        self._dead.update(labels.tolist())
        self._exclusion = None
        if len(self._dead) > COMPACT_FRACTION * self._index.ntotal:
            self._compact()

    def search(self, query: FloatMatrix, k: int, allowed: IdArray | None) -> SearchResult:
        """Graph search; falls back to exact scoring when the graph walk comes up short.

        A small ``allowed`` set (at most ``EXACT_FACTOR`` x ef_search labels) is scored
        exactly right away: cheaper than a graph walk that mostly meets non-matching
        nodes. If the walk returns fewer hits than exist (a selective filter, many dead
        nodes near the query), the candidates are scored exactly, so a query still
        returns ``min(k, candidates)`` hits; that fallback costs O(candidates x d).
        """
        ef_search = max(self._spec.hnsw_ef_search, k)
        if allowed is not None and len(allowed) <= EXACT_FACTOR * ef_search:
            return self._exact(query, k, allowed)
        batch = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from faiss's stubs
        params.efSearch = ef_search
        params.sel = batch if batch is not None else self._excluded()
        scores, found = self._search(query, k, params)
        possible = len(allowed) if allowed is not None else self._index.ntotal - len(self._dead)
        if len(found) >= min(k, possible):
            return scores, found
        logger.debug("HNSW walk found %d of %d hits; scoring exactly", len(found), k)
        return self._exact(query, k, allowed if allowed is not None else self._live())

    def _excluded(self) -> faiss.IDSelector | None:
        if not self._dead:
            return None
        if self._exclusion is None:
            dead = faiss.IDSelectorBatch(np.fromiter(self._dead, np.int64, len(self._dead)))
            self._exclusion = (dead, faiss.IDSelectorNot(dead))
        return self._exclusion[1]

    def _live(self) -> IdArray:
        labels = self.labels()
        if not self._dead:
            return labels
        dead = np.fromiter(self._dead, dtype=np.int64, count=len(self._dead))
        live: IdArray = labels[~np.isin(labels, dead)]
        return live

    def _exact(self, query: FloatMatrix, k: int, labels: IdArray) -> SearchResult:
        if not len(labels):
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        scores = self.vectors(labels) @ query[0]
        if len(labels) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            order = top[np.argsort(-scores[top], kind="stable")]
        else:
            order = np.argsort(-scores, kind="stable")
        return scores[order], labels[order]

    def _compact(self) -> None:
        live = self._live()
        logger.info("compacting HNSW index: %d live, %d dead entries", len(live), len(self._dead))
        fresh = self._spec.new_hnsw_index()
        if len(live):
            fresh.add_with_ids(self.vectors(live), live)
        self._index = fresh
        self._dead.clear()
        self._exclusion = None
