"""The data model of the layer, with no I/O of its own: what a change is, what a repository
declares, how rows become JSON and back, and what reads return.

Everything above this package (the ORM layer, the outbox, the backends) speaks these types.
"""

from __future__ import annotations

from satellites_repo.model.change import Change, ChangeSet, Operation
from satellites_repo.model.codec import RowCodec, json_bytes, json_safe
from satellites_repo.model.fields import Computed, Condition, FieldType, Row, Text
from satellites_repo.model.filters import Range
from satellites_repo.model.policies import (
    KEY_FIELD,
    ROW_VERSION_FIELD,
    CachePolicy,
    DenseVector,
    SearchIndex,
    Similarity,
    VectorEngine,
    VectorField,
)
from satellites_repo.model.related import Related, RelatedJoin
from satellites_repo.model.results import (
    AnyOf,
    HybridHit,
    Page,
    Query,
    RankedHit,
    RankedPage,
    SearchHit,
    SearchOptions,
    SearchPage,
    Suggestion,
    SuggestOptions,
    SuggestQuery,
    TextQuery,
    TextSearch,
    VectorHit,
    VectorQuery,
)
from satellites_repo.model.spec import EntitySpec, Registry
from satellites_repo.model.tenancy import (
    ALL_TENANTS,
    BYPASS,
    TENANT_COLUMN,
    TENANT_SETTING,
    AllTenants,
    Tenant,
    TenantScope,
    checked_tenant,
)
from satellites_repo.model.vector import Vector, as_float32_vector

__all__ = [
    "ALL_TENANTS",
    "BYPASS",
    "KEY_FIELD",
    "ROW_VERSION_FIELD",
    "TENANT_COLUMN",
    "TENANT_SETTING",
    "AllTenants",
    "AnyOf",
    "CachePolicy",
    "Change",
    "ChangeSet",
    "Computed",
    "Condition",
    "DenseVector",
    "EntitySpec",
    "FieldType",
    "HybridHit",
    "Operation",
    "Page",
    "Query",
    "Range",
    "RankedHit",
    "RankedPage",
    "Registry",
    "Related",
    "RelatedJoin",
    "Row",
    "RowCodec",
    "SearchHit",
    "SearchIndex",
    "SearchOptions",
    "SearchPage",
    "Similarity",
    "SuggestOptions",
    "SuggestQuery",
    "Suggestion",
    "Tenant",
    "TenantScope",
    "Text",
    "TextQuery",
    "TextSearch",
    "Vector",
    "VectorEngine",
    "VectorField",
    "VectorHit",
    "VectorQuery",
    "as_float32_vector",
    "checked_tenant",
    "json_bytes",
    "json_safe",
]
