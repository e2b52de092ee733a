"""``SearchIndex(related=...)``: declarations checked against the models at start."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import DateTime, ForeignKey, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from satellites_repo import ConfigurationError, Related, Repository, SearchIndex, Versioned
from satellites_repo.model import Registry
from satellites_repo.outbox.related_capture import related_triggers


class RelatedUnitModel(DeclarativeBase):
    metadata = MetaData()


class Shop(RelatedUnitModel, Versioned):
    __tablename__ = "unit_shops"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    opened: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    open: Mapped[bool] = mapped_column(default=True)
    rating: Mapped[float] = mapped_column(default=0.0)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    orders: Mapped[list[Order]] = relationship(lazy="raise", back_populates="shop")


class Order(RelatedUnitModel, Versioned):
    __tablename__ = "unit_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str]
    shop_id: Mapped[int] = mapped_column(ForeignKey("unit_shops.id"))
    shop: Mapped[Shop] = relationship(lazy="raise", back_populates="orders")


def _orders(**related: Any) -> type[Repository[Order]]:
    class Orders(Repository[Order]):
        search = SearchIndex("orders", fields={"item": "text"}, related=related)

    return Orders


def _shops(**related: Any) -> type[Repository[Shop]]:
    class Shops(Repository[Shop]):
        search = SearchIndex("shops", fields={"name": "text"}, related=related)

    return Shops


def test_types_come_from_the_columns_or_the_declaration() -> None:
    (spec,) = Registry([_orders(shop=("name", "opened", "open", "rating", "id"))]).specs
    assert spec.search is not None
    kinds = spec.search.kinds
    assert {name: kinds[name] for name in kinds if name.startswith("shop.")} == {
        "shop.name": "keyword",
        "shop.opened": "date",
        "shop.open": "boolean",
        "shop.rating": "double",
        "shop.id": "long",
    }
    assert "shop.name" in spec.search.filter_fields
    (typed,) = Registry([_orders(shop={"name": "text"})]).specs
    assert typed.search is not None
    assert typed.search.text_fields == ["item", "shop.name"]
    mapping = typed.search.mappings()["properties"]
    assert mapping["shop"] == {"properties": {"name": {"type": "text"}}}


def test_a_one_to_many_relationship_needs_max_fanout() -> None:
    with pytest.raises(ConfigurationError, match=r"one-to-many.*max_fanout=N"):
        Registry([_shops(orders=("item",))])
    (spec,) = Registry([_shops(orders=Related(("item",), max_fanout=50))]).specs
    (join,) = spec.related
    assert (join.many, join.local, join.remote, join.max_fanout) == (True, "id", "shop_id", 50)


@pytest.mark.parametrize(
    ("related", "message"),
    [
        ({"nope": ("name",)}, "'nope' is not a relationship of Order"),
        ({"shop": ("nope",)}, "'nope', which is not a column of Shop"),
        ({"shop": ("extra",)}, "'extra' has no obvious search type"),
    ],
)
def test_what_does_not_fit_the_model_fails_naming_it(related: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Registry([_orders(**related)])


@pytest.mark.parametrize(
    ("related", "message"),
    [
        ({"shop": ()}, "at least one column"),
        ({"shop": ("a.b",)}, "plain column names"),
        ({"shop": 3}, "takes column names"),
        ({"item": ("name",)}, "both columns and related"),
    ],
)
def test_bad_declarations_fail_at_declaration(related: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchIndex("orders", fields={"item": "text"}, related=related)


def test_max_fanout_is_a_positive_number() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="positive"):
            Related(("name",), max_fanout=bad)


def test_the_triggers_watch_the_embedded_and_joining_columns() -> None:
    (spec,) = Registry([_orders(shop=("name",))]).specs
    (trigger,) = related_triggers(spec)
    assert trigger.table == "unit_shops"
    assert trigger.about == "unit_orders.shop"
    assert (
        "'dependents', 'unit_orders', 'id', 'id', 'shop_id', 'id', '{name,id}'"
        in (trigger.create[0])
    )
    (shops,) = Registry([_shops(orders=Related("item", max_fanout=5))]).specs
    (parents,) = related_triggers(shops)
    assert parents.table == "unit_orders"
    assert (
        "'parents', 'unit_shops', 'id', 'shop_id', '', 'id', '{item,shop_id}'"
        in (parents.create[0])
    )
