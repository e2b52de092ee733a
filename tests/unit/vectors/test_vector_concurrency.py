"""Concurrent writers and readers on the same ids end in a consistent, predictable state."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satellites_repo.vectors import VectorIndex

from ._support import DIMENSION, assert_consistent, normalized, random_vectors

IDS = [f"id-{i}" for i in range(8)]


@dataclass(frozen=True)
class _Op:
    kind: str  # "upsert" | "delete" | "query"
    key: str
    version: int
    vector: np.ndarray


def _operations(count: int, seed: int) -> list[_Op]:
    """Ops with a distinct version per id, in shuffled order: the highest version must win."""
    rng = random.Random(seed)
    vectors = random_vectors(count, seed=seed)
    ops = [
        _Op(rng.choice(["upsert", "upsert", "delete", "query"]), rng.choice(IDS), version, row)
        for version, row in enumerate(vectors, start=1)
    ]
    rng.shuffle(ops)
    return ops


async def _apply(index: VectorIndex, op: _Op) -> None:
    if op.kind == "upsert":
        await index.upsert("ns", op.key, op.vector, {"v": op.version}, version=op.version)
    elif op.kind == "delete":
        await index.delete("ns", op.key, version=op.version)
    else:
        hits = await index.query("ns", op.vector, top_k=len(IDS))
        assert len({hit.id for hit in hits}) == len(hits)
        assert all(-1.0001 <= hit.score <= 1.0001 for hit in hits)


def _expected(ops: list[_Op]) -> dict[str, _Op]:
    """Per id, the write with the highest version, kept only if it is an upsert."""
    latest: dict[str, _Op] = {}
    for op in ops:
        current = latest.get(op.key)
        if op.kind != "query" and (current is None or op.version > current.version):
            latest[op.key] = op
    return {key: op for key, op in latest.items() if op.kind == "upsert"}


async def _assert_final_state(index: VectorIndex, ops: list[_Op]) -> None:
    expected = _expected(ops)
    assert await index.count("ns") == len(expected)
    for key in IDS:
        record = await index.get("ns", key)
        if key not in expected:
            assert record is None
            continue
        assert record is not None
        assert record.version == expected[key].version
        assert record.metadata == {"v": expected[key].version}
        assert np.allclose(record.vector, normalized(expected[key].vector), atol=1e-6)
        hits = await index.query("ns", expected[key].vector, top_k=1)
        assert hits[0].id == key
    assert_consistent(index, "ns")


async def test_fifty_concurrent_tasks_end_consistent(index: VectorIndex) -> None:
    ops = _operations(50, seed=1)

    await asyncio.gather(*(_apply(index, op) for op in ops))

    await _assert_final_state(index, ops)


async def test_unversioned_races_leave_no_dangling_entries(index: VectorIndex) -> None:
    rows = random_vectors(50, seed=2)

    async def writer(position: int) -> None:
        key = IDS[position % len(IDS)]
        if position % 3 == 0:
            await index.delete("ns", key)
        elif position % 3 == 1:
            await index.upsert("ns", key, rows[position])
        else:
            await index.upsert_many("ns", IDS[:4], rows[position : position + 4])

    await asyncio.gather(*(writer(position) for position in range(46)))

    live = [key for key in IDS if await index.get("ns", key) is not None]
    assert await index.count("ns") == len(live)
    for key in live:
        record = await index.get("ns", key)
        assert record is not None
        # Two keys may hold the same row (a single upsert and a batch wrote it to both),
        # so the key must be among the best hits, not necessarily the first.
        hits = await index.query("ns", record.vector, top_k=len(IDS))
        best = {hit.id for hit in hits if hit.score >= hits[0].score - 1e-6}
        assert key in best
    assert_consistent(index, "ns")


def test_several_event_loops_in_several_threads(tmp_path: Path) -> None:
    """The locks are threading locks, so one index may serve several loops at once."""
    index = VectorIndex(tmp_path, DIMENSION)
    ops = _operations(120, seed=3)
    errors: list[BaseException] = []

    def run(share: list[_Op]) -> None:
        async def main() -> None:
            await asyncio.gather(*(_apply(index, op) for op in share))

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ops[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    asyncio.run(_assert_final_state(index, ops))


async def test_drop_while_writing_loses_nothing_written_after_it(index: VectorIndex) -> None:
    rows = random_vectors(40, seed=4)

    async def write(position: int) -> None:
        await index.upsert("ns", f"id-{position}", rows[position])

    await asyncio.gather(*(write(p) for p in range(20)), index.drop("ns"))
    await asyncio.gather(*(write(p) for p in range(20, 40)))

    count = await index.count("ns")
    assert 20 <= count <= 40
    for position in range(20, 40):
        assert await index.get("ns", f"id-{position}") is not None
    assert_consistent(index, "ns")
