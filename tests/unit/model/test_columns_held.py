"""What each projection is made of, and which updates leave it as it was."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import (
    CachePolicy,
    Computed,
    Condition,
    ConfigurationError,
    Repository,
    SearchIndex,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.model import FieldType, Operation
from satellites_repo.model.spec import Registry
from tests.unit.models import UnitModel, note_change


class Post(UnitModel, Versioned):
    __tablename__ = "unit_posts"
    id: Mapped[str] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    title: Mapped[str]
    body: Mapped[str]
    status: Mapped[str]
    views: Mapped[int]
    embedding: Mapped[list[float]] = mapped_column(Vector(3))


FIELDS: dict[str, FieldType] = {"title": "text", "tenant_id": "keyword"}
WORDS = Computed(lambda p: len(p.body.split()), type="integer", depends_on=("body",))


def spec_of(search: SearchIndex) -> Registry:
    class Posts(Repository[Post]):
        cache = CachePolicy()
        vectors = VectorField("embedding", namespace="posts", metadata=("tenant_id",))

    Posts.search = search
    return Registry([Posts])


def test_a_document_is_its_fields_the_computed_inputs_and_the_condition_inputs() -> None:
    search = SearchIndex(
        "posts",
        FIELDS,
        computed={"words": WORDS},
        index_when=Condition(lambda p: p.status != "spam", depends_on=("status",)),
    )
    assert search.columns == frozenset({"title", "tenant_id", "body", "status"})
    (spec,) = spec_of(search).specs
    assert spec.vector_columns == frozenset({"embedding", "tenant_id", "status"})


def test_a_plain_index_when_function_may_read_any_column() -> None:
    search = SearchIndex("posts", FIELDS, index_when=lambda p: p.status != "spam")
    assert search.columns is None
    (spec,) = spec_of(search).specs
    assert spec.vector_columns is None


def test_without_index_when_the_vectors_are_the_vector_and_its_metadata() -> None:
    (spec,) = spec_of(SearchIndex("posts", FIELDS)).specs
    assert spec.vector_columns == frozenset({"embedding", "tenant_id"})


def test_a_condition_on_an_unknown_column_fails_at_declaration() -> None:
    when = Condition(lambda p: p.deleted is None, depends_on=("deleted",))
    with pytest.raises(
        ConfigurationError, match=r"index_when depends on unknown columns \['deleted'\]"
    ):
        spec_of(SearchIndex("posts", FIELDS, index_when=when))


def test_a_condition_needs_its_inputs_and_a_function() -> None:
    with pytest.raises(ValueError, match="depends_on"):
        Condition(lambda p: True, depends_on=())
    with pytest.raises(ValueError, match="function"):
        Condition("status", depends_on=("status",))  # type: ignore[arg-type]


def test_only_an_update_of_known_other_columns_leaves_a_projection_alone() -> None:
    title = frozenset({"title", "tenant_id"})
    update = dataclasses.replace(
        note_change("a", 2, Operation.UPDATED), changed=frozenset({"views", "version"})
    )
    assert not update.affects(title)
    assert update.affects(None)  # a whole-row projection sees every change
    assert dataclasses.replace(update, changed=frozenset({"title"})).affects(title)
    assert dataclasses.replace(update, changed=None).affects(title)  # unknown: sent
    for operation in (Operation.CREATED, Operation.DELETED):
        assert dataclasses.replace(update, operation=operation).affects(title)
