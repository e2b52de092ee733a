"""Tenant scoping: the tenant a unit of work serves, and what confines a read to it.

A unit of work is opened for one tenant (``data.unit_of_work(tenant="acme")``) or, for
admin jobs and operations, explicitly for all of them (``tenant=ALL_TENANTS``). On a
tenant-scoped model (``TenantScoped``: a ``tenant_id`` column) a ``TenantScope`` is what the
repository adds to every read: the where-clause value, the filter every projection query
carries, the check of an entity found in the identity map or the cache.

``BYPASS`` (``*``) is the value of the Postgres setting ``satellites.tenant`` that the
row-level security policies let through; it is therefore no tenant's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from satellites_repo.errors import TenantError

__all__ = [
    "ALL_TENANTS",
    "BYPASS",
    "TENANT_COLUMN",
    "TENANT_SETTING",
    "AllTenants",
    "Tenant",
    "TenantScope",
    "checked_tenant",
]

TENANT_COLUMN: Final = "tenant_id"
"""The column ``TenantScoped`` adds, and the filter field every projection query carries."""

TENANT_SETTING: Final = "satellites.tenant"
"""The transaction-local Postgres setting the row-level security policies read."""

BYPASS: Final = "*"
"""``satellites.tenant`` for unscoped work: the library's own connections and ALL_TENANTS."""


class AllTenants:
    """The type of ``ALL_TENANTS``: a unit of work explicitly not confined to one tenant."""

    _instance: AllTenants | None = None

    def __new__(cls) -> AllTenants:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_TENANTS"


ALL_TENANTS: Final = AllTenants()
"""``data.unit_of_work(tenant=ALL_TENANTS)``: every tenant's rows, for admin jobs and ops."""

Tenant: TypeAlias = "str | AllTenants"


def checked_tenant(tenant: object) -> Tenant | None:
    """``tenant`` if it names a tenant (or is ``ALL_TENANTS`` or ``None``), else ``ValueError``."""
    if tenant is None or isinstance(tenant, AllTenants):
        return tenant
    if not isinstance(tenant, str) or not tenant.strip():
        raise ValueError(f"tenant must be a non-empty string or ALL_TENANTS, got {tenant!r}")
    if tenant == BYPASS:
        raise ValueError(f"{BYPASS!r} is reserved (the unscoped setting); pass ALL_TENANTS")
    return tenant


@dataclass(frozen=True, slots=True)
class TenantScope:
    """One tenant-scoped repository's confinement in one unit of work.

    ``tenant`` is ``None`` for ``ALL_TENANTS``: nothing is added, nothing is refused.
    """

    entity: str
    tenant: str | None

    def owns(self, entity: object) -> bool:
        """Whether an entity (from the identity map, the cache, a query) is this tenant's."""
        return self.tenant is None or getattr(entity, TENANT_COLUMN, None) == self.tenant

    def filters(self, filters: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """``filters`` and the tenant; a filter naming another tenant is refused.

        Refused rather than answered empty so that a caller who meant another tenant learns
        that a unit of work serves one tenant, instead of seeing an empty page.
        """
        if self.tenant is None:
            return filters
        given = (filters or {}).get(TENANT_COLUMN, self.tenant)
        if given != self.tenant:
            raise TenantError(
                f"{self.entity}: filter {TENANT_COLUMN}={given!r} names another tenant than "
                f"this unit of work's ({self.tenant!r}); open a unit of work for that tenant"
            )
        return {**(filters or {}), TENANT_COLUMN: self.tenant}

    def stamp(self, entity: object) -> None:
        """Give a new entity the tenant, or refuse one of another tenant (``TenantError``)."""
        current = getattr(entity, TENANT_COLUMN, None)
        if self.tenant is None:
            if current is None:
                raise TenantError(
                    f"{self.entity}: {TENANT_COLUMN} is not set and the unit of work serves "
                    "ALL_TENANTS; set the entity's tenant"
                )
            return
        if current is None:
            setattr(entity, TENANT_COLUMN, self.tenant)
            return
        if current != self.tenant:
            raise TenantError(
                f"{self.entity}: the entity belongs to tenant {current!r}, not to this unit of "
                f"work's tenant {self.tenant!r}"
            )
