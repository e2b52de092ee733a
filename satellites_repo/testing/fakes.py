"""Recording and failing fakes behind the library's own protocols (httpx's MockTransport idea).

They let a unit test, the library's or an application's, exercise delivery, the relay and
the read path without servers, and see exactly what reached each seam:

``FakeBackend``
    A ``Backend`` (and ``LocalBackend``) that records every batch it applies; set
    ``failure`` to make every apply raise, or ``poison`` to refuse changes of some keys
    (each alone: the others are applied, as the real backends do).
``RecordingBus``
    An ``EventBus`` that records what was published; ``failure`` makes publishing raise.
``FakeCache``, ``FakeTextRanker``, ``FakeVectorRanker``, ``FakeReaders``
    The read-side protocols, answering from dictionaries and lists given to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo.errors import ProjectionError, Rejection, UnavailableError
from satellites_repo.events import DataEvent, EventHandler, InProcessEventBus
from satellites_repo.model import (
    Change,
    RankedHit,
    RankedPage,
    Suggestion,
    SuggestQuery,
    TextQuery,
    VectorQuery,
)

if TYPE_CHECKING:
    from satellites_repo.model import EntitySpec
    from satellites_repo.types import (
        CacheReader,
        FillRow,
        Held,
        HybridRanker,
        Progress,
        RowSource,
        TextRanker,
        VectorRanker,
    )

__all__ = [
    "FakeBackend",
    "FakeCache",
    "FakeReaders",
    "FakeTextRanker",
    "FakeVectorRanker",
    "RecordingBus",
]


class FakeBackend:
    """A backend that remembers what it was given: ``applied`` holds one list per batch.

    ``tables``: the tables it projects (all when empty). ``held`` is what it holds now, by
    (table, key): the latest version applied, or ``None`` once deleted.
    """

    def __init__(
        self,
        name: str,
        *,
        shared: bool = True,
        tables: Sequence[str] = (),
        columns: Sequence[str] | None = None,
    ) -> None:
        """``columns``: what ``columns_held`` says for every table (``None``: whole rows)."""
        self._name = name
        self._shared = shared
        self._tables = frozenset(tables)
        self._columns = None if columns is None else frozenset(columns)
        self.applied: list[list[Change]] = []
        self.held: dict[tuple[str, str], int | None] = {}
        self.failure: Exception | None = None
        self.poison: set[str] = set()
        self.opened = False
        self.checkpoint: int | None = None
        self.origin: str | None = None
        self.snapshot_interval: float | None = None
        self.persisted = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def shared(self) -> bool:
        return self._shared

    def covers(self, spec: EntitySpec) -> bool:
        return not self._tables or spec.table in self._tables

    def columns_held(self, spec: EntitySpec) -> frozenset[str] | None:
        return self._columns

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def check(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def apply(self, changes: Sequence[Change]) -> None:
        if self.failure is not None:
            raise self.failure
        accepted = [change for change in changes if change.key not in self.poison]
        self.applied.append(accepted)
        for change in accepted:
            slot = (change.table, change.key)
            if (self.held.get(slot) or 0) < change.version:
                self.held[slot] = None if change.operation.value == "deleted" else change.version
        refused = {(c.table, c.key): Rejection("poison") for c in changes if c not in accepted}
        if refused:
            raise ProjectionError(self._name, f"refused {sorted(refused)}", rejected=refused)

    @property
    def changes(self) -> list[Change]:
        """Every change applied so far, in order."""
        return [change for batch in self.applied for change in batch]

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        done = 0
        async for batch in source.changes(spec, 500):
            await self.apply(batch)
            done += len(batch)
            progress(done)
        return done

    async def persist(self) -> None:
        self.persisted += 1

    def drift_probe(self, spec: EntitySpec) -> _FakeProbe:
        return _FakeProbe(self, spec)


class _FakeProbe:
    """Holds versions only: its content is the version (an empty digest)."""

    def __init__(self, backend: FakeBackend, spec: EntitySpec) -> None:
        self._backend = backend
        self._table = spec.table

    def expected(self, row: Change) -> bytes:
        return b""

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        held = self._backend.held
        found = {row.key: held.get((self._table, row.key)) for row in rows}
        return {key: None if version is None else (version, b"") for key, version in found.items()}

    async def count(self) -> int:
        return len(self._mine())

    async def entries(
        self, sample: int | None, skip: Container[str]
    ) -> AsyncIterator[list[tuple[str, int]]]:
        yield [(key, version) for key, version in self._mine() if key not in skip][:sample]

    def _mine(self) -> list[tuple[str, int]]:
        return [
            (key, version)
            for (table, key), version in self._backend.held.items()
            if table == self._table and version is not None
        ]


class RecordingBus(InProcessEventBus):
    """The in-process bus, recording each published event; ``failure`` makes it raise."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[DataEvent] = []
        self.calls = 0
        self.failure: Exception | None = None

    async def publish_many(self, events: Sequence[DataEvent]) -> None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        self.published.extend(events)
        await super().publish_many(events)

    def subscribe_recorder(self) -> list[DataEvent]:
        """A list that every event delivered to handlers is appended to."""
        received: list[DataEvent] = []

        async def record(event: DataEvent) -> None:
            received.append(event)

        handler: EventHandler = record
        self.subscribe_all(handler)
        return received


@dataclass
class FakeCache:
    """A ``CacheReader`` over a dict of (table, key) -> JSON body; ``down`` makes it fail."""

    rows: dict[tuple[str, str], bytes] = field(default_factory=dict)
    filled: list[tuple[str, str, int]] = field(default_factory=list)
    down: bool = False
    reads: int = 0

    async def cached(
        self, spec: EntitySpec, keys: Sequence[str], tenant: str | None = None
    ) -> dict[str, bytes]:
        self.reads += 1
        if self.down:
            raise UnavailableError("fake cache", "down")
        return {key: self.rows[(spec.table, key)] for key in keys if (spec.table, key) in self.rows}

    async def fill(
        self, spec: EntitySpec, rows: Sequence[FillRow], read_at: float, tenant: str | None = None
    ) -> None:
        if self.down:
            raise UnavailableError("fake cache", "down")
        for key, version, body in rows:
            self.rows[(spec.table, key)] = body
            self.filled.append((spec.table, key, version))


@dataclass
class FakeTextRanker:
    """A ``TextRanker`` answering every query with ``keys`` (scores 1, 1/2, 1/3...).

    Its cursors are plain positions in ``keys``; ``suggest`` answers keys as their own text.
    """

    keys: list[str] = field(default_factory=list)
    queries: list[TextQuery] = field(default_factory=list)

    async def rank(self, spec: EntitySpec, request: TextQuery) -> RankedPage:
        self.queries.append(request)
        start = request.offset if request.after is None else int(request.after)
        end = start + request.limit
        page = self.keys[start:end]
        hits = [RankedHit(key, 1.0 / rank) for rank, key in enumerate(page, start=start + 1)]
        return RankedPage(hits, len(self.keys), {}, str(end) if end < len(self.keys) else None)

    async def suggest(self, spec: EntitySpec, request: SuggestQuery) -> list[Suggestion]:
        matching = [key for key in self.keys if key.startswith(request.prefix)]
        return [Suggestion(key, key, 1.0) for key in matching[: request.limit]]


@dataclass
class FakeVectorRanker:
    """A ``VectorRanker`` answering every vector with ``keys`` (scores 1, 0.9, 0.8...)."""

    keys: list[str] = field(default_factory=list)
    queries: list[VectorQuery] = field(default_factory=list)

    def holds_vectors(self, spec: EntitySpec) -> bool:
        return spec.vectors is not None

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]:
        self.queries.append(request)
        return [(key, 1.0 - 0.1 * rank) for rank, key in enumerate(self.keys[: request.k])]


@dataclass
class FakeReaders:
    """``Readers`` serving every repository with the fakes given (``None``: not offered)."""

    cache_reader: CacheReader | None = None
    text_ranker: TextRanker | None = None
    vector_ranker: VectorRanker | None = None

    def cache(self, spec: EntitySpec) -> CacheReader | None:
        return self.cache_reader if spec.cache is not None else None

    def text(self, spec: EntitySpec) -> TextRanker | None:
        return self.text_ranker if spec.search is not None else None

    def vectors(self, spec: EntitySpec) -> VectorRanker | None:
        return self.vector_ranker if spec.vectors is not None else None

    def hybrid(self, spec: EntitySpec) -> HybridRanker | None:
        """Never: the fakes rank text and vectors apart (two calls)."""
        return None
