"""``VectorIndex``: the async facade over per-namespace FAISS indexes.

Threading model, which every method follows:

* Nothing touches FAISS (or validates a large batch) on the event loop: each public
  coroutine hands one function to ``asyncio.to_thread``.
* Inside that worker thread the namespace's ``threading.Lock`` is taken around the
  whole read or write, so concurrent coroutines, threads or event loops sharing one
  ``VectorIndex`` never see a half-applied change. A registry lock guards the map of
  namespaces itself (creation, ``drop``, the swap done by ``load``).
* ``save`` and ``load`` exclude each other with a third lock; ``save`` copies each
  namespace under that namespace's lock, so every namespace in a snapshot is
  consistent with itself.
* A large ``upsert_many`` lets FAISS copy the rows on a short-lived helper thread
  while it builds the id maps, still inside the namespace lock (see ``_background``).

The index lives in memory: it is a projection of vectors stored in Postgres, and a
snapshot plus its ``checkpoint`` lets a restarted process resume without rebuilding.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors._namespace import Namespace
from satellites_repo.vectors._persistence import (
    NamespaceFiles,
    SnapshotFiles,
    export_snapshot,
    install_snapshot,
    read_snapshot,
    write_snapshot,
)
from satellites_repo.vectors._records import VectorMatch, VectorRecord
from satellites_repo.vectors._rows import Rows, checked_rows, checked_vector, normalized_query
from satellites_repo.vectors._stores import IndexSpec
from satellites_repo.vectors._types import IndexType, StoredMetadata, VectorInput, VectorsInput
from satellites_repo.vectors._validation import (
    check_filter,
    check_id,
    check_ids,
    check_metadata,
    check_metadata_list,
    check_namespace,
    check_top_k,
    check_version,
    check_versions,
)

__all__ = ["VectorIndex"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class VectorIndex:
    """Cosine-similarity vector store, one FAISS index per namespace, safe under concurrency.

    Vectors are L2-normalised on the way in and searched by inner product, so scores
    are cosine similarities. Ids are strings, mapped to int64 FAISS labels, so deletes
    and replacements never rebuild a flat index.

    Versions make writes idempotent and order-safe for a projection that may see a
    change twice or late: a write that carries a version is ignored when the id already
    holds that version or a newer one, or was deleted at that version or a newer one
    (deletes that carry a version leave a tombstone). A write without a version always
    applies and clears the id's version and tombstone. Tombstones live until ``drop``.

    ``hnsw_ef_search`` defaults to 1536, measured (``benchmarks/vectors.py``): on 100k
    uniformly random 384-d vectors, the worst case for a graph, recall@10 is 0.96 there
    (0.50 at 256) and a query still costs less than a flat scan; embeddings with structure
    reach 1.0 from 256, so lower it for them when latency matters. Recall falls as a
    namespace of random-like vectors grows (0.17 at 500k with 256): ``flat``, the
    default, is exact at every size.

    ``index_path`` is only touched by ``save`` (which creates it) and ``load``.
    Invalid arguments raise ``ValueError`` naming the problem, before anything changes;
    a snapshot that is corrupt or made for another index raises ``VectorIndexError``.
    """

    def __init__(
        self,
        index_path: Path | str,
        dimension: int,
        *,
        index_type: IndexType = "flat",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        hnsw_ef_search: int = 1536,
    ) -> None:
        for name, value in (
            ("dimension", dimension),
            ("hnsw_m", hnsw_m),
            ("hnsw_ef_construction", hnsw_ef_construction),
            ("hnsw_ef_search", hnsw_ef_search),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if index_type not in ("flat", "hnsw"):
            raise ValueError(f"index_type must be 'flat' or 'hnsw', got {index_type!r}")
        self._path = Path(index_path)
        self._spec = IndexSpec(
            dimension=dimension,
            index_type=index_type,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_search=hnsw_ef_search,
        )
        self._namespaces: dict[str, Namespace] = {}
        self._registry_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._checkpoint: int | None = None
        self.origin: str | None = None
        """An opaque label of what the content reflects (the data layer stores its
        database's identity), saved with and restored by snapshots like ``checkpoint``."""

    @property
    def index_path(self) -> Path:
        """The folder ``save`` writes to and ``load`` reads from."""
        return self._path

    @property
    def dimension(self) -> int:
        """The number of floats in every vector."""
        return self._spec.dimension

    @property
    def index_type(self) -> IndexType:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate)."""
        return self._spec.index_type

    @property
    def checkpoint(self) -> int | None:
        """An opaque position (e.g. an outbox sequence) saved with and restored by snapshots.

        Set it to the position of the last change applied before calling ``save``; after
        ``load`` it tells which changes the loaded snapshot already contains. Changes
        applied while a save runs may be in the snapshot too; with versioned writes,
        replaying them from the checkpoint is harmless.
        """
        return self._checkpoint

    @checkpoint.setter
    def checkpoint(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"checkpoint must be an integer or None, got {value!r}")
        self._checkpoint = value

    async def upsert(
        self,
        namespace: str,
        vector_id: str,
        vector: VectorInput,
        metadata: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
    ) -> bool:
        """Insert or replace one vector; return ``False`` if a stale ``version`` was ignored.

        ``metadata`` values must be JSON-safe scalars or lists of them; it is stored as
        a copy (``{}`` stays ``{}``, ``None`` stays ``None``).
        """

        def work() -> list[bool]:
            name = check_namespace(namespace)
            key = check_id(vector_id)
            rows = checked_vector(vector, self._spec.dimension)
            stored = check_metadata(metadata)
            checked = None if version is None else [check_version(version)]
            return self._upsert(name, [key], rows, None if stored is None else [stored], checked)

        return (await asyncio.to_thread(work))[0]

    async def upsert_many(
        self,
        namespace: str,
        ids: Sequence[str],
        vectors: VectorsInput,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        versions: Sequence[int | None] | None = None,
        rewrite: bool = False,
    ) -> list[bool]:
        """Insert or replace many vectors with one FAISS add; return which were applied.

        The result is what calling ``upsert`` for each item in order would return: when
        an id repeats, the last item wins (a versioned item wins only over lower
        versions). ``vectors`` is a sequence of sequences or a 2-D array with one row per
        id; ``metadata`` and ``versions``, if given, have one entry per id. Any invalid
        item rejects the whole batch before anything changes.

        ``rewrite``: an item at the version the id holds replaces it too (mending content
        that drifted under an unchanged version); an older one is still ignored.
        """

        def work() -> list[bool]:
            name = check_namespace(namespace)
            keys = check_ids(ids)
            rows = checked_rows(vectors, self._spec.dimension, len(keys))
            stored = None if metadata is None else check_metadata_list(metadata, len(keys))
            checked = None if versions is None else check_versions(versions, len(keys))
            return self._upsert(name, keys, rows, stored, checked, rewrite)

        return await asyncio.to_thread(work)

    async def delete(self, namespace: str, vector_id: str, *, version: int | None = None) -> bool:
        """Delete one vector; return whether it existed and was removed.

        With a ``version``: ignored (``False``) if the stored vector is newer; otherwise
        a tombstone at ``version`` is kept even if the id was absent, so a late upsert
        with a version not above it is ignored.
        """

        def work() -> list[bool]:
            return self._delete(
                namespace, [check_id(vector_id)], None if version is None else [version]
            )

        return (await asyncio.to_thread(work))[0]

    async def delete_many(
        self,
        namespace: str,
        ids: Sequence[str],
        *,
        versions: Sequence[int | None] | None = None,
    ) -> list[bool]:
        """Delete many vectors with one FAISS removal; results as ``delete`` in order."""
        return await asyncio.to_thread(self._delete, namespace, ids, versions)

    async def query(
        self,
        namespace: str,
        vector: VectorInput,
        top_k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
    ) -> list[VectorMatch]:
        """Return up to ``top_k`` matches, most similar first (``[]`` for an unknown namespace).

        ``filter`` keeps only vectors whose metadata matches every key: a scalar means
        equality, a list means "any of these"; a stored list matches when any element
        does. The result holds ``top_k`` matches whenever that many vectors match.

        Cost: unfiltered, one FAISS search (flat: O(n x dimension); hnsw: a graph walk
        of about ``hnsw_ef_search`` nodes). Filtered, the candidates are first looked up
        in an inverted metadata index (about the size of the smallest key's matches),
        then passed to FAISS as an ``IDSelectorBatch``: flat scores only the candidates
        but still tests each stored vector for membership; hnsw scores up to 8 x
        ``hnsw_ef_search`` candidates exactly and walks the graph for more, scoring
        exactly if the walk finds too few.
        """

        def work() -> list[VectorMatch]:
            name = check_namespace(namespace)
            limit = check_top_k(top_k)
            row = normalized_query(vector, self._spec.dimension)
            wanted = check_filter(filter)
            return self._call(name, lambda ns: ns.query(row, limit, wanted), create=False) or []

        return await asyncio.to_thread(work)

    async def get(self, namespace: str, vector_id: str) -> VectorRecord | None:
        """Return the stored vector, metadata and version of one id, or ``None``."""
        return (await self.get_many(namespace, [check_id(vector_id)]))[0]

    async def get_many(self, namespace: str, ids: Sequence[str]) -> list[VectorRecord | None]:
        """``get`` for many ids in one lookup, in their order (``None`` where absent)."""

        def work() -> list[VectorRecord | None]:
            keys = check_ids(ids)
            found = self._call(check_namespace(namespace), lambda ns: ns.get(keys), create=False)
            return found or [None] * len(keys)

        return await asyncio.to_thread(work)

    async def count(self, namespace: str) -> int:
        """Return the number of live vectors in ``namespace`` (0 if unknown)."""

        def work() -> int:
            return self._call(check_namespace(namespace), Namespace.count, create=False) or 0

        return await asyncio.to_thread(work)

    async def versions(self, namespace: str) -> dict[str, int | None]:
        """Return every live id of ``namespace`` with its version (``{}`` if unknown).

        ``None`` marks an id written without a version. Meant for reconciling the index
        with its source of truth, e.g. finding ids the database no longer holds.
        """

        def work() -> dict[str, int | None]:
            return self._call(check_namespace(namespace), Namespace.versions, create=False) or {}

        return await asyncio.to_thread(work)

    async def namespaces(self) -> list[str]:
        """Return the names of all namespaces, sorted (including empty ones)."""

        def work() -> list[str]:
            with self._registry_lock:
                return sorted(self._namespaces)

        return await asyncio.to_thread(work)

    async def drop(self, namespace: str) -> bool:
        """Remove a namespace with its vectors and tombstones; return whether it existed."""

        def work() -> bool:
            name = check_namespace(namespace)
            with self._registry_lock:
                dropped = self._namespaces.pop(name, None)
            if dropped is None:
                return False
            with dropped.lock:
                dropped.retired = True
            return True

        return await asyncio.to_thread(work)

    async def save(self) -> None:
        """Write every namespace and the checkpoint to ``index_path`` as one atomic snapshot.

        On return the snapshot is durable (fsynced) and current; if the process dies
        during a save, the previous snapshot stays current. Raises ``OSError`` if the
        folder cannot be written. Writes that run concurrently with the save may or may
        not be included; each namespace is captured at one instant.
        """
        await asyncio.to_thread(self._save)

    async def load(self) -> None:
        """Replace the in-memory state with the current snapshot in ``index_path``.

        All-or-nothing: the snapshot is verified (manifest, checksums, dimension, metric,
        index type, id maps) and rebuilt in memory before it replaces anything; on any
        problem ``VectorIndexError`` is raised and the index is left exactly as it was.
        With no snapshot (empty or missing folder) the index becomes empty.
        """
        await asyncio.to_thread(self._load)

    async def export_snapshot(self) -> SnapshotFiles | None:
        """The files of the current snapshot in ``index_path``, to store them elsewhere."""
        return await asyncio.to_thread(self._locked, export_snapshot, self._path)

    async def install_snapshot(self, files: dict[str, bytes]) -> None:
        """Make ``files`` (from ``export_snapshot``, maybe of another process) the current
        snapshot in ``index_path``; ``load()`` then verifies and reads it."""
        await asyncio.to_thread(self._locked, install_snapshot, self._path, files)

    def _locked(self, action: Callable[..., _T], *args: Any) -> _T:
        with self._snapshot_lock:
            return action(*args)

    def _upsert(
        self,
        name: str,
        keys: list[str],
        rows: Rows,
        metadata: list[StoredMetadata | None] | None,
        versions: list[int | None] | None,
        rewrite: bool = False,
    ) -> list[bool]:
        if not keys:
            return []
        applied = self._call(
            name, lambda ns: ns.upsert(keys, rows, metadata, versions, rewrite=rewrite), create=True
        )
        return applied or []

    def _delete(
        self, namespace: str, ids: Sequence[str], versions: Sequence[int | None] | None
    ) -> list[bool]:
        name = check_namespace(namespace)
        keys = check_ids(ids)
        checked = None if versions is None else check_versions(versions, len(keys))
        # Only a versioned delete needs a namespace to exist: it leaves tombstones.
        create = checked is not None and any(v is not None for v in checked)
        results = self._call(name, lambda ns: ns.delete(keys, checked), create=create)
        return results or [False] * len(keys)

    def _call(self, name: str, operation: Callable[[Namespace], _T], *, create: bool) -> _T | None:
        """Run ``operation`` on a namespace under its lock; ``None`` if it does not exist."""
        while True:
            namespace = self._lookup(name, create=create)
            if namespace is None:
                return None
            with namespace.lock:
                # Dropped or replaced by load() while we waited: look it up again.
                if not namespace.retired:
                    return operation(namespace)

    def _lookup(self, name: str, *, create: bool) -> Namespace | None:
        with self._registry_lock:
            namespace = self._namespaces.get(name)
            if namespace is None and create:
                namespace = Namespace(name, self._spec.new_store())
                self._namespaces[name] = namespace
            return namespace

    def _save(self) -> None:
        with self._snapshot_lock:
            checkpoint, origin = self._checkpoint, self.origin
            with self._registry_lock:
                namespaces = list(self._namespaces.values())
            files: list[NamespaceFiles] = []
            for namespace in namespaces:
                with namespace.lock:
                    if namespace.retired:
                        continue
                    index, sidecar = namespace.export()
                    count = namespace.count()
                files.append(NamespaceFiles(namespace.name, count, index, sidecar))
            write_snapshot(self._path, self._spec, files, checkpoint, origin)

    def _load(self) -> None:
        with self._snapshot_lock:
            snapshot = read_snapshot(self._path, self._spec)
            restored: dict[str, Namespace] = {}
            for files in snapshot.namespaces:
                namespace = Namespace.restore(files.name, self._spec, files.index, files.sidecar)
                if namespace.count() != files.count:
                    raise VectorIndexError(
                        f"namespace {files.name!r}: manifest says {files.count} vectors, "
                        f"the files hold {namespace.count()}"
                    )
                restored[files.name] = namespace
            with self._registry_lock:
                previous, self._namespaces = self._namespaces, restored
                self._checkpoint = snapshot.checkpoint
                self.origin = snapshot.origin
            for namespace in previous.values():
                with namespace.lock:
                    namespace.retired = True
            logger.info("loaded %d vector namespaces from %s", len(restored), self._path)
