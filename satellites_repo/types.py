"""The seams between the layers, as Protocols, and the aliases they share.

The ORM layer reads through ``CacheReader``, ``TextRanker`` and ``VectorRanker`` (found
per repository by ``Readers``) and commits through ``CommitHooks``; it never imports a
backend or the outbox. The outbox delivers to ``Backend`` objects and knows none by name.
Each protocol has its implementations in ``backends/`` and ``outbox/``, and recording or
failing fakes in ``satellites_repo.testing.fakes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, runtime_checkable

from satellites_repo.events import EventBus

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.events import DataEvent
    from satellites_repo.model import (
        Change,
        EntitySpec,
        RankedPage,
        Suggestion,
        SuggestQuery,
        TextQuery,
        VectorQuery,
    )

__all__ = [
    "ApplyChanges",
    "Backend",
    "BackendName",
    "CacheReader",
    "CommitHooks",
    "DriftProbe",
    "EventBus",
    "FillRow",
    "Held",
    "HybridRanker",
    "Json",
    "LocalBackend",
    "Progress",
    "Readers",
    "RowSource",
    "TextRanker",
    "VectorRanker",
]

Json: TypeAlias = dict[str, Any]
"""A JSON object as Python data (what payloads, documents and metadata are)."""

BackendName: TypeAlias = str
"""A backend's one name everywhere: config, outbox targets, ``--target``, health details."""

Progress: TypeAlias = Callable[[int], None]
"""Called with the number of rows done so far (rebuilds, verify)."""

ApplyChanges: TypeAlias = "Callable[[list[Change]], Awaitable[None]]"
"""Where a replay feeds the changes it reads."""

Held: TypeAlias = tuple[int, bytes | None]
"""What a projection holds for one key: its version and the digest of its content
(``None``: a tombstone, the marker a deleted row leaves)."""

FillRow: TypeAlias = tuple[str, int, bytes]
"""A row as a cache fill takes it from Postgres: its key, version and JSON body."""

TicketT = TypeVar("TicketT")


class CommitHooks(Protocol[TicketT]):
    """What a unit of work calls around COMMIT; the ticket carries state from before to after.

    ``before_commit`` runs inside the transaction after the last flush (the outbox rows go
    into it); ``commit_failed`` if COMMIT raised; ``after_commit`` once it succeeded, and
    it never raises: the commit stands whatever happens to its projections.
    """

    async def before_commit(
        self, session: AsyncSession, changes: Sequence[Change], emitted: Sequence[DataEvent]
    ) -> TicketT: ...

    async def commit_failed(self, ticket: TicketT) -> None: ...

    async def after_commit(self, ticket: TicketT) -> None: ...


class RowSource(Protocol):
    """Postgres as a rebuild reads it: rows streamed, and the outbox's changes since a point."""

    def changes(self, spec: EntitySpec, batch_size: int) -> AsyncIterator[list[Change]]: ...

    def rows(
        self, spec: EntitySpec, columns: Sequence[Any], batch_size: int
    ) -> AsyncIterator[Sequence[Row[Any]]]: ...

    async def position(self) -> int:
        """A point in the outbox: every change committed after it is replayed by ``replay``."""
        ...

    async def replay(self, spec: EntitySpec, since: int, apply: ApplyChanges) -> int:
        """Feed ``apply`` the changes of ``spec`` committed since ``since``; returns how many."""
        ...

    def exclusive(self, name: str) -> AbstractAsyncContextManager[None]:
        """Held by one holder of ``name`` at a time, across every process (waits its turn):
        what keeps two rebuilds of one projection from interleaving."""
        ...


class DriftProbe(Protocol):
    """One backend's view of one repository while ``verify`` compares it with Postgres.

    Content is compared as digests (``RowCodec.digest``) of what the backend should hold
    for a row and of what it holds, taken the same way on both sides.
    """

    def expected(self, row: Change) -> bytes | None:
        """The digest of what the backend should hold for ``row`` (as Postgres has it
        now); ``None`` when it should hold nothing (out of ``index_when``, no vector)."""
        ...

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        """What the backend holds for each row's key (``None``: nothing). A key left out
        is not drift (a cache need not hold every row)."""
        ...

    async def count(self) -> int | None:
        """How many live entries it holds, when it can tell cheaply (``None``: it cannot)."""
        ...

    def entries(
        self, sample: int | None, skip: Container[str]
    ) -> AsyncIterator[list[tuple[str, int]]]:
        """The (key, version) of the live entries it holds, but for the keys in ``skip``
        (rows already compared), in batches: every one, or about ``sample`` of them picked
        at random (how verify finds extras)."""
        ...


@runtime_checkable
class Backend(Protocol):
    """One projection backend: Redis, Elasticsearch, FAISS, or one you add.

    ``apply`` may see the same changes again (a retry, a replay, another relay): a change
    whose version is not newer than what the backend holds is skipped, so replays never
    move a projection backwards. ``shared``: one server for every instance (apply each
    change once); otherwise each process holds its own copy and follows the outbox itself.
    """

    @property
    def name(self) -> BackendName: ...

    @property
    def shared(self) -> bool: ...

    def covers(self, spec: EntitySpec) -> bool:
        """Whether this backend projects the repository's rows."""
        ...

    def columns_held(self, spec: EntitySpec) -> frozenset[str] | None:
        """The columns its projection of a covered repository's row is made of (``None``:
        every column). An update that changed none of them is not sent to it, so the
        version it holds for a row may be older than Postgres' while its content is the
        same (``verify`` compares such an entry's digest, not its version)."""
        ...

    async def open(self) -> None:
        """Connect and prepare (indices, snapshots); raises naming what is wrong."""
        ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """One round trip that proves the backend answers; raises if it does not."""
        ...

    async def apply(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in one batch; raise ``ProjectionError`` if any was not applied."""
        ...

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        """Rebuild the repository's projection from Postgres; returns the rows written."""
        ...

    def drift_probe(self, spec: EntitySpec) -> DriftProbe: ...


@runtime_checkable
class LocalBackend(Backend, Protocol):
    """A backend each process holds its own copy of (``shared`` is false): FAISS.

    Every instance applies every change to it by following the outbox; ``checkpoint`` is
    the outbox position its content reflects (``None``: unknown, rebuild from Postgres),
    and ``persist`` saves it with that position, so a restart resumes from there.
    """

    @property
    def checkpoint(self) -> int | None: ...

    @checkpoint.setter
    def checkpoint(self, value: int | None) -> None: ...

    @property
    def origin(self) -> str | None:
        """The database identity its content was built from (``None``: unknown); saved
        with the snapshot, so a snapshot of another database is never trusted."""
        ...

    @origin.setter
    def origin(self, value: str | None) -> None: ...

    @property
    def snapshot_interval(self) -> float | None:
        """Seconds between snapshots (``persist``) while running; ``None``: only at stop."""
        ...

    async def persist(self) -> None: ...


@runtime_checkable
class CacheReader(Protocol):
    """Read-through cache: cached row bodies by key, and filling it after a miss.

    ``tenant``: the one tenant whose rows are read or filled, required for a tenant-scoped
    model (its cache keys name the tenant).
    """

    async def cached(
        self, spec: EntitySpec, keys: Sequence[str], tenant: str | None = None
    ) -> dict[str, bytes]:
        """The JSON body of each live cached row (absent and deleted rows are left out).

        Raises ``UnavailableError`` if the cache does not answer in time.
        """
        ...

    async def fill(
        self, spec: EntitySpec, rows: Sequence[FillRow], read_at: float, tenant: str | None = None
    ) -> None:
        """Cache (key, version, JSON body) rows read from Postgres, each only if newer.

        ``read_at``: ``time.monotonic()`` when the SELECT that read them began. A fill too
        late to be sure a deleted row's tombstone still guards the key is dropped.
        """
        ...


@runtime_checkable
class TextRanker(Protocol):
    """Full-text ranking of a repository's rows, as keys; autocomplete as (key, text)."""

    async def rank(self, spec: EntitySpec, request: TextQuery) -> RankedPage: ...

    async def suggest(self, spec: EntitySpec, request: SuggestQuery) -> list[Suggestion]: ...


@runtime_checkable
class VectorRanker(Protocol):
    """Nearest neighbours of a vector among a repository's rows, as (key, score) pairs.

    ``holds_vectors``: whether this backend indexes the repository's vectors (the engine
    its ``VectorField`` names); a backend may cover a repository without holding them.
    """

    def holds_vectors(self, spec: EntitySpec) -> bool: ...

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]: ...


@runtime_checkable
class HybridRanker(Protocol):
    """A backend that ranks both by text and by vector, answering both in one round trip.

    Offered for a repository only when the same backend is its text and vector ranker.
    """

    async def rank_both(
        self, spec: EntitySpec, text: TextQuery, vector: VectorQuery
    ) -> tuple[RankedPage, list[tuple[str, float]]]: ...


class Readers(Protocol):
    """The readers serving one repository: each ``None`` when no backend offers it."""

    def cache(self, spec: EntitySpec) -> CacheReader | None: ...

    def text(self, spec: EntitySpec) -> TextRanker | None: ...

    def vectors(self, spec: EntitySpec) -> VectorRanker | None: ...

    def hybrid(self, spec: EntitySpec) -> HybridRanker | None:
        """Both rankings from one backend in one call, when one backend offers both."""
        ...
