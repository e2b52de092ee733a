"""Drift: where a projection disagrees with Postgres, and mending it through the outbox.

Postgres is streamed in batches (ids and versions only) and each batch is compared with
one MGET per projection. Documents Elasticsearch holds for rows Postgres no longer has are
found by comparing counts, then listing the index's ids.

Repair never writes a projection directly: it enqueues outbox rows owed to the drifted
target, and the relay applies them under the usual version guards. A projection that is
*ahead* of Postgres (a version Postgres never committed) cannot be mended that way; it is
reported, and ``satellites reindex`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from satellites_repo.orm.changeset import Change, Operation
from satellites_repo.outbox.rehydrate import current_changes

if TYPE_CHECKING:
    from satellites_repo.facade import DataLayer
    from satellites_repo.orm.registry import EntitySpec

__all__ = ["Drift", "repair", "verify"]

BATCH = 1000
OUTBOX_TARGET = {"es": "elasticsearch", "redis": "redis", "vectors": "faiss"}


@dataclass(slots=True)
class Drift:
    """One projection's disagreements with Postgres for one repository.

    ``missing``: rows the projection lacks. ``stale``: rows it holds at an older version
    (a cached tombstone for a live row counts as stale). ``ahead``: newer than Postgres.
    ``extra``: key -> version of entries whose row Postgres no longer has.
    """

    repository: str
    target: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.stale or self.ahead or self.extra)

    def compare(self, truth: dict[str, int], held: dict[str, int | None]) -> None:
        """Fold in one batch: ``held`` maps keys to the projection's version (None: absent)."""
        self.checked += len(truth)
        for key, version in truth.items():
            if key not in held:
                continue
            found = held[key]
            if found is None:
                self.missing.append(key)
            elif found < version:
                self.stale.append(key)
            elif found > version:
                self.ahead.append(key)


async def verify(layer: DataLayer, spec: EntitySpec) -> list[Drift]:
    """Compare Postgres with every projection the repository declares."""
    name = spec.repository.__name__
    declared = {"redis": spec.cache, "es": spec.search, "vectors": spec.vectors}
    drifts = {target: Drift(name, target) for target, what in declared.items() if what is not None}
    readers = {"redis": _cache_versions, "es": _search_versions}
    # The in-process index is read once (one thread hop), not once per row.
    vectors = await layer.vectors.versions(spec.vectors.namespace) if spec.vectors else {}
    unseen_vectors = set(vectors)
    total = 0
    async for batch in _truth(layer, spec):
        total += len(batch)
        for target, drift in drifts.items():
            if target == "vectors":
                drift.compare(batch, {key: _held(vectors, key) for key in batch})
                unseen_vectors.difference_update(batch)
            else:
                drift.compare(batch, await readers[target](layer, spec, list(batch)))
    if "es" in drifts:
        drifts["es"].extra = await _search_extras(layer, spec, total - len(drifts["es"].missing))
    if "vectors" in drifts:
        drifts["vectors"].extra = {key: vectors[key] or 0 for key in unseen_vectors}
    return list(drifts.values())


def _held(versions: dict[str, int | None], key: str) -> int | None:
    """A vector's version as ``compare`` wants it: None when absent, 0 when unversioned."""
    return (versions[key] or 0) if key in versions else None


async def repair(layer: DataLayer, spec: EntitySpec, drifts: Sequence[Drift]) -> int:
    """Enqueue outbox rows that bring each drifted target back to Postgres; returns how many."""
    owed: list[tuple[Change, list[str]]] = []
    for drift in drifts:
        target = [OUTBOX_TARGET[drift.target]]
        keys = [*drift.missing, *drift.stale]
        current = await current_changes(layer.engine, spec, keys, Operation.UPDATED)
        owed.extend((change, target) for change in current.values())
        for key, version in drift.extra.items():
            owed.append((Change(spec.table, key, Operation.DELETED, version + 1, {}), target))
    return await layer.outbox.enqueue(owed)


async def _truth(layer: DataLayer, spec: EntitySpec) -> AsyncIterator[dict[str, int]]:
    key_column = getattr(spec.model, spec.codec.primary_key)
    statement = select(key_column, spec.model.version).execution_options(yield_per=BATCH)
    async with layer.engine.connect() as connection:
        result = await connection.stream(statement)
        async for rows in result.partitions():
            yield {str(row[0]): int(row[1]) for row in rows}


async def _cache_versions(
    layer: DataLayer, spec: EntitySpec, keys: list[str]
) -> dict[str, int | None]:
    """Only what the cache holds: an absent key is not drift (caching is optional)."""
    rows = await layer.cache_projection.read(spec, keys)
    return {
        key: (0 if row.is_tombstone else row.version)
        for key, row in zip(keys, rows, strict=True)
        if row is not None
    }


async def _search_versions(
    layer: DataLayer, spec: EntitySpec, keys: list[str]
) -> dict[str, int | None]:
    assert spec.search is not None
    alias = layer.search_projection.alias(spec.search)
    response = await layer.elasticsearch.mget(index=alias, ids=keys, source=False)
    return {
        doc["_id"]: (int(doc["_version"]) if doc.get("found") else None) for doc in response["docs"]
    }


async def _search_extras(layer: DataLayer, spec: EntitySpec, expected: int) -> dict[str, int]:
    assert spec.search is not None
    alias = layer.search_projection.alias(spec.search)
    await layer.elasticsearch.indices.refresh(index=alias)
    if int((await layer.elasticsearch.count(index=alias))["count"]) <= expected:
        return {}
    versions: dict[str, int] = {}
    after: list[Any] | None = None
    while True:
        response = await layer.elasticsearch.search(
            index=alias, size=BATCH, source=False, version=True, sort=["_doc"], search_after=after
        )
        hits = response["hits"]["hits"]
        if not hits:
            break
        versions.update((hit["_id"], int(hit["_version"])) for hit in hits)
        after = hits[-1]["sort"]
    absent = await _absent_from_postgres(layer, spec, list(versions))
    return {key: versions[key] for key in absent}


async def _absent_from_postgres(
    layer: DataLayer, spec: EntitySpec, keys: Sequence[str]
) -> list[str]:
    codec = spec.codec
    key_column = getattr(spec.model, codec.primary_key)
    absent: list[str] = []
    async with layer.engine.connect() as connection:
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            typed = [codec.parse_key(key) for key in chunk]
            query = select(key_column).where(key_column.in_(typed))
            present = {str(key) for key in await connection.scalars(query)}
            absent.extend(key for key in chunk if key not in present)
    return absent
