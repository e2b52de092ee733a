"""The frozen values the vector index hands back to callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["VectorMatch", "VectorRecord"]


@dataclass(frozen=True)
class VectorMatch:
    """One hit of a similarity query.

    ``score`` is the cosine similarity between the query and the stored vector (in
    ``[-1, 1]``, higher is closer). ``metadata`` is a copy of what was stored with the
    vector (``None`` if nothing was, ``{}`` if an empty mapping was); changing it does
    not change the index.
    """

    id: str
    score: float
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class VectorRecord:
    """Everything the index holds for one id, as returned by ``VectorIndex.get``.

    ``vector`` is the stored vector as a tuple of floats, which keeps the record
    immutable and comparable with ``==`` (a numpy array would be neither). It is the
    L2-normalised float32 vector the index searches, not the caller's original: the
    index measures cosine similarity only, so the original length is not kept.
    ``metadata`` is a copy (``None`` or a mapping, ``{}`` preserved). ``version`` is the
    version the vector was written with, ``None`` for an unversioned write.
    """

    id: str
    vector: tuple[float, ...]
    metadata: Mapping[str, Any] | None
    version: int | None
