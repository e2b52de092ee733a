"""Vector columns read in Postgres's binary array form, decoded by numpy in one pass.

A rebuild reads every vector of a table. Read as ``real[]``, each element becomes a
Python float twice over (the driver's list, then ``Vector``'s own list): 384 objects per
row, most of a rebuild's CPU. ``array_send`` hands over the array's binary form instead,
one ``bytes`` value per row, and a batch of them is one numpy view: a 1-D ``real[]`` of
``d`` elements without NULLs is a 20-byte header (dimensions, flags, element type, size,
lower bound), then ``d`` pairs of a 4-byte length (always 4) and a big-endian float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import LargeBinary, func
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["packed", "unpacked"]

_HEADER_WORDS = 5
_FLOAT4_OID = 700
_BIG_ENDIAN_WORD = np.dtype(">i4")
_BIG_ENDIAN_FLOAT = np.dtype(">f4")

PackedRow = np.ndarray[Any, np.dtype[np.float32]] | list[float | None] | None
"""One decoded vector: a float32 row; a list when the array is unusual (NULL elements, other
dimensions), which the vector index then refuses by name; ``None`` for a NULL column."""


def packed(column: Any) -> ColumnElement[bytes]:
    """``column`` (a ``Vector``) as the bytes ``unpacked`` decodes."""
    result: ColumnElement[bytes] = func.array_send(column, type_=LargeBinary)
    return result


def unpacked(values: Sequence[bytes | None], dimension: int) -> list[PackedRow]:
    """Decode ``packed`` values: one float32 row each (views of one array), ``None`` kept.

    Well-formed values of ``dimension`` elements are decoded together; any other value is
    decoded alone into a list, so the caller's check names what is wrong with it.
    """
    size = 4 * (_HEADER_WORDS + 2 * dimension)
    regular = [p for p, value in enumerate(values) if value is not None and len(value) == size]
    rows: list[PackedRow] = [None] * len(values)
    if regular:
        joined = b"".join(values[p] or b"" for p in regular)
        words = np.frombuffer(joined, dtype=_BIG_ENDIAN_WORD).reshape(len(regular), -1)
        good = (
            (words[:, 0] == 1)
            & (words[:, 1] == 0)
            & (words[:, 2] == _FLOAT4_OID)
            & (words[:, 3] == dimension)
            & (words[:, _HEADER_WORDS::2] == 4).all(axis=1)
        )
        floats = np.frombuffer(joined, dtype=_BIG_ENDIAN_FLOAT).reshape(len(regular), -1)
        matrix = floats[:, _HEADER_WORDS + 1 :: 2].astype(np.float32)
        for row, (position, fine) in enumerate(zip(regular, good.tolist(), strict=True)):
            if fine:
                rows[position] = matrix[row]
    for position, value in enumerate(values):
        if value is not None and rows[position] is None:
            rows[position] = _odd(value)
    return rows


def _odd(value: bytes) -> list[float | None]:
    """Decode any 1-D ``real[]`` (NULL elements become ``None``); ``[]`` for anything else."""
    words = np.frombuffer(value, dtype=_BIG_ENDIAN_WORD)
    if len(words) < _HEADER_WORDS or words[0] != 1 or words[2] != _FLOAT4_OID:
        return []
    out: list[float | None] = []
    offset = 4 * _HEADER_WORDS
    for _ in range(int(words[3])):
        length = int(np.frombuffer(value, dtype=_BIG_ENDIAN_WORD, count=1, offset=offset)[0])
        offset += 4
        if length < 0:
            out.append(None)
            continue
        out.append(float(np.frombuffer(value, dtype=_BIG_ENDIAN_FLOAT, count=1, offset=offset)[0]))
        offset += length
    return out
