"""The data model of the layer, with no I/O of its own: what a change is, what a repository
declares, how rows become JSON and back, and what reads return.

Everything above this package (the ORM layer, the outbox, the backends) speaks these types.
"""

from __future__ import annotations

from satellites_repo.model.change import Change, ChangeSet, Operation
from satellites_repo.model.codec import RowCodec, json_bytes, json_safe
from satellites_repo.model.policies import (
    CachePolicy,
    DenseVector,
    FieldType,
    SearchIndex,
    Similarity,
    VectorEngine,
    VectorField,
)
from satellites_repo.model.results import (
    HybridHit,
    Page,
    Query,
    RankedHit,
    RankedPage,
    SearchHit,
    SearchOptions,
    SearchPage,
    TextQuery,
    TextSearch,
    VectorHit,
    VectorQuery,
)
from satellites_repo.model.spec import EntitySpec, Registry
from satellites_repo.model.vector import Vector, as_float32_vector

__all__ = [
    "CachePolicy",
    "Change",
    "ChangeSet",
    "DenseVector",
    "EntitySpec",
    "FieldType",
    "HybridHit",
    "Operation",
    "Page",
    "Query",
    "RankedHit",
    "RankedPage",
    "Registry",
    "RowCodec",
    "SearchHit",
    "SearchIndex",
    "SearchOptions",
    "SearchPage",
    "Similarity",
    "TextQuery",
    "TextSearch",
    "Vector",
    "VectorEngine",
    "VectorField",
    "VectorHit",
    "VectorQuery",
    "as_float32_vector",
    "json_bytes",
    "json_safe",
]
