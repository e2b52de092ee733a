"""The ORM layer: models, repositories, the unit of work and the ChangeSet."""

from __future__ import annotations

from satellites_repo.orm.base import Base, Versioned
from satellites_repo.orm.changeset import Change, ChangeSet, Operation
from satellites_repo.orm.pagination import Page
from satellites_repo.orm.policies import CachePolicy, SearchIndex, VectorField
from satellites_repo.orm.repository import Repository
from satellites_repo.orm.search import HybridHit, SearchHit, SearchPage, VectorHit
from satellites_repo.orm.types import Vector
from satellites_repo.orm.unit_of_work import UnitOfWork

__all__ = [
    "Base",
    "CachePolicy",
    "Change",
    "ChangeSet",
    "HybridHit",
    "Operation",
    "Page",
    "Repository",
    "SearchHit",
    "SearchIndex",
    "SearchPage",
    "UnitOfWork",
    "Vector",
    "VectorField",
    "VectorHit",
    "Versioned",
]
