"""Vectors checked for use as cosine-similarity rows, normalised where they will live.

Checking happens before anything changes: wrong shape, NaN, infinity or an all-zero
row (whose cosine similarity is undefined) raises ``ValueError`` naming the row.
Normalising is left to the store, because the fastest place differs: a flat index
normalises the rows inside its own storage right after FAISS copied them in, so a
large batch is copied once instead of twice; an HNSW index needs them normalised
before the add, because it builds its graph from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from satellites_repo.vectors._types import FloatMatrix, VectorInput, VectorsInput
from satellites_repo.vectors._validation import check_length

__all__ = ["Rows", "checked_rows", "checked_vector", "normalized_query"]


@dataclass(frozen=True)
class Rows:
    """Valid float32 rows, not yet normalised.

    ``data`` may be the caller's own array: it is read, never written. ``exact`` holds
    the normalised value of the rare rows whose float32 sum of squares over- or
    underflows (huge or tiny components), computed in float64.
    """

    data: np.ndarray[Any, np.dtype[np.float32]]
    exact: dict[int, FloatMatrix] = field(default_factory=dict)

    def take(self, positions: Sequence[int]) -> Rows:
        """The rows at ``positions``, in that order."""
        where = {position: index for index, position in enumerate(positions)}
        exact = {where[p]: row for p, row in self.exact.items() if p in where}
        return Rows(np.ascontiguousarray(self.data[list(positions)]), exact)

    def normalize_copy(self, copy: FloatMatrix) -> None:
        """Normalise, in place, ``copy``: a copy of ``data`` (e.g. FAISS's own storage)."""
        faiss.normalize_L2(copy)  # multi-threaded
        for position, row in self.exact.items():
            copy[position] = row

    def normalized(self) -> FloatMatrix:
        """A normalised copy of ``data``."""
        copy: FloatMatrix = np.array(self.data, dtype=np.float32, copy=True)
        self.normalize_copy(copy)
        return copy


def checked_rows(vectors: VectorsInput, dimension: int, expected: int) -> Rows:
    """Check ``vectors`` has ``expected`` valid rows of ``dimension`` numbers."""
    array = _as_float32(vectors, "vectors")
    if array.size == 0 and expected == 0:
        return Rows(np.empty((0, dimension), dtype=np.float32))
    if array.ndim != 2 or array.shape[1] != dimension:
        raise ValueError(f"vectors must have shape (n, {dimension}), got {array.shape}")
    check_length("vectors", array, expected)
    return _checked(array, "vectors")


def checked_vector(vector: VectorInput, dimension: int) -> Rows:
    """Check ``vector`` is one valid row of ``dimension`` numbers."""
    array = _as_float32(vector, "vector")
    if array.shape != (dimension,):
        raise ValueError(f"vector must have {dimension} numbers, got shape {array.shape}")
    return _checked(array.reshape(1, dimension), "vector")


def normalized_query(vector: VectorInput, dimension: int) -> FloatMatrix:
    """Return ``vector`` checked and normalised, shape ``(1, dimension)``.

    Queries are latency-bound: a plain valid vector is normalised with two numpy
    calls; anything unusual takes the general path, which names the problem.
    """
    array = _as_float32(vector, "vector")
    if array.shape == (dimension,):
        squared = float(np.dot(array, array))
        if 0.0 < squared < math.inf:
            scaled = array / math.sqrt(squared)  # stays float32: Python floats are weak
            normalized: FloatMatrix = scaled.astype(np.float32, copy=False).reshape(1, -1)
            return normalized
    return checked_vector(vector, dimension).normalized()


def _as_float32(values: VectorInput | VectorsInput, where: str) -> np.ndarray[Any, Any]:
    if isinstance(values, np.ndarray) and values.dtype == np.float32:
        return np.ascontiguousarray(values)
    try:
        # Values beyond float32's range become inf here and are rejected by _checked.
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float32, order="C")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must contain only numbers ({exc})") from exc


def _checked(rows: np.ndarray[Any, np.dtype[np.float32]], where: str) -> Rows:
    squared = np.empty(len(rows), dtype=np.float32)
    # One multi-threaded pass (absent from faiss's bundled stubs, hence the ignore).
    faiss.fvec_norms_L2sqr(  # type: ignore[attr-defined]
        faiss.swig_ptr(squared), faiss.swig_ptr(rows), rows.shape[1], len(rows)
    )
    # NaN/inf, all zeros, or a float32 sum of squares that over/underflowed: rare
    # rows, checked (and if valid normalised) one by one in float64.
    suspect = np.flatnonzero(~np.isfinite(squared) | (squared == 0))
    exact = {int(p): _normalized_exactly(rows[p], f"{where}[{p}]") for p in suspect}
    return Rows(rows, exact)


def _normalized_exactly(row: np.ndarray[Any, Any], where: str) -> FloatMatrix:
    if not np.isfinite(row).all():
        raise ValueError(f"{where} contains NaN or infinity")
    wide = row.astype(np.float64)
    norm = float(np.linalg.norm(wide))
    if norm == 0.0:
        raise ValueError(f"{where} is all zeros: cosine similarity is undefined for it")
    exact: FloatMatrix = (wide / norm).astype(np.float32)
    return exact
