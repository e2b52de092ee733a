"""The FAISS backend: this process's vectors of committed rows, with per-id versions.

FAISS lives in each process (``shared`` is false), so unlike Redis and Elasticsearch
every instance applies every vector change to its own index, following the outbox from
the position its snapshot records. Versions make that safe to repeat: the index ignores
an upsert or delete whose version is not newer than the one it holds.

With ``faiss.snapshot_url`` set, snapshots are also stored in S3 (``s3_snapshots``) and a
new instance starts from the newest good one there, so it only follows the outbox from
that snapshot's position instead of rebuilding from Postgres.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Container, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from satellites_repo.backends._isolation import bisected, rejected_error
from satellites_repo.errors import ConfigurationError, ProjectionError, Rejection, VectorIndexError
from satellites_repo.model import Change, Operation, json_safe
from satellites_repo.model.codec import digest_of, float32_digest
from satellites_repo.model.packed import packed, unpacked
from satellites_repo.vectors import VectorIndex, checked_vector

if TYPE_CHECKING:
    from satellites_repo.backends.s3_snapshots import S3Snapshots
    from satellites_repo.config import FaissConfig, PostgresConfig
    from satellites_repo.model import EntitySpec, Registry, VectorQuery
    from satellites_repo.types import Held, Progress, RowSource

__all__ = ["FaissBackend"]

logger = logging.getLogger(__name__)

REBUILD_BATCH = 2000


@dataclass(frozen=True, slots=True)
class _Upsert:
    change: Change
    vector: Sequence[float | None] | np.ndarray[Any, Any]
    metadata: dict[str, Any]


class _NamespaceBatch:
    """The upserts and deletes of one batch for one namespace; ``rewrites`` are a repair's
    upserts, which may replace a vector at its own version."""

    def __init__(self) -> None:
        self.upserts: list[_Upsert] = []
        self.rewrites: list[_Upsert] = []
        self.deletes: list[Change] = []

    def add(self, spec: EntitySpec, change: Change) -> None:
        field = spec.vectors
        assert field is not None
        vector = change.payload.get(field.column)
        if vector is None or not spec.indexed(change):  # deleted, or out of ``index_when``
            self.deletes.append(change)
            return
        upsert = _Upsert(change, vector, expected_metadata(field.metadata, change))
        if change.operation is Operation.REPAIRED:
            self.rewrites.append(upsert)
        else:
            self.upserts.append(upsert)


class FaissBackend:
    """Applies vector changes to this process's ``VectorIndex`` and ranks by similarity."""

    name = "faiss"
    shared = False

    def __init__(
        self,
        config: FaissConfig,
        registry: Registry,
        dimension: int,
        database: PostgresConfig | None = None,
    ) -> None:
        """``database``: where the S3 snapshot writers' lock lives (with ``snapshot_url``)."""
        self._registry = registry
        self._interval = config.snapshot_interval
        self.remote = _remote_snapshots(config, database)
        self.index = VectorIndex(
            config.index_path,
            dimension,
            index_type=config.index_type,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
        )

    def covers(self, spec: EntitySpec) -> bool:
        return spec.vectors is not None and spec.vectors.engine == "faiss"

    def columns_held(self, spec: EntitySpec) -> frozenset[str] | None:
        """The vector, its metadata and ``index_when``'s inputs."""
        return spec.vector_columns

    def holds_vectors(self, spec: EntitySpec) -> bool:
        return self.covers(spec)

    @property
    def snapshot_interval(self) -> float | None:
        return self._interval

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Load the snapshot; with none usable, the index is rebuilt from Postgres.

        With an S3 store, its newest good snapshot (older ones if that fails); else the
        local one. A corrupt snapshot is reported and skipped.
        """
        if self.remote is not None:
            if await self.remote.restore(self.index) is None:
                logger.info(
                    "no usable FAISS snapshot in %s; rebuilding from Postgres", self.remote.url
                )
                self.index.checkpoint = None
            return
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
        """Save a snapshot with its checkpoint, so a restart resumes instead of rebuilding.

        With an S3 store the snapshot is uploaded too (unless another instance is
        uploading one right now).
        """
        if await self.index.namespaces():
            await self.index.save()
            if self.remote is not None:
                await self.remote.upload(self.index)

    # -- writes --------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> None:
        """Apply per namespace; a row FAISS refuses (an empty id, a NaN vector) is reported
        alone in ``ProjectionError.rejected``, its neighbours are applied."""
        batches: dict[str, _NamespaceBatch] = {}
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.vectors is None or not self.covers(spec):
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
        async def upsert(
            items: Sequence[_Upsert], *, rewrite: bool = False
        ) -> list[tuple[_Upsert, Rejection]]:
            vectors: list[Any] = [item.vector for item in items]  # the index checks them
            await self.index.upsert_many(
                namespace,
                [item.change.key for item in items],
                vectors,
                [item.metadata for item in items],
                versions=[item.change.version for item in items],
                rewrite=rewrite,
            )
            return []

        async def delete(items: Sequence[Change]) -> list[tuple[Change, Rejection]]:
            keys = [change.key for change in items]
            await self.index.delete_many(
                namespace, keys, versions=[change.version for change in items]
            )
            return []

        upserted = await bisected(batch.upserts, upsert, _refusal)
        upserted += await bisected(batch.rewrites, partial(upsert, rewrite=True), _refusal)
        refused = [(item.change, why) for item, why in upserted]
        return refused + await bisected(batch.deletes, delete, _refusal)

    # -- VectorRanker --------------------------------------------------------------------

    async def nearest(self, spec: EntitySpec, request: VectorQuery) -> list[tuple[str, float]]:
        field = spec.vectors
        assert field is not None
        matches = await self.index.query(
            field.namespace,
            request.vector,
            top_k=request.k,
            filter=field.checked_filters(request.filters),
        )
        return [(match.id, match.score) for match in matches]

    # -- operations ----------------------------------------------------------------------

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        """Reload the namespace from Postgres, streaming (key, version, vector, metadata).

        Vectors arrive packed (``model.packed``): decoded per batch by numpy, never as
        one Python float per element.
        """
        field = spec.vectors
        assert field is not None
        await self.index.drop(field.namespace)
        if spec.search is not None and spec.search.index_when is not None:
            return await self._rebuild_matching(spec, source, progress)
        model = spec.model
        columns = [getattr(model, spec.codec.primary_key), model.version]
        columns += [packed(getattr(model, field.column))]
        columns += [getattr(model, name) for name in field.metadata]
        loaded = 0
        async for rows in source.rows(spec, columns, REBUILD_BATCH):
            vectors = unpacked([row[2] for row in rows], self.index.dimension)
            batch = _NamespaceBatch()
            batch.upserts = [
                _Upsert(
                    Change(spec.table, str(row[0]), Operation.CREATED, row[1], {}),
                    vector,
                    _metadata(field.metadata, row[3:]),
                )
                for row, vector in zip(rows, vectors, strict=True)
                if vector is not None
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
    """A vector and its metadata compared as one digest: the float32 bytes of the vector
    normalised as the index normalises it, and ``RowCodec.digest`` of the metadata.

    The namespace's versions are read once (one thread hop), not once per batch.
    """

    def __init__(self, index: VectorIndex, spec: EntitySpec) -> None:
        assert spec.vectors is not None
        self._index = index
        self._spec = spec
        self._field = spec.vectors
        self._versions: dict[str, int | None] | None = None

    def expected(self, row: Change) -> bytes | None:
        vector = row.payload.get(self._field.column)
        if vector is None or not self._spec.indexed(row):
            return None
        try:
            normalized = checked_vector(vector, self._index.dimension).normalized()[0]
        except ValueError:  # a vector FAISS refuses: the row cannot be held
            return None
        return self._digest(normalized, expected_metadata(self._field.metadata, row))

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        keys = [row.key for row in rows]
        records = await self._index.get_many(self._field.namespace, keys)
        return {
            key: None
            if record is None
            else (record.version or 0, self._digest(record.vector, record.metadata or {}))
            for key, record in zip(keys, records, strict=True)
        }

    async def count(self) -> int:
        return len(await self._all_versions())

    async def entries(
        self, sample: int | None, skip: Container[str]
    ) -> AsyncIterator[list[tuple[str, int]]]:
        versions = await self._all_versions()
        keys = [key for key in versions if key not in skip]
        if sample is not None:
            keys = random.sample(keys, k=min(sample, len(keys)))
        for start in range(0, len(keys), REBUILD_BATCH):
            yield [(key, versions[key] or 0) for key in keys[start : start + REBUILD_BATCH]]

    async def _all_versions(self) -> dict[str, int | None]:
        if self._versions is None:
            self._versions = await self._index.versions(self._field.namespace)
        return self._versions

    def _digest(
        self, vector: Sequence[float] | np.ndarray[Any, Any], metadata: Mapping[str, Any]
    ) -> bytes:
        return digest_of([float32_digest(vector), self._spec.codec.digest(metadata)])


def expected_metadata(names: Sequence[str], change: Change) -> dict[str, Any]:
    """The metadata a row's vector is stored with (the JSON-safe payload's values)."""
    return {name: change.payload.get(name) for name in names}


def _refusal(exc: Exception) -> Rejection | None:
    """FAISS refuses a row's content with ``ValueError`` (bad id, vector or metadata)."""
    return Rejection(str(exc)) if isinstance(exc, ValueError) else None


def _remote_snapshots(config: FaissConfig, database: PostgresConfig | None) -> S3Snapshots | None:
    """The S3 snapshot store, or ``None``; obstore is imported only when one is configured."""
    if config.snapshot_url is None:
        return None
    if database is None:
        raise ConfigurationError(
            "faiss.snapshot_url needs the Postgres settings for its writer lock"
        )
    try:
        from satellites_repo.backends.s3_snapshots import S3Snapshots
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("obstore"):
            raise
        raise ImportError(
            "faiss.snapshot_url is an s3:// URL, which needs obstore: "
            "install the extra with `pip install 'satellites-repo[s3]'`"
        ) from exc
    return S3Snapshots(config, database)


def _metadata(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Metadata as the fast path stores it (the JSON-safe payload's values)."""
    return {name: json_safe(value) for name, value in zip(names, values, strict=True)}
