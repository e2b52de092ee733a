"""Column types the library provides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import REAL
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["Vector", "as_float32_vector"]


def as_float32_vector(
    values: Sequence[float] | np.ndarray[Any, Any], dimension: int
) -> list[float]:
    """``values`` as float32 numbers, checked: right length, finite, not all zero.

    The values returned are exactly what Postgres stores (``real``), so the vector read
    back equals the vector indexed. Raises ``ValueError`` naming the problem.
    """
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dimension:
        raise ValueError(f"expected a vector of dimension {dimension}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("vector contains NaN or infinity")
    if not array.any():
        raise ValueError("vector is all zeros (cosine similarity is undefined)")
    result: list[float] = array.tolist()
    return result


class Vector(TypeDecorator[list[float]]):
    """A fixed-dimension float32 vector, stored in Postgres as ``real[]``.

    Postgres is the copy FAISS is rebuilt from, so the round trip is exact for float32
    values; the dimension, finiteness and a non-zero norm are checked on the way in.
    """

    impl = ARRAY(REAL(), dimensions=1)
    cache_ok = True

    def __init__(self, dimension: int) -> None:
        if dimension <= 0:
            raise ValueError(f"Vector dimension must be positive, got {dimension}")
        super().__init__()
        self.dimension = dimension

    def __repr__(self) -> str:
        return f"Vector({self.dimension})"

    @property
    def python_type(self) -> type[list[float]]:
        return list

    def process_bind_param(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        return as_float32_vector(value, self.dimension)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        return [float(number) for number in value]
