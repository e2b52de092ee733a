"""Fixtures for the vector index tests: a fresh index of each type in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from satellites_repo.vectors import VectorIndex

from ._support import DIMENSION


@pytest.fixture(params=["flat", "hnsw"])
def index_type(request: pytest.FixtureRequest) -> str:
    """Both index types: every behaviour but approximate recall must be the same."""
    kind: str = request.param
    return kind


@pytest.fixture
def index(tmp_path: Path, index_type: str) -> VectorIndex:
    """An empty index of ``DIMENSION`` dimensions, one per index type."""
    if index_type == "hnsw":
        return VectorIndex(tmp_path / "vectors", DIMENSION, index_type="hnsw")
    return VectorIndex(tmp_path / "vectors", DIMENSION)
