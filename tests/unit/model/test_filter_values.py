"""Filter values are typed like their columns, the same for every ranker."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, Text, inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satellites_repo import AnyOf
from satellites_repo.model.codec import RowCodec


class _Model(DeclarativeBase):
    metadata = MetaData()


class Flagged(_Model):
    __tablename__ = "flagged"
    id: Mapped[int] = mapped_column(primary_key=True)
    open: Mapped[bool]
    priority: Mapped[int]
    tenant_id: Mapped[str]
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))


CODEC = RowCodec(inspect(Flagged))


@pytest.mark.parametrize(("given", "typed"), [("False", False), ("false", False), (True, True)])
def test_booleans_sent_as_text_become_booleans(given: object, typed: bool) -> None:
    assert CODEC.filter_values({"open": given}) == {"open": typed}


def test_numbers_and_any_of_are_typed_item_by_item() -> None:
    typed = CODEC.filter_values({"priority": "3", "tenant_id": AnyOf("acme", "beta")})
    assert typed == {"priority": 3, "tenant_id": AnyOf("acme", "beta")}
    assert isinstance(typed["tenant_id"], AnyOf)


def test_a_value_the_column_cannot_hold_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="filter 'open' of Flagged: 'maybe'"):
        CODEC.filter_values({"open": "maybe"})


def test_no_filters_stay_none_and_unknown_fields_pass_to_the_ranker() -> None:
    assert CODEC.filter_values(None) is None
    assert CODEC.filter_values({"nope": 1}) == {"nope": 1}


def test_a_value_on_an_array_column_is_an_item_to_match() -> None:
    assert CODEC.filter_values({"tags": "faq"}) == {"tags": "faq"}
