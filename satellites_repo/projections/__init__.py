"""Projections: the copies of committed rows kept in Redis, Elasticsearch and FAISS.

Each backend has one module behind the small ``Projection`` protocol; ``dispatch`` runs
them concurrently after a commit and reports, never raises, what failed.
"""

from __future__ import annotations

from satellites_repo.projections.base import Projection, ProjectionFailure
from satellites_repo.projections.dispatch import Dispatcher

__all__ = ["Dispatcher", "Projection", "ProjectionFailure"]
