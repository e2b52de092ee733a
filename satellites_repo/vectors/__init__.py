"""FAISS vector store: cosine similarity per namespace, safe under concurrency, durable.

``VectorIndex`` is the entry point; ``VectorMatch`` and ``VectorRecord`` are the frozen
values it returns.
"""

from __future__ import annotations

from satellites_repo.vectors._records import VectorMatch, VectorRecord
from satellites_repo.vectors.index import VectorIndex

__all__ = ["VectorIndex", "VectorMatch", "VectorRecord"]
