"""Synthetic, seeded rows shared by the library side and the hand-written baselines.

Both sides of every comparison start from the same plain ``Row`` values, generated
before any clock starts: turning them into entities (the library) or into tuples, JSON
and documents (the baselines) is part of what each side is timed for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from _model import DIMENSION

__all__ = ["TENANTS", "Row", "RowFactory"]

TENANTS = tuple(f"tenant-{n:02d}" for n in range(10))
_SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "pe", "da", "zu", "fi", "go", "he")
_VOCABULARY = tuple(a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("n", "r", "s"))
_TITLE_WORDS = 5
_BODY_WORDS = 40


@dataclass(frozen=True, slots=True)
class Row:
    """One article as plain data; the embedding is float32-exact Python floats."""

    id: uuid.UUID
    tenant_id: str
    title: str
    body: str
    embedding: list[float]

    def document(self) -> dict[str, Any]:
        """What Elasticsearch indexes (the ``SearchIndex`` fields)."""
        return {"title": self.title, "body": self.body, "tenant_id": self.tenant_id}

    def as_json(self, version: int) -> dict[str, Any]:
        """The whole row as JSON-safe data, as a hand-written cache would store it."""
        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "title": self.title,
            "body": self.body,
            "embedding": self.embedding,
            "version": version,
        }


class RowFactory:
    """Makes rows and query inputs from one seeded random generator."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def rows(self, count: int) -> list[Row]:
        vectors = self._rng.standard_normal((count, DIMENSION), dtype=np.float32).tolist()
        words = self._rng.integers(0, len(_VOCABULARY), size=(count, _TITLE_WORDS + _BODY_WORDS))
        tenants = self._rng.integers(0, len(TENANTS), size=count)
        return [
            Row(
                id=uuid.UUID(bytes=self._rng.bytes(16), version=4),
                tenant_id=TENANTS[int(tenants[i])],
                title=self._text(words[i, :_TITLE_WORDS]),
                body=self._text(words[i, _TITLE_WORDS:]),
                embedding=vectors[i],
            )
            for i in range(count)
        ]

    def vector(self) -> list[float]:
        result: list[float] = self._rng.standard_normal(DIMENSION, dtype=np.float32).tolist()
        return result

    def word(self) -> str:
        return _VOCABULARY[int(self._rng.integers(0, len(_VOCABULARY)))]

    def tenant(self) -> str:
        return TENANTS[int(self._rng.integers(0, len(TENANTS)))]

    def sample(self, population: list[Any], count: int) -> list[Any]:
        """``count`` distinct items (with repeats only if the population is smaller)."""
        replace = count > len(population)
        picks = self._rng.choice(len(population), size=count, replace=replace)
        return [population[int(i)] for i in picks]

    @staticmethod
    def _text(indices: np.ndarray[Any, Any]) -> str:
        return " ".join(_VOCABULARY[int(i)] for i in indices)
