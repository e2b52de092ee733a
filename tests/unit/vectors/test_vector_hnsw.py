"""HNSW specifics: deleted labels stay out of results, compaction, approximate recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from satellites_repo.vectors import VectorIndex
from satellites_repo.vectors._stores import HnswStore

from ._support import DIMENSION, assert_consistent, random_vectors


@pytest.fixture
async def hnsw(tmp_path: Path) -> VectorIndex:
    index = VectorIndex(tmp_path, DIMENSION, index_type="hnsw")
    await index.upsert_many("ns", [f"id-{i}" for i in range(100)], random_vectors(100))
    return index


def _faiss_total(index: VectorIndex) -> int:
    total: int = index._namespaces["ns"]._store._index.ntotal
    return total


async def test_deleted_ids_are_excluded_before_compaction(hnsw: VectorIndex) -> None:
    deleted = [f"id-{i}" for i in range(0, 100, 5)]  # 20%: below the compaction threshold

    assert await hnsw.delete_many("ns", deleted) == [True] * 20

    assert _faiss_total(hnsw) == 100  # still in the graph, excluded from searches
    for row in random_vectors(10, seed=99):
        hits = await hnsw.query("ns", row, top_k=100)
        assert len(hits) == 80
        assert not {hit.id for hit in hits} & set(deleted)
    assert_consistent(hnsw, "ns")


async def test_compaction_rebuilds_once_too_many_are_dead(hnsw: VectorIndex) -> None:
    survivors_before = {
        key: await hnsw.get("ns", key) for key in (f"id-{i}" for i in range(30, 100))
    }

    await hnsw.delete_many("ns", [f"id-{i}" for i in range(30)])

    assert _faiss_total(hnsw) == 70
    assert hnsw._namespaces["ns"]._store.dead_labels == []
    assert {key: await hnsw.get("ns", key) for key in survivors_before} == survivors_before
    hits = await hnsw.query("ns", random_vectors(1, seed=5)[0], top_k=100)
    assert {hit.id for hit in hits} == set(survivors_before)
    assert_consistent(hnsw, "ns")


async def test_replacements_retire_old_entries_and_compact(hnsw: VectorIndex) -> None:
    ids = [f"id-{i}" for i in range(100)]
    for round_ in range(3):
        await hnsw.upsert_many("ns", ids[:20], random_vectors(20, seed=round_))
        assert_consistent(hnsw, "ns")

    assert await hnsw.count("ns") == 100
    assert _faiss_total(hnsw) <= 125  # compacted whenever dead entries passed 25%
    latest = random_vectors(20, seed=2)
    for key, row in zip(ids[:20], latest, strict=True):
        hits = await hnsw.query("ns", row, top_k=1)
        assert hits[0].id == key
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_recall_against_exact_search(tmp_path: Path) -> None:
    rows = random_vectors(1000, seed=3, dimension=16)
    ids = [f"id-{i}" for i in range(1000)]
    hnsw = VectorIndex(tmp_path / "h", 16, index_type="hnsw")
    flat = VectorIndex(tmp_path / "f", 16)
    await hnsw.upsert_many("ns", ids, rows)
    await flat.upsert_many("ns", ids, rows)

    found = 0
    for query in random_vectors(20, seed=4, dimension=16):
        approximate = {hit.id for hit in await hnsw.query("ns", query, top_k=10)}
        exact = {hit.id for hit in await flat.query("ns", query, top_k=10)}
        found += len(approximate & exact)

    assert found / 200 >= 0.9


async def test_hnsw_snapshot_keeps_dead_entries_and_labels(hnsw: VectorIndex) -> None:
    await hnsw.delete_many("ns", ["id-1", "id-2"])
    await hnsw.save()

    loaded = VectorIndex(hnsw.index_path, DIMENSION, index_type="hnsw", hnsw_ef_search=64)
    await loaded.load()

    assert loaded._namespaces["ns"]._store.dead_labels == [1, 2]
    assert _faiss_total(loaded) == 100
    assert loaded._namespaces["ns"]._next_label == 100
    hits = await loaded.query("ns", np.ones(DIMENSION, dtype=np.float32), top_k=100)
    assert len(hits) == 98
    assert_consistent(loaded, "ns")


async def test_short_graph_walk_falls_back_to_exact_scoring(
    hnsw: VectorIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the walk finds fewer hits than exist, the live vectors are scored exactly."""
    await hnsw.delete_many("ns", ["id-0", "id-1"])
    flat = VectorIndex(tmp_path / "flat", DIMENSION)
    await flat.upsert_many("ns", [f"id-{i}" for i in range(2, 100)], random_vectors(100)[2:])

    def nothing_found(*_: object) -> tuple[np.ndarray, np.ndarray]:
        return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)

    monkeypatch.setattr(HnswStore, "_search", nothing_found)
    query = random_vectors(1, seed=8)[0]
    found = await hnsw.query("ns", query, top_k=7)

    expected = await flat.query("ns", query, top_k=7)
    assert [hit.id for hit in found] == [hit.id for hit in expected]
    assert [hit.score for hit in found] == pytest.approx([hit.score for hit in expected])
