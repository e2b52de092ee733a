"""Column types the library provides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from sqlalchemy import REAL, BindParameter, ColumnElement, Text, cast, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from satellites_repo.vectors import checked_vector

__all__ = ["Vector", "as_float32_vector"]


def as_float32_vector(
    values: Sequence[float] | np.ndarray[Any, Any], dimension: int
) -> list[float]:
    """``values`` as float32 numbers, checked: right length, finite, not all zero.

    The check is the vector index's own (``checked_vector``), so what Postgres accepts
    FAISS accepts too. The values returned are exactly what Postgres stores (``real``),
    so the vector read back equals the vector indexed. Raises ``ValueError``.
    """
    result: list[float] = checked_vector(values, dimension).data[0].tolist()
    return result


def array_text(values: Sequence[float] | np.ndarray[Any, Any], dimension: int) -> str:
    """``values`` checked as ``as_float32_vector`` checks them, as Postgres array text.

    Each number is written as the shortest decimal that reads back as the same float32,
    so ``real[]`` holds exactly the checked values.
    """
    array = checked_vector(values, dimension).data[0]
    return "{" + orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode() + "}"


class _VectorText(TypeDecorator[list[float]]):
    """How a ``Vector`` value is sent: checked, as array text the server casts to
    ``real[]``. asyncpg's binary array encoder tests every element against an abstract
    base class, about 110 us per 384 floats; the text takes under 10 us to write."""

    impl = Text
    cache_ok = True

    def __init__(self, dimension: int) -> None:
        super().__init__()
        self.dimension = dimension

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else array_text(value, self.dimension)


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

    def bind_expression(self, bindvalue: BindParameter[list[float]]) -> ColumnElement[Any]:
        """Values go to Postgres as checked array text, cast there (see ``_VectorText``)."""
        return cast(type_coerce(bindvalue, _VectorText(self.dimension)), self.impl)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        return [float(number) for number in value]
