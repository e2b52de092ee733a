"""Drift: where a projection disagrees with Postgres, and mending it through the outbox.

Postgres is streamed in batches (keys and versions only) and each batch is compared with
what every covering backend holds (its ``DriftProbe``); then each backend lists the
entries it holds for rows Postgres no longer has.

Repair never writes a projection directly: it enqueues outbox rows owed to the drifted
backend, and the relay applies them under the usual version guards. A projection that is
*ahead* of Postgres (a version Postgres never committed) cannot be mended that way; it is
reported, and ``satellites reindex`` rebuilds it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo import observe
from satellites_repo.model import Change, Operation
from satellites_repo.model.rows import current_changes, select_by_keys, stream_rows

if TYPE_CHECKING:
    from satellites_repo.bootstrap import Runtime
    from satellites_repo.model import EntitySpec

__all__ = ["Drift", "repair", "verify"]

BATCH = 1000


@dataclass(slots=True)
class Drift:
    """One backend's disagreements with Postgres for one repository.

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


async def verify(runtime: Runtime, spec: EntitySpec) -> list[Drift]:
    """Compare Postgres with every backend that projects the repository."""
    started = time.perf_counter()
    with observe.span("verify", observe.db_attributes(operation="verify", collection=spec.table)):
        drifts = await _verify(runtime, spec)
    observe.verified(spec.table, drifts[0].checked if drifts else 0, time.perf_counter() - started)
    return drifts


async def _verify(runtime: Runtime, spec: EntitySpec) -> list[Drift]:
    probes = {b.name: b.drift_probe(spec) for b in runtime.backends if b.covers(spec)}
    drifts = {name: Drift(spec.name, name) for name in probes}
    total = 0
    async for batch in _truth(runtime, spec):
        total += len(batch)
        keys = list(batch)
        for name, probe in probes.items():
            drifts[name].compare(batch, dict(await probe.held(keys)))

    async def absent(keys: Sequence[str]) -> list[str]:
        return await _absent_from_postgres(runtime, spec, keys)

    for name, probe in probes.items():
        drifts[name].extra = await probe.extras(total - len(drifts[name].missing), absent)
    return list(drifts.values())


async def repair(runtime: Runtime, spec: EntitySpec, drifts: Sequence[Drift]) -> int:
    """Enqueue outbox rows that bring each drifted backend back to Postgres; returns how many."""
    owed: list[tuple[Change, list[str]]] = []
    for drift in drifts:
        target = [drift.target]
        keys = [*drift.missing, *drift.stale]
        current = await current_changes(runtime.engine, spec, keys, Operation.UPDATED)
        owed.extend((change, target) for change in current.values())
        for key, version in drift.extra.items():
            owed.append((Change(spec.table, key, Operation.DELETED, version + 1, {}), target))
    return await runtime.outbox.enqueue(owed)


async def _truth(runtime: Runtime, spec: EntitySpec) -> AsyncIterator[dict[str, int]]:
    columns = [getattr(spec.model, spec.codec.primary_key), spec.model.version]
    async for rows in stream_rows(runtime.engine, spec, columns, batch_size=BATCH):
        yield {str(row[0]): int(row[1]) for row in rows}


async def _absent_from_postgres(
    runtime: Runtime, spec: EntitySpec, keys: Sequence[str]
) -> list[str]:
    key_column = getattr(spec.model, spec.codec.primary_key)
    absent: list[str] = []
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        rows = await select_by_keys(runtime.engine, spec, chunk, [key_column])
        present = {str(row[0]) for row in rows}
        absent.extend(key for key in chunk if key not in present)
    return absent
