"""Drift: where a projection disagrees with Postgres, and mending it through the outbox.

Postgres is streamed in batches of whole rows (or a random sample of them) and each batch
is compared with what every covering backend holds (its ``DriftProbe``): the version, and
a digest of the content, taken the same way for what the backend should hold and for what
it holds (``RowCodec.digest``). Then each backend lists the entries it holds (all of them,
or a random sample) and those whose row Postgres no longer has are extras.

Redis is a cache: a row it does not hold is not drift, but an entry whose row is gone, an
older one, or one whose content differs is.

A backend that holds only some columns (``Backend.columns_held``: Elasticsearch, FAISS) is
not sent an update that touched none of them, so it holds such a row at an older version
than Postgres' with the same content: that entry is current (its digest is the row's);
an older entry with other content is stale.

Repair never writes a projection directly: it enqueues outbox rows owed to the drifted
backend (``Operation.REPAIRED``, no event), and the relay (the followers, for FAISS)
applies each as its row is in Postgres by then, replacing an entry at the same version
whose content drifted, deleting one whose row is gone, never overwriting a newer one. A
projection *ahead* of Postgres (a version Postgres never committed) cannot be mended that
way; it is reported, and ``satellites reindex`` rebuilds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from satellites_repo import observe
from satellites_repo.model import Change, Operation
from satellites_repo.model.rows import sample_changes, select_by_keys, stream_changes
from satellites_repo.outbox.related import with_related

if TYPE_CHECKING:
    from satellites_repo.bootstrap import Runtime
    from satellites_repo.model import EntitySpec
    from satellites_repo.types import DriftProbe, Held

__all__ = ["KINDS", "Drift", "repair", "verify"]

BATCH = 1000

KINDS = ("missing", "extra", "stale", "different", "ahead")
"""The kinds of drift, as ``Drift.counts`` and the CLI name them."""


@dataclass(slots=True)
class Drift:
    """One backend's disagreements with Postgres for one repository.

    ``missing``: rows the projection lacks. ``stale``: rows it holds at an older version
    (a cached tombstone for a live row counts as stale). ``different``: rows it holds at
    their version but with other content. ``ahead``: newer than Postgres. ``extra``: key ->
    version of entries it should not hold: their row is gone, or is out of the
    projection (``index_when``, no vector). ``sample``: how many rows were sampled
    (``None``: every row was checked). ``partial``: the backend holds only some columns
    (``Backend.columns_held``), so it is not sent an update of the others and an entry at
    an older version with the row's content is current, not stale.
    """

    repository: str
    target: str
    checked: int = 0
    sample: int | None = None
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    live: int = 0
    """Entries held for the rows checked (what a backend's count is compared with)."""
    partial: bool = False

    @property
    def clean(self) -> bool:
        return not any(self.counts.values())

    @property
    def counts(self) -> dict[str, int]:
        """How many rows drifted, per kind (``KINDS``)."""
        return {kind: len(getattr(self, kind)) for kind in KINDS}

    def compare(
        self,
        rows: Sequence[Change],
        expected: Mapping[str, bytes | None],
        held: Mapping[str, Held | None],
    ) -> None:
        """Fold in one batch: ``expected`` digests per key, what the backend ``held``."""
        self.checked += len(rows)
        for row in rows:
            if row.key not in held:
                continue
            found, wanted = held[row.key], expected[row.key]
            if found is not None and found[1] is not None:
                self.live += 1
            if found is None:
                if wanted is not None:
                    self.missing.append(row.key)
                continue
            version, digest = found
            if wanted is None:
                if digest is not None:
                    self.extra[row.key] = version
            elif version > row.version:
                self.ahead.append(row.key)
            elif digest is None or (version < row.version and not self._skipped(digest, wanted)):
                self.stale.append(row.key)
            elif digest != wanted:
                self.different.append(row.key)

    def _skipped(self, digest: bytes, wanted: bytes) -> bool:
        """An older entry that is what the row gives: the updates since were not its."""
        return self.partial and digest == wanted


async def verify(runtime: Runtime, spec: EntitySpec, sample: int | None = None) -> list[Drift]:
    """Compare Postgres with every backend that projects the repository: every row, or
    ``sample`` rows picked at random (and about as many entries of each backend)."""
    if sample is not None and sample <= 0:
        raise ValueError(f"sample must be a positive number of rows, got {sample!r}")
    started = time.perf_counter()
    with observe.span("verify", observe.db_attributes(operation="verify", collection=spec.table)):
        drifts = await _verify(runtime, spec, sample)
    observe.verified(spec.table, drifts[0].checked if drifts else 0, time.perf_counter() - started)
    return drifts


async def _verify(runtime: Runtime, spec: EntitySpec, sample: int | None) -> list[Drift]:
    covering = [backend for backend in runtime.backends if backend.covers(spec)]
    probes = {backend.name: backend.drift_probe(spec) for backend in covering}
    drifts = {
        backend.name: Drift(
            spec.name, backend.name, sample=sample, partial=backend.columns_held(spec) is not None
        )
        for backend in covering
    }
    seen: set[str] = set()

    async def check(name: str, probe: DriftProbe, rows: Sequence[Change]) -> None:
        # Digests are CPU work: in a thread, so a verify inside an application's process
        # leaves its event loop free between batches' round trips.
        expected, held = await asyncio.gather(
            asyncio.to_thread(_expected, probe, rows), probe.held(rows)
        )
        drifts[name].compare(rows, expected, held)

    async for rows in _rows(runtime, spec, sample):
        seen.update(row.key for row in rows)
        await asyncio.gather(*(check(name, probe, rows) for name, probe in probes.items()))
    for name, probe in probes.items():
        drifts[name].extra.update(await _extras(runtime, spec, probe, drifts[name], seen))
    return list(drifts.values())


def _expected(probe: DriftProbe, rows: Sequence[Change]) -> dict[str, bytes | None]:
    return {row.key: probe.expected(row) for row in rows}


async def _rows(
    runtime: Runtime, spec: EntitySpec, sample: int | None
) -> AsyncIterator[Sequence[Change]]:
    if sample is None:
        async for rows in stream_changes(runtime.engine, spec, batch_size=BATCH):
            yield await _with_related(runtime, spec, rows)
        return
    rows = await sample_changes(runtime.engine, spec, sample)
    for start in range(0, len(rows), BATCH):
        yield await _with_related(runtime, spec, rows[start : start + BATCH])


async def _with_related(
    runtime: Runtime, spec: EntitySpec, rows: Sequence[Change]
) -> Sequence[Change]:
    """Rows whose search document embeds related fields, with them, as a delivery reads
    them (the version to write at is no part of the content compared)."""
    if not spec.related:
        return rows
    return await with_related(runtime.engine, spec, rows, version=0)


async def _extras(
    runtime: Runtime, spec: EntitySpec, probe: DriftProbe, drift: Drift, seen: set[str]
) -> dict[str, int]:
    """Entries held for keys not among the rows checked, whose row Postgres lacks.

    A full check asks for the list only when the backend holds more entries than the
    rows checked account for (when it can count them); a sampled one looks at about
    ``sample`` entries the backend picks at random.
    """
    if drift.sample is None:
        count = await probe.count()
        if count is not None and count <= drift.live:
            return {}
    unseen: dict[str, int] = {}
    async for entries in probe.entries(drift.sample, seen):
        unseen.update(entries)
    gone = await _absent_from_postgres(runtime, spec, list(unseen))
    return {key: unseen[key] for key in gone}


async def repair(runtime: Runtime, spec: EntitySpec, drifts: Sequence[Drift]) -> int:
    """Enqueue outbox rows that bring each drifted backend back to Postgres; returns how many.

    Each is a ``REPAIRED`` change of the key, which delivery turns into the row as it is
    then (or, the row gone, a delete above the version the backend held).
    """
    owed: list[tuple[Change, list[str]]] = []
    for drift in drifts:
        keys = dict.fromkeys([*drift.missing, *drift.stale, *drift.different], 0)
        keys.update(drift.extra)
        owed.extend(
            (Change(spec.table, key, Operation.REPAIRED, version, {}), [drift.target])
            for key, version in keys.items()
        )
    return await runtime.outbox.enqueue(owed)


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
