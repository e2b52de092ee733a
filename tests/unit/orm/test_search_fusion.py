"""Reciprocal rank fusion is deterministic and rewards agreement."""

from __future__ import annotations

import pytest

from satellites_repo.orm.search import RRF_K, reciprocal_rank_fusion


def test_a_key_ranked_by_both_sources_wins() -> None:
    fused = reciprocal_rank_fusion(["a", "b", "c"], ["c", "d"])
    assert fused[0][0] == "c"
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))


def test_ties_break_on_the_key() -> None:
    assert [key for key, _ in reciprocal_rank_fusion(["b"], ["a"])] == ["a", "b"]


def test_empty_rankings_fuse_to_nothing() -> None:
    assert reciprocal_rank_fusion([], []) == []
