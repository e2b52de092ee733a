"""Helpers shared by the vector index tests: data makers and an invariant check."""

from __future__ import annotations

import numpy as np

from satellites_repo.vectors import VectorIndex

DIMENSION = 8


def unit(*values: float) -> list[float]:
    """A vector of ``DIMENSION`` floats starting with ``values`` (the rest zeros)."""
    padded = [*values, *([0.0] * (DIMENSION - len(values)))]
    return [float(v) for v in padded]


def random_vectors(count: int, seed: int = 7, dimension: int = DIMENSION) -> np.ndarray:
    """Seeded random float32 rows."""
    return np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)


def normalized(vector: list[float] | np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1, as the index stores it."""
    array = np.asarray(vector, dtype=np.float64)
    return array / np.linalg.norm(array)


def assert_consistent(index: VectorIndex, namespace: str) -> None:
    """Check the namespace's maps, FAISS labels and metadata index agree (no dangling entry)."""
    state = index._namespaces[namespace]
    labels, ids = state._labels, state._ids
    assert {label: key for key, label in labels.items()} == ids
    dead = set(state._store.dead_labels)
    in_faiss = state._store.labels().tolist()
    assert len(in_faiss) == len(set(in_faiss))
    assert set(in_faiss) == set(ids) | dead
    assert not dead & set(ids)
    assert all(label < state._next_label for label in in_faiss)
    live = set(ids)
    held = {label for label in range(state._next_label) if state._metadata.get(label) is not None}
    assert held <= live
    for by_value in state._filters._postings.values():
        for posted in by_value.values():
            assert posted
            assert posted <= set(ids)
