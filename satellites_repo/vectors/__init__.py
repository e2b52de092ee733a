"""FAISS vector store: cosine similarity per namespace, safe under concurrency, durable.

``VectorIndex`` is the entry point; ``VectorMatch`` and ``VectorRecord`` are the frozen
values it returns. ``check_namespace`` and ``checked_vector`` are the one check of a
namespace name and of a vector, shared with the ORM layer so both refuse the same input.
"""

from __future__ import annotations

from satellites_repo.vectors._records import VectorMatch, VectorRecord
from satellites_repo.vectors._rows import checked_vector
from satellites_repo.vectors._validation import check_namespace
from satellites_repo.vectors.index import VectorIndex

__all__ = ["VectorIndex", "VectorMatch", "VectorRecord", "check_namespace", "checked_vector"]
