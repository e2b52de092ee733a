"""Metadata filters: equality, membership, lists, AND, and full ``top_k`` under a filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from satellites_repo.vectors import VectorIndex

from ._support import DIMENSION, assert_consistent, random_vectors, unit


@pytest.fixture
async def tagged(index: VectorIndex) -> VectorIndex:
    await index.upsert_many(
        "docs",
        ["a", "b", "c", "d", "e"],
        [unit(1), unit(1, 0.1), unit(1, 0.2), unit(1, 0.3), unit(1, 0.4)],
        [
            {"tenant_id": "acme", "tag": ["red", "blue"], "n": 1},
            {"tenant_id": "acme", "tag": "green", "n": 2, "flag": True},
            {"tenant_id": "other", "tag": ["red"], "n": 1.0},
            {"tenant_id": "acme", "flag": 1},
            None,
        ],
    )
    return index


async def _ids(index: VectorIndex, query_filter: dict[str, object], top_k: int = 10) -> list[str]:
    return [hit.id for hit in await index.query("docs", unit(1), top_k, filter=query_filter)]


async def test_equality(tagged: VectorIndex) -> None:
    assert await _ids(tagged, {"tenant_id": "acme"}) == ["a", "b", "d"]
    assert await _ids(tagged, {"tenant_id": "nobody"}) == []
    assert await _ids(tagged, {"missing": "x"}) == []


async def test_membership_and_stored_lists(tagged: VectorIndex) -> None:
    assert await _ids(tagged, {"tag": "red"}) == ["a", "c"]
    assert await _ids(tagged, {"tag": ["green", "blue"]}) == ["a", "b"]
    assert await _ids(tagged, {"tag": []}) == []


async def test_keys_are_and_ed(tagged: VectorIndex) -> None:
    assert await _ids(tagged, {"tenant_id": "acme", "tag": "red"}) == ["a"]
    assert await _ids(tagged, {"tenant_id": ["acme", "other"], "n": 1}) == ["a", "c"]


async def test_booleans_do_not_match_numbers(tagged: VectorIndex) -> None:
    assert await _ids(tagged, {"flag": True}) == ["b"]
    assert await _ids(tagged, {"flag": 1}) == ["d"]
    assert await _ids(tagged, {"n": 1}) == ["a", "c"]  # 1 and 1.0 are one JSON number


async def test_empty_filter_means_no_filter(tagged: VectorIndex) -> None:
    assert len(await _ids(tagged, {})) == 5


async def test_filters_follow_replacements_and_deletes(tagged: VectorIndex) -> None:
    await tagged.upsert("docs", "a", unit(1), {"tenant_id": "other"})
    await tagged.delete("docs", "b")

    assert await _ids(tagged, {"tenant_id": "acme"}) == ["d"]
    assert await _ids(tagged, {"tenant_id": "other"}) == ["a", "c"]
    assert await _ids(tagged, {"tag": "red"}) == ["c"]
    assert_consistent(tagged, "docs")


async def test_filtered_query_still_returns_top_k(index: VectorIndex) -> None:
    """The nearest vectors do not match: a post-filter would return nothing."""
    near = [f"near-{i}" for i in range(200)]
    far = [f"far-{i}" for i in range(20)]
    await index.upsert_many(
        "ns", near, [unit(1, 0.01 * i) for i in range(200)], [{"kind": "near"}] * 200
    )
    await index.upsert_many(
        "ns", far, [unit(-1, 0.01 * i) for i in range(20)], [{"kind": "far"}] * 20
    )

    hits = await index.query("ns", unit(1), top_k=10, filter={"kind": "far"})

    assert [hit.id for hit in hits] == far[::-1][:10]  # the least opposite first


@pytest.mark.parametrize("matching", [5, 150])
async def test_hnsw_filter_matches_exact_search(tmp_path: Path, matching: int) -> None:
    """Few candidates are scored exactly; many go through the HNSW selector."""
    hnsw = VectorIndex(tmp_path / "hnsw", DIMENSION, index_type="hnsw", hnsw_ef_search=8)
    flat = VectorIndex(tmp_path / "flat", DIMENSION)
    rows = random_vectors(400)
    ids = [f"id-{i}" for i in range(400)]
    metadata = [{"group": "in" if i % (400 // matching) == 0 else "out"} for i in range(400)]
    for store in (hnsw, flat):
        await store.upsert_many("ns", ids, rows, metadata)

    query = np.ones(DIMENSION, dtype=np.float32)
    found = await hnsw.query("ns", query, top_k=5, filter={"group": "in"})
    exact = await flat.query("ns", query, top_k=5, filter={"group": "in"})

    assert len(found) == 5
    assert all(hit.metadata == {"group": "in"} for hit in found)
    overlap = {hit.id for hit in found} & {hit.id for hit in exact}
    assert len(overlap) >= (5 if matching <= 8 * 8 else 4)
