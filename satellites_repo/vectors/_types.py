"""Type aliases shared by the vector index modules (no behaviour here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatMatrix",
    "IdArray",
    "IndexType",
    "JsonScalar",
    "MetadataValue",
    "StoredMetadata",
    "VectorInput",
    "VectorsInput",
]

IndexType: TypeAlias = Literal["flat", "hnsw"]

JsonScalar: TypeAlias = str | int | float | bool | None
MetadataValue: TypeAlias = JsonScalar | list[JsonScalar]
StoredMetadata: TypeAlias = dict[str, MetadataValue]
"""Metadata as the index keeps it: a private, validated copy of what the caller gave."""

VectorInput: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]
VectorsInput: TypeAlias = Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]]

FloatMatrix: TypeAlias = npt.NDArray[np.float32]
"""Rows of L2-normalised float32 vectors, C-contiguous, shape ``(n, dimension)``."""

IdArray: TypeAlias = npt.NDArray[np.int64]
"""FAISS labels: the int64 ids the index maps string ids to."""
