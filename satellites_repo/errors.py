"""The library's errors, rooted at one base class.

Catch ``SatellitesError`` to handle anything the library raises on purpose::

    SatellitesError
    ├── ConfigurationError        bad or missing configuration (names the field)
    ├── StartupError              one or more backends could not be opened (names each one)
    ├── LifecycleError            a DataLayer used before start() or after stop()
    ├── RepositoryError           a repository call that cannot be carried out
    │   ├── NotFoundError         no row for the entity and key asked for
    │   ├── ConcurrencyError      a versioned update lost the race to another writer
    │   ├── ConflictError         Postgres refused a write: a constraint (names table, constraint)
    │   └── TenantError           a tenant-scoped call without a tenant, or across tenants
    ├── UnavailableError          a backend did not answer (names the backend)
    ├── ProjectionError           Redis, Elasticsearch or FAISS refused a projected change
    └── VectorIndexError          a FAISS snapshot on disk is corrupt or does not match

Driver errors (asyncpg, redis-py, elasticsearch-py, SQLAlchemy) are translated at the
boundary where they occur, always chained with ``raise ... from exc`` so the cause stays
visible. Invalid arguments (a vector of the wrong dimension, ``top_k <= 0``) raise
``ValueError`` like the standard library does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "LifecycleError",
    "NotFoundError",
    "ProjectionError",
    "Rejection",
    "RepositoryError",
    "SatellitesError",
    "StartupError",
    "TenantError",
    "UnavailableError",
    "VectorIndexError",
]


class SatellitesError(Exception):
    """Root of every error the library raises on purpose."""


class ConfigurationError(SatellitesError, ValueError):
    """The configuration is invalid; the message names the offending field.

    Also a ``ValueError``, as pydantic's ``ValidationError`` (which config sections raised
    before) is: code that caught a bad config value as ``ValueError`` keeps working.
    """


class StartupError(SatellitesError):
    """One or more backends failed to open; nothing that was opened is left open.

    ``failures`` maps each failing backend ("redis", "postgres", ...) to the reason.
    """

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures: dict[str, str] = dict(failures)
        reasons = "; ".join(f"{name}: {why}" for name, why in sorted(self.failures.items()))
        super().__init__(f"could not start {', '.join(sorted(self.failures))} ({reasons})")


class LifecycleError(SatellitesError, RuntimeError):
    """A component was used in the wrong lifecycle state (not started, or stopped)."""


class RepositoryError(SatellitesError):
    """A repository operation could not be carried out."""


class TenantError(RepositoryError):
    """A tenant-scoped repository used without a tenant, or given another tenant's entity."""


class NotFoundError(RepositoryError):
    """No row exists for the requested entity and key."""

    def __init__(self, entity: str, key: object) -> None:
        self.entity = entity
        self.key = key
        super().__init__(f"{entity} {key!s} not found")


class ConcurrencyError(RepositoryError):
    """A versioned update or delete found the row changed (or gone) since it was read."""


class ConflictError(RepositoryError):
    """Postgres refused a write because of a constraint (duplicate key, foreign key, check).

    ``table`` and ``constraint`` name what refused it, when the server said so.
    """

    def __init__(self, message: str, *, table: str | None, constraint: str | None) -> None:
        self.table = table
        self.constraint = constraint
        super().__init__(message)


class UnavailableError(SatellitesError):
    """A backend could not be reached or did not answer in time; ``backend`` names it."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(f"{backend} is unavailable: {message}")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a backend refused one row. ``permanent``: trying again cannot help (the row's
    content is at fault), so the row is dead-lettered at once instead of retried."""

    reason: str
    permanent: bool = True


class ProjectionError(SatellitesError):
    """A projection backend rejected or failed a change; the commit itself stands.

    ``rejected`` maps (table, key) of each row the backend refused to the reason: only
    those rows failed, every other row of the batch was applied. Empty, the whole batch
    failed (the backend did not answer, say) and every row is still owed.
    """

    def __init__(
        self,
        backend: str,
        message: str,
        *,
        rejected: Mapping[tuple[str, str], Rejection] | None = None,
    ) -> None:
        self.backend = backend
        self.rejected: dict[tuple[str, str], Rejection] = dict(rejected or {})
        super().__init__(f"{backend}: {message}")


class VectorIndexError(SatellitesError):
    """A FAISS snapshot on disk is corrupt, incomplete or made for another index."""
