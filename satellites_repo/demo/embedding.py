"""Text embeddings for the knowledge base: a deterministic hashing embedder, no network.

``HashingEmbedder`` turns words and character 3-grams into signed counts in ``DIM``
buckets (the hashing trick) and L2-normalises the result, so texts that share words or
word pieces get a high cosine similarity. It needs nothing but numpy, gives the same
vector for the same text on every machine and in every process (blake2b, not Python's
salted ``hash``), and is fast enough to embed a thousand articles in well under a second.
It knows no synonyms, which is why a real model ranks better.

Plugging in a real model: anything with ``embed(texts) -> ndarray`` of shape
``(len(texts), DIM)`` satisfies ``Embedder``. For example, with sentence-transformers::

    from sentence_transformers import SentenceTransformer

    class SentenceEmbedder:
        def __init__(self, name: str = "all-MiniLM-L6-v2") -> None:  # 384 dimensions
            self._model = SentenceTransformer(name)

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return self._model.encode(list(texts), normalize_embeddings=True)

A model of another size needs ``Vector(n)`` on the model and ``FaissConfig(dimension=n)``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

__all__ = ["DIM", "Embedder", "HashingEmbedder"]

DIM = 384
"""The dimension of every article embedding (that of the common MiniLM sentence models)."""

_WORD = re.compile(r"[a-z0-9]+")
_TRIGRAM_WEIGHT = 0.5
"""Word pieces count half a word: they catch plurals and inflections, words carry topics."""


class Embedder(Protocol):
    """Turns texts into one unit-length float32 vector each, shape ``(len(texts), DIM)``."""

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]: ...


class HashingEmbedder:
    """Hashed bag of words and character 3-grams, signed, L2-normalised."""

    def __init__(self, dimension: int = DIM) -> None:
        if dimension <= 0:
            raise ValueError(f"dimension must be positive, got {dimension}")
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """One row per text. A text without words gets a fixed unit vector, never zeros."""
        matrix = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            self._accumulate(matrix[row], text)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        matrix[empty, 0] = 1.0
        norms[empty] = 1.0
        normalised: np.ndarray[Any, np.dtype[np.float32]] = matrix / norms
        return normalised

    def embed_one(self, text: str) -> list[float]:
        """The vector of one text as plain floats, ready for a ``Vector`` column."""
        vector: list[float] = self.embed([text])[0].tolist()
        return vector

    def _accumulate(self, row: np.ndarray[Any, np.dtype[np.float32]], text: str) -> None:
        for word in _WORD.findall(text.lower()):
            bucket, sign = _bucket(f"w:{word}", self.dimension)
            row[bucket] += sign
            padded = f"<{word}>"
            for start in range(len(padded) - 2):
                bucket, sign = _bucket(padded[start : start + 3], self.dimension)
                row[bucket] += sign * _TRIGRAM_WEIGHT


@lru_cache(maxsize=65536)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    """A stable bucket and sign for ``feature``; the sign keeps collisions from piling up."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dimension, 1.0 if digest >> 63 else -1.0
