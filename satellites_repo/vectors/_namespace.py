"""One namespace's in-memory state: its FAISS store and the maps around it.

A namespace maps string ids to int64 FAISS labels, keeps each id's metadata and
version, tombstones of versioned deletes, and an inverted metadata index for filters.
Labels come from a per-namespace counter that only grows (it is saved in snapshots),
so a label is never reused, not even after a restart. Versions and metadata are kept
by label in numpy columns (``_columns``), which is most of what keeps a namespace of
500k ids close to the size of its vectors.

Nothing here locks. The caller holds ``lock`` around every method call; ``retired``
tells a caller that took the lock too late that this object was dropped or replaced by
``load()`` and that it must look the namespace up again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors._background import BESIDE_THRESHOLD, Beside
from satellites_repo.vectors._columns import LabelColumn
from satellites_repo.vectors._filters import MetadataIndex
from satellites_repo.vectors._records import VectorMatch, VectorRecord
from satellites_repo.vectors._rows import Rows
from satellites_repo.vectors._sidecar import SidecarState, decode, encode
from satellites_repo.vectors._stores import IndexSpec, Store
from satellites_repo.vectors._types import FloatMatrix, IdArray, JsonScalar, StoredMetadata

__all__ = ["Namespace", "NamespaceExport"]

NamespaceExport = tuple[np.ndarray[Any, np.dtype[np.uint8]], bytes]
"""A namespace as a snapshot holds it: FAISS index bytes and sidecar bytes."""

_T = TypeVar("_T")

NO_VERSION = -1
"""The stored version of an id written without one (real versions are >= 0)."""


class Namespace:
    """The vectors, ids, metadata, versions and tombstones of one namespace."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.retired = False
        self._store = store
        self._labels: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._metadata = LabelColumn(object, None)
        self._versions = LabelColumn(np.int64, NO_VERSION)
        self._tombstones: dict[str, int] = {}
        self._next_label = 0
        self._filters = MetadataIndex()

    @classmethod
    def restore(
        cls, name: str, spec: IndexSpec, index_data: np.ndarray[Any, Any], sidecar: bytes
    ) -> Namespace:
        """Rebuild a namespace from its snapshot files; ``VectorIndexError`` if they disagree."""
        where = f"namespace {name!r}"
        state = decode(sidecar, where)
        store = spec.restore_store(index_data, state.dead, where)
        stored = np.sort(store.labels())
        expected = np.sort(np.array(state.labels + state.dead, dtype=np.int64))
        if not np.array_equal(stored, expected):
            raise VectorIndexError(f"{where}: the index and the sidecar hold different labels")
        namespace = cls(name, store)
        namespace._next_label = state.next_label
        namespace._labels = dict(zip(state.ids, state.labels, strict=True))
        namespace._ids = dict(zip(state.labels, state.ids, strict=True))
        namespace._tombstones = dict(state.tombstones)
        namespace._remember_metadata(namespace._labels, state.metadata)
        namespace._remember_versions(namespace._labels, state.versions)
        return namespace

    def export(self) -> NamespaceExport:
        """Return this namespace's index bytes and sidecar bytes, consistent with each other."""
        ids = list(self._labels)
        sidecar = SidecarState(
            next_label=self._next_label,
            ids=ids,
            labels=list(self._labels.values()),
            metadata=self._metadata.take(self._labels.values()),
            versions=self._version_list(self._labels.values()),
            tombstones=self._tombstones,
            dead=self._store.dead_labels,
        )
        return self._store.serialize(), encode(sidecar)

    def count(self) -> int:
        """Number of live ids."""
        return len(self._labels)

    def versions(self) -> dict[str, int | None]:
        """Every live id with its version (``None`` when written without one)."""
        return dict(zip(self._labels, self._version_list(self._labels.values()), strict=True))

    def upsert(
        self,
        ids: list[str],
        rows: Rows,
        metadata: list[StoredMetadata | None] | None,
        versions: list[int | None] | None,
        *,
        rewrite: bool = False,
    ) -> list[bool]:
        """Insert or replace ``ids`` as if one by one; return which items were applied.

        Item ``i`` is ignored when it carries a version not above the id's stored
        version or tombstone (``rewrite``: below it; an item at the stored version then
        replaces it) (an earlier item of the same batch counts as stored); of an
        id repeated without versions the last item wins. The rows go to FAISS in one
        add, while the id maps are built beside it; nothing else changes until the add
        succeeded, so a failing add leaves the namespace as it was.
        """
        positions: Sequence[int]
        if versions is None or self._all_new(ids):
            applied, positions = [True] * len(ids), range(len(ids))
        else:
            applied, positions = self._plan_versioned(ids, versions, rewrite)
        if not positions:
            return applied
        everything = len(positions) == len(ids)  # then positions is 0..n-1 in order
        keys = ids if everything else [ids[p] for p in positions]
        chosen = rows if everything else rows.take(positions)
        labels = range(self._next_label, self._next_label + len(keys))
        new_labels, new_ids, superseded = self._add(chosen, keys, labels)
        self._next_label = labels.stop
        replaced = (
            [self._labels[k] for k in new_labels if k in self._labels] if self._labels else []
        )
        self._store.retire(np.array(replaced + superseded, dtype=np.int64))
        for label in replaced:
            self._forget(self._ids[label])
        self._merge(new_labels, new_ids)
        if self._tombstones:
            for key in new_labels:
                self._tombstones.pop(key, None)
        if metadata is None and versions is None:
            return applied
        if everything and len(new_labels) == len(ids):  # every item is its id's winner
            winners: Sequence[int] = positions
        else:  # the item each id's label came from (the last one of a repeated id)
            winners = [positions[label - labels.start] for label in new_labels.values()]
        if metadata is not None:
            self._remember_metadata(new_labels, _pick(metadata, winners))
        if versions is not None:
            self._remember_versions(new_labels, _pick(versions, winners))
        return applied

    def delete(self, ids: list[str], versions: list[int | None] | None) -> list[bool]:
        """Delete ``ids`` as if one by one; return for each whether it existed and went.

        An unversioned delete removes the id if present. A versioned delete is ignored
        (``False``, nothing changes) when the stored vector has a higher version;
        otherwise it removes the vector and records a tombstone, so a later upsert with
        a version not above it is ignored, even when the id did not exist.
        """
        removed: dict[str, int] = {}
        tombstones: dict[str, int] = {}
        results = [
            self._plan_delete(key, None if versions is None else versions[i], removed, tombstones)
            for i, key in enumerate(ids)
        ]
        self._store.retire(np.fromiter(removed.values(), dtype=np.int64, count=len(removed)))
        for key in removed:
            self._forget(key)
        self._tombstones.update(tombstones)
        return results

    def query(
        self, query: FloatMatrix, top_k: int, filter: dict[str, list[JsonScalar]]
    ) -> list[VectorMatch]:
        """Return up to ``top_k`` live vectors nearest to ``query`` that match ``filter``.

        Fewer than ``top_k`` only when fewer ids match. With a filter the candidates
        come from the inverted metadata index (cost about the size of the smallest
        field's match set) and FAISS ranks only them.
        """
        allowed: IdArray | None = None
        possible = len(self._labels)
        if filter and possible:
            matching = self._filters.matching(filter)
            possible = len(matching)
            allowed = np.fromiter(matching, dtype=np.int64, count=possible)
        if not possible:
            return []
        scores, labels = self._store.search(query, min(top_k, possible), allowed)
        return [
            VectorMatch(id=self._ids[label], score=score, metadata=_copy(self._metadata.get(label)))
            for label, score in zip(labels.tolist(), scores.tolist(), strict=True)
        ]

    def get(self, keys: Sequence[str]) -> list[VectorRecord | None]:
        """Return what is stored for each of ``keys`` (``None``: nothing), in one lookup."""
        found = [key for key in keys if key in self._labels]
        if not found:
            return [None] * len(keys)
        labels = [self._labels[key] for key in found]
        vectors = self._store.vectors(np.array(labels, dtype=np.int64))
        records = {
            key: VectorRecord(
                id=key,
                vector=tuple(vector.tolist()),
                metadata=_copy(self._metadata.get(label)),
                version=self._version(label),
            )
            for key, label, vector in zip(found, labels, vectors, strict=True)
        }
        return [records.get(key) for key in keys]

    def _add(
        self, rows: Rows, keys: list[str], labels: range
    ) -> tuple[dict[str, int], dict[int, str], list[int]]:
        """Add ``rows`` under ``labels`` in one FAISS call; return the maps for ``keys``.

        The maps are built while FAISS copies the rows (it releases the GIL). For an id
        repeated in ``keys`` the last label wins; the labels of its earlier rows, which
        FAISS holds too, are returned as superseded, to be retired. Raises whatever the
        add raised, before anything of the namespace has changed.
        """
        label_array = np.arange(labels.start, labels.stop, dtype=np.int64)
        adding = Beside(
            lambda: self._store.add(rows, label_array), inline=len(keys) < BESIDE_THRESHOLD
        )
        numbers = list(labels)  # one int object per label, shared by both maps
        new_labels = dict(zip(keys, numbers, strict=True))
        superseded: list[int] = []
        if len(new_labels) == len(keys):
            new_ids = dict(zip(numbers, keys, strict=True))
        else:
            new_ids = {label: key for key, label in new_labels.items()}
            superseded = [label for label in labels if label not in new_ids]
        adding.wait()
        return new_labels, new_ids, superseded

    def _plan_versioned(
        self, ids: list[str], versions: list[int | None], rewrite: bool
    ) -> tuple[list[bool], list[int]]:
        """Decide which items apply, as if applied one by one, without changing anything.

        Returns the applied flags and the positions of the winning item of each id.
        """
        applied: list[bool] = []
        winners: dict[str, int] = {}
        for position, (key, version) in enumerate(zip(ids, versions, strict=True)):
            floor = self._version_floor(key, winners, versions)
            if version is not None and (version < floor or (version == floor and not rewrite)):
                applied.append(False)
                continue
            winners[key] = position
            applied.append(True)
        return applied, list(winners.values())

    def _all_new(self, ids: list[str]) -> bool:
        """Whether every id is distinct and unknown here (no version, no tombstone)."""
        return (
            len(set(ids)) == len(ids)
            and self._labels.keys().isdisjoint(ids)
            and self._tombstones.keys().isdisjoint(ids)
        )

    def _version_floor(self, key: str, winners: dict[str, int], versions: list[int | None]) -> int:
        """The version an upsert of ``key`` must exceed (-1 when any version will do)."""
        if key in winners:
            earlier = versions[winners[key]]
            return -1 if earlier is None else earlier
        label = self._labels.get(key)
        stored = NO_VERSION if label is None else self._versions.get(label)
        return max(stored, self._tombstones.get(key, -1))

    def _plan_delete(
        self,
        key: str,
        version: int | None,
        removed: dict[str, int],
        tombstones: dict[str, int],
    ) -> bool:
        exists = key in self._labels and key not in removed
        if version is not None:
            if exists and version < self._versions.get(self._labels[key]):
                return False
            tombstone = tombstones.get(key, self._tombstones.get(key, -1))
            tombstones[key] = max(tombstone, version)
        if exists:
            removed[key] = self._labels[key]
        return exists

    def _merge(self, labels: dict[str, int], ids: dict[int, str]) -> None:
        if self._labels:
            self._labels.update(labels)
            self._ids.update(ids)
        else:  # the common bulk load: adopt the new maps instead of copying them
            self._labels, self._ids = labels, ids

    def _remember_metadata(
        self, labels: dict[str, int], metadata: list[StoredMetadata | None]
    ) -> None:
        """Store each id's metadata (``None``: none), aligned with ``labels``' order."""
        numbers = list(labels.values())
        self._metadata.put(numbers, metadata)
        if None in metadata:
            held = [(label, m) for label, m in zip(numbers, metadata, strict=True) if m is not None]
            self._filters.add_many([label for label, _ in held], [m for _, m in held])
            return
        present: list[StoredMetadata] = metadata  # type: ignore[assignment]  # no None: checked
        self._filters.add_many(numbers, present)

    def _remember_versions(self, labels: dict[str, int], versions: list[int | None]) -> None:
        """Store each id's version (``None``: written without one), aligned with ``labels``."""
        if None in versions:
            versions = [NO_VERSION if v is None else v for v in versions]
        self._versions.put(list(labels.values()), versions)

    def _version(self, label: int) -> int | None:
        version: int = self._versions.get(label)
        return None if version == NO_VERSION else version

    def _version_list(self, labels: Iterable[int]) -> list[int | None]:
        found: list[int | None] = self._versions.take(labels)
        if NO_VERSION in found:
            return [None if v == NO_VERSION else v for v in found]
        return found

    def _forget(self, key: str) -> None:
        label = self._labels.pop(key)
        del self._ids[label]
        metadata = self._metadata.get(label)
        if metadata is not None:
            self._metadata.clear(label)
            self._filters.remove(label, metadata)


def _pick(values: list[_T], positions: Sequence[int]) -> list[_T]:
    """``values`` at ``positions`` (``values`` itself when that is every position in order)."""
    if isinstance(positions, range) and positions == range(len(values)):
        return values
    return [values[p] for p in positions]


def _copy(metadata: StoredMetadata | None) -> dict[str, Any] | None:
    """A copy the caller may change without changing the index."""
    if metadata is None:
        return None
    return {
        key: list(value) if isinstance(value, list) else value for key, value in metadata.items()
    }
