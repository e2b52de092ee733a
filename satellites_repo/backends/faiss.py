"""The FAISS backend: this process's vectors of committed rows, with per-id versions.

FAISS lives in each process (``shared`` is false), so unlike Redis and Elasticsearch
every instance applies every vector change to its own index, following the outbox from
the position its snapshot records. Versions make that safe to repeat: the index ignores
an upsert or delete whose version is not newer than the one it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satellites_repo.backends._isolation import bisected, rejected_error
from satellites_repo.errors import ProjectionError, Rejection, VectorIndexError
from satellites_repo.model import AnyOf, Change, Operation, json_safe
from satellites_repo.vectors import VectorIndex

if TYPE_CHECKING:
    from satellites_repo.config import FaissConfig
    from satellites_repo.model import EntitySpec, Registry, VectorField, VectorQuery
    from satellites_repo.types import AbsentKeys, Progress, RowSource

__all__ = ["FaissBackend"]

logger = logging.getLogger(__name__)

REBUILD_BATCH = 2000


@dataclass(frozen=True, slots=True)
class _Upsert:
    change: Change
    vector: Sequence[float]
    metadata: dict[str, Any]


class _NamespaceBatch:
    """The upserts and deletes of one batch for one namespace."""

    def __init__(self) -> None:
        self.upserts: list[_Upsert] = []
        self.deletes: list[Change] = []

    def add(self, spec: EntitySpec, change: Change) -> None:
        field = spec.vectors
        assert field is not None
        vector = change.payload.get(field.column)
        if vector is None or not spec.indexed(change):  # deleted, or out of ``index_when``
            self.deletes.append(change)
            return
        metadata = {name: change.payload.get(name) for name in field.metadata}
        self.upserts.append(_Upsert(change, vector, metadata))


class FaissBackend:
    """Applies vector changes to this process's ``VectorIndex`` and ranks by similarity."""

    name = "faiss"
    shared = False

    def __init__(self, config: FaissConfig, registry: Registry, dimension: int) -> None:
        self._registry = registry
        self.index = VectorIndex(
            config.index_path,
            dimension,
            index_type=config.index_type,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
        )

    def covers(self, spec: EntitySpec) -> bool:
        return spec.vectors is not None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Load the snapshot; a corrupt one is reported, and the index rebuilt from Postgres."""
        try:
            await self.index.load()
        except VectorIndexError as exc:
            logger.warning("FAISS snapshot unusable (%s); rebuilding from Postgres", exc)
            self.index.checkpoint = None

    async def close(self) -> None:
        """Nothing to release: the index is memory. ``persist`` before, to keep it."""

    async def check(self) -> None:
        await self.index.namespaces()

    @property
    def checkpoint(self) -> int | None:
        return self.index.checkpoint

    @checkpoint.setter
    def checkpoint(self, value: int | None) -> None:
        self.index.checkpoint = value

    @property
    def origin(self) -> str | None:
        return self.index.origin

    @origin.setter
    def origin(self, value: str | None) -> None:
        self.index.origin = value

    async def persist(self) -> None:
        """Save a snapshot with its checkpoint, so a restart resumes instead of rebuilding."""
        if await self.index.namespaces():
            await self.index.save()

    # -- writes --------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Apply per namespace; a row FAISS refuses (an empty id, a NaN vector) is reported
        alone in ``ProjectionError.rejected``, its neighbours are applied."""
        batches: dict[str, _NamespaceBatch] = {}
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.vectors is None:
                continue
            batches.setdefault(spec.vectors.namespace, _NamespaceBatch()).add(spec, change)
        refused: list[tuple[Change, Rejection]] = []
        for namespace, batch in batches.items():
            try:
                refused += await self._apply_batch(namespace, batch)
            except RuntimeError as exc:
                raise ProjectionError(self.name, f"namespace {namespace!r}: {exc}") from exc
        error = rejected_error(self.name, "vector(s)", refused)
        if error is not None:
            raise error

    async def _apply_batch(
        self, namespace: str, batch: _NamespaceBatch
    ) -> list[tuple[Change, Rejection]]:
        async def upsert(items: Sequence[_Upsert]) -> list[tuple[_Upsert, Rejection]]:
            await self.index.upsert_many(
                namespace,
                [item.change.key for item in items],
                [item.vector for item in items],
                [item.metadata for item in items],
                versions=[item.change.version for item in items],
            )
            return []

        async def delete(items: Sequence[Change]) -> list[tuple[Change, Rejection]]:
            keys = [change.key for change in items]
            await self.index.delete_many(
                namespace, keys, versions=[change.version for change in items]
            )
            return []

        refused = [
            (item.change, why) for item, why in await bisected(batch.upserts, upsert, _refusal)
        ]
        return refused + await bisected(batch.deletes, delete, _refusal)

    # -- VectorRanker --------------------------------------------------------------------

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]:
        field = spec.vectors
        assert field is not None
        matches = await self.index.query(
            field.namespace,
            request.vector,
            top_k=request.k,
            filter=_filters(field, request.filters),
        )
        return [(match.id, match.score) for match in matches]

    # -- operations ----------------------------------------------------------------------

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        """Reload the namespace from Postgres, streaming (key, version, vector, metadata)."""
        field = spec.vectors
        assert field is not None
        await self.index.drop(field.namespace)
        if spec.search is not None and spec.search.index_when is not None:
            return await self._rebuild_matching(spec, source, progress)
        model = spec.model
        vector_column = getattr(model, field.column)
        columns = [getattr(model, spec.codec.primary_key), model.version, vector_column]
        columns += [getattr(model, name) for name in field.metadata]
        loaded = 0
        async for rows in source.rows(spec, columns, REBUILD_BATCH):
            batch = _NamespaceBatch()
            batch.upserts = [
                _Upsert(
                    Change(spec.table, str(row[0]), Operation.CREATED, row[1], {}),
                    row[2],
                    _metadata(field.metadata, row[3:]),
                )
                for row in rows
                if row[2] is not None
            ]
            loaded += await self._load(spec, batch)
            progress(loaded)
        return loaded

    async def _load(self, spec: EntitySpec, batch: _NamespaceBatch) -> int:
        """A rebuild's batch; a row FAISS refuses is left out and said, never fails a start."""
        assert spec.vectors is not None
        refused = await self._apply_batch(spec.vectors.namespace, batch)
        for change, why in refused:
            logger.error("%s %r left out of FAISS: %s", spec.name, change.key, why.reason)
        return len(batch.upserts) - len(refused)

    async def _rebuild_matching(
        self, spec: EntitySpec, source: RowSource, progress: Progress
    ) -> int:
        """The rebuild of a namespace filtered by ``index_when``, a predicate on whole rows."""
        assert spec.vectors is not None
        loaded = 0
        async for changes in source.changes(spec, REBUILD_BATCH):
            batch = _NamespaceBatch()
            for change in changes:
                batch.add(spec, change)
            batch.deletes = []  # the namespace is empty
            loaded += await self._load(spec, batch)
            progress(loaded)
        return loaded

    def drift_probe(self, spec: EntitySpec) -> _VectorProbe:
        return _VectorProbe(self.index, spec)


class _VectorProbe:
    """Reads the namespace's versions once (one thread hop), not once per batch."""

    def __init__(self, index: VectorIndex, spec: EntitySpec) -> None:
        assert spec.vectors is not None
        self._index = index
        self._namespace = spec.vectors.namespace
        self._versions: dict[str, int | None] | None = None
        self._seen: set[str] = set()

    async def held(self, keys: Sequence[str]) -> Mapping[str, int | None]:
        if self._versions is None:
            self._versions = await self._index.versions(self._namespace)
        self._seen.update(keys)
        versions = self._versions
        return {key: (versions[key] or 0) if key in versions else None for key in keys}

    async def extras(self, expected: int, absent: AbsentKeys) -> dict[str, int]:
        if self._versions is None:
            self._versions = await self._index.versions(self._namespace)
        return {
            key: version or 0 for key, version in self._versions.items() if key not in self._seen
        }


def _refusal(exc: Exception) -> Rejection | None:
    """FAISS refuses a row's content with ``ValueError`` (bad id, vector or metadata)."""
    return Rejection(str(exc)) if isinstance(exc, ValueError) else None


def _filters(field: VectorField, filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    unknown = sorted(set(filters) - set(field.metadata))
    if unknown:
        raise ValueError(
            f"cannot filter vectors of {field.namespace!r} on {unknown}; "
            f"filterable metadata is {list(field.metadata)}"
        )
    return {
        name: list(value) if isinstance(value, AnyOf) else value for name, value in filters.items()
    }


def _metadata(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Metadata as the fast path stores it (the JSON-safe payload's values)."""
    return {name: json_safe(value) for name, value in zip(names, values, strict=True)}
