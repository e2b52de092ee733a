"""A transaction's captured rows fold per key as a ChangeSet folds flushes."""

from __future__ import annotations

import dataclasses

from satellites_repo.model import Operation
from satellites_repo.outbox.records import OutboxRecord
from satellites_repo.outbox.store import fold_captured
from tests.unit.models import note_change, outbox_record


def _row(seq: int, key: str, operation: Operation) -> OutboxRecord:
    return outbox_record(seq, note_change(key, seq, operation), "*")


def test_created_then_updated_is_one_created_row_at_the_latest_version() -> None:
    folded, superseded, rewritten = fold_captured(
        [_row(1, "a", Operation.CREATED), _row(2, "a", Operation.UPDATED)]
    )
    assert [(r.seq, r.operation, r.version) for r in folded] == [(2, "created", 2)]
    assert (superseded, rewritten) == ([1], [2])


def test_created_then_deleted_leaves_nothing() -> None:
    folded, superseded, rewritten = fold_captured(
        [
            _row(1, "a", Operation.CREATED),
            _row(2, "a", Operation.DELETED),
            _row(3, "b", Operation.UPDATED),
        ]
    )
    assert [r.key for r in folded] == ["b"]
    assert (sorted(superseded), rewritten) == ([1, 2], [])


def test_updated_then_deleted_is_deleted() -> None:
    folded, superseded, _ = fold_captured(
        [_row(1, "a", Operation.UPDATED), _row(2, "a", Operation.DELETED)]
    )
    assert [(r.seq, r.operation) for r in folded] == [(2, "deleted")]
    assert superseded == [1]


def test_two_updates_fold_into_one_whose_changed_columns_are_unknown() -> None:
    first = dataclasses.replace(_row(1, "a", Operation.UPDATED), changed=frozenset({"title"}))
    second = dataclasses.replace(_row(2, "a", Operation.UPDATED), changed=frozenset({"views"}))
    folded, superseded, rewritten = fold_captured([first, second])
    assert [(r.seq, r.operation, r.changed) for r in folded] == [(2, "updated", None)]
    assert (superseded, rewritten) == ([1], [2])
    change = folded[0].change
    assert change is not None
    assert change.affects(frozenset({"body"}))
