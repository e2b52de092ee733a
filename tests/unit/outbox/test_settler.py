"""Settlements of many commits merge into few statements."""

from __future__ import annotations

from satellites_repo.outbox.settler import _merged
from satellites_repo.outbox.store import Settlement


def test_fully_settled_rows_of_many_commits_merge() -> None:
    batches = [
        [Settlement((1, 2), (), None)],
        [Settlement((3,), (), None), Settlement((4,), ("elasticsearch",), "down", 1)],
        [Settlement((5,), (), None)],
    ]
    assert _merged(batches) == [
        Settlement((1, 2, 3, 5), (), None),
        Settlement((4,), ("elasticsearch",), "down", 1),
    ]


def test_nothing_settled_merges_to_nothing() -> None:
    assert _merged([[Settlement((7,), ("redis",), "x", 2)]]) == [
        Settlement((7,), ("redis",), "x", 2)
    ]
    assert _merged([]) == []
