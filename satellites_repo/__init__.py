"""satellites: Postgres as the truth; Redis, Elasticsearch and FAISS kept in step after commit.

Everything public is importable from here; ``__all__`` is the contract (a test checks it).
"""

from __future__ import annotations

from satellites_repo.config import (
    DataLayerConfig,
    ElasticsearchConfig,
    FaissConfig,
    OutboxConfig,
    PostgresConfig,
    RedisConfig,
    Secret,
)
from satellites_repo.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    LifecycleError,
    NotFoundError,
    ProjectionError,
    RepositoryError,
    SatellitesError,
    StartupError,
    TenantError,
    UnavailableError,
    VectorIndexError,
)
from satellites_repo.events import DataEvent, EventBus, EventHandler, InProcessEventBus
from satellites_repo.facade import DataLayer
from satellites_repo.health import BackendHealth, Health
from satellites_repo.model import (
    ALL_TENANTS,
    AnyOf,
    CachePolicy,
    Change,
    Computed,
    HybridHit,
    Operation,
    Page,
    Range,
    SearchHit,
    SearchIndex,
    SearchPage,
    Suggestion,
    Text,
    Vector,
    VectorField,
    VectorHit,
)
from satellites_repo.orm import Base, Repository, SoftDelete, TenantScoped, UnitOfWork, Versioned
from satellites_repo.vectors import VectorIndex, VectorMatch, VectorRecord

__all__ = [
    "ALL_TENANTS",
    "AnyOf",
    "BackendHealth",
    "Base",
    "CachePolicy",
    "Change",
    "Computed",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "DataEvent",
    "DataLayer",
    "DataLayerConfig",
    "ElasticsearchConfig",
    "EventBus",
    "EventHandler",
    "FaissConfig",
    "Health",
    "HybridHit",
    "InProcessEventBus",
    "LifecycleError",
    "NotFoundError",
    "Operation",
    "OutboxConfig",
    "Page",
    "PostgresConfig",
    "ProjectionError",
    "Range",
    "RedisConfig",
    "Repository",
    "RepositoryError",
    "SatellitesError",
    "SearchHit",
    "SearchIndex",
    "SearchPage",
    "Secret",
    "SoftDelete",
    "StartupError",
    "Suggestion",
    "TenantError",
    "TenantScoped",
    "Text",
    "UnavailableError",
    "UnitOfWork",
    "Vector",
    "VectorField",
    "VectorHit",
    "VectorIndex",
    "VectorIndexError",
    "VectorMatch",
    "VectorRecord",
    "Versioned",
]
