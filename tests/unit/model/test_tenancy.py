"""Tenant scoping without servers: names, the filter that confines, stamping, declarations."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from satellites_repo import (
    ALL_TENANTS,
    AnyOf,
    ConfigurationError,
    Repository,
    SearchIndex,
    TenantError,
    TenantScoped,
    Vector,
    VectorField,
    Versioned,
)
from satellites_repo.migrate.tenancy import tenant_tables
from satellites_repo.model import TenantScope, checked_tenant
from satellites_repo.model.spec import Registry


class TenancyModel(DeclarativeBase):
    metadata = MetaData()


class Item(TenancyModel, Versioned, TenantScoped):
    __tablename__ = "tenancy_items"
    id: Mapped[str] = mapped_column(primary_key=True)
    title: Mapped[str]
    embedding: Mapped[list[float]] = mapped_column(Vector(4))


class Other(TenancyModel):
    __tablename__ = "tenancy_other"
    id: Mapped[int] = mapped_column(primary_key=True)


@pytest.mark.parametrize("bad", ["", "  ", "*", 3, ["acme"]])
def test_a_tenant_is_a_name(bad: object) -> None:
    with pytest.raises(ValueError, match=r"tenant|reserved"):
        checked_tenant(bad)


def test_the_scope_adds_its_tenant_and_refuses_another() -> None:
    scope = TenantScope("Item", "acme")
    assert scope.filters(None) == {"tenant_id": "acme"}
    assert scope.filters({"title": "x", "tenant_id": "acme"}) == {"title": "x", "tenant_id": "acme"}
    for other in ("globex", AnyOf("acme", "globex"), None):
        with pytest.raises(TenantError, match="names another tenant"):
            scope.filters({"tenant_id": other})
    assert TenantScope("Item", None).filters({"tenant_id": "x"}) == {"tenant_id": "x"}


def test_stamping_fills_the_tenant_and_refuses_another() -> None:
    scope = TenantScope("Item", "acme")
    item = Item(id="1", title="t")
    scope.stamp(item)
    assert item.tenant_id == "acme"
    with pytest.raises(TenantError, match="belongs to tenant 'globex'"):
        scope.stamp(Item(id="2", title="t", tenant_id="globex"))
    with pytest.raises(TenantError, match="set the entity's tenant"):
        TenantScope("Item", None).stamp(Item(id="3", title="t"))
    assert repr(ALL_TENANTS) == "ALL_TENANTS"


def test_the_search_index_gets_the_tenant_field_and_vectors_must_carry_it() -> None:
    class Items(Repository[Item]):
        search = SearchIndex("tenancy-items", fields={"title": "text"})
        vectors = VectorField("embedding", namespace="items", metadata=("tenant_id",))

    (spec,) = Registry([Items]).specs
    assert spec.tenant_scoped
    assert spec.search is not None
    assert spec.search.fields["tenant_id"] == "keyword"

    class Untagged(Repository[Item]):
        vectors = VectorField("embedding", namespace="items")

    with pytest.raises(ConfigurationError, match="must carry the tenant"):
        Registry([Untagged])


def test_only_tenant_scoped_tables_get_a_policy() -> None:
    assert [table.name for table in tenant_tables(TenancyModel.metadata)] == ["tenancy_items"]
