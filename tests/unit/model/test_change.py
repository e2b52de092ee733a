"""Several flushes of one transaction fold into one change per entity."""

from __future__ import annotations

import pytest

from satellites_repo.model.change import Change, ChangeSet, Operation
from satellites_repo.model.spec import Registry


def change(operation: Operation, version: int, key: str = "1", title: str = "t") -> Change:
    return Change("docs", key, operation, version, {"id": key, "title": title})


@pytest.fixture
def changes() -> ChangeSet:
    return ChangeSet(Registry([], dimension=4))


def test_created_then_updated_stays_created_with_the_latest_values(changes: ChangeSet) -> None:
    changes._fold(change(Operation.CREATED, 1, title="a"))
    changes._fold(change(Operation.UPDATED, 2, title="b"))
    assert list(changes) == [change(Operation.CREATED, 2, title="b")]


def test_created_then_deleted_leaves_nothing(changes: ChangeSet) -> None:
    changes._fold(change(Operation.CREATED, 1))
    changes._fold(change(Operation.DELETED, 2))
    assert list(changes) == []
    assert not changes


def test_updated_then_deleted_is_deleted(changes: ChangeSet) -> None:
    changes._fold(change(Operation.UPDATED, 2))
    changes._fold(change(Operation.DELETED, 3))
    assert [(c.operation, c.version) for c in changes] == [(Operation.DELETED, 3)]


def test_order_of_first_touch_is_kept(changes: ChangeSet) -> None:
    changes._fold(change(Operation.CREATED, 1, key="a"))
    changes._fold(change(Operation.CREATED, 1, key="b"))
    changes._fold(change(Operation.UPDATED, 2, key="a"))
    assert [c.key for c in changes] == ["a", "b"]
    assert changes.touches("docs", "a")
    assert not changes.touches("docs", "c")


def test_the_automatic_event_describes_the_change() -> None:
    event = change(Operation.UPDATED, 4, key="42").event()
    assert (event.type, event.resource, event.key, event.source, event.version) == (
        "docs.updated",
        "docs",
        "42",
        "postgres",
        4,
    )
    assert event.payload == {"id": "42", "title": "t"}
    assert change(Operation.DELETED, 5).event("stable-id").id == "stable-id"
