"""The ORM layer: models, repositories and the unit of work.

It reads through the protocols of ``satellites_repo.types`` and commits through
``CommitHooks``; it imports no backend and no outbox module.
"""

from __future__ import annotations

from satellites_repo.orm.base import Base, SoftDelete, TenantScoped, Versioned
from satellites_repo.orm.repository import Repository
from satellites_repo.orm.search import BoundSearch
from satellites_repo.orm.unit_of_work import UnitOfWork, UnitOfWorkContext

__all__ = [
    "Base",
    "BoundSearch",
    "Repository",
    "SoftDelete",
    "TenantScoped",
    "UnitOfWork",
    "UnitOfWorkContext",
    "Versioned",
]
