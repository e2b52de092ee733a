"""Behaviour of ``VectorIndex``: writes, versions, reads and namespaces, for both types."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from satellites_repo.vectors import VectorIndex, VectorMatch, VectorRecord

from ._support import DIMENSION, assert_consistent, normalized, random_vectors, unit


async def test_upsert_of_an_existing_id_replaces_its_vector(index: VectorIndex) -> None:
    await index.upsert("ns", "a", unit(1), {"v": 1})
    await index.upsert("ns", "b", unit(0, 1))

    assert await index.upsert("ns", "a", unit(0, 0, 1), {"v": 2}) is True

    assert await index.count("ns") == 2
    hits = await index.query("ns", unit(0, 0, 1), top_k=5)
    assert [(hit.id, round(hit.score, 6)) for hit in hits] == [("a", 1.0), ("b", 0.0)]
    assert hits[0].metadata == {"v": 2}
    old_direction = await index.query("ns", unit(1), top_k=5)
    assert all(hit.score < 0.5 for hit in old_direction)
    assert_consistent(index, "ns")


async def test_flat_delete_removes_from_faiss_without_rebuilding(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, DIMENSION)
    await index.upsert_many("ns", [f"id-{i}" for i in range(20)], random_vectors(20))
    faiss_index = index._namespaces["ns"]._store._index

    assert await index.delete("ns", "id-3") is True

    assert index._namespaces["ns"]._store._index is faiss_index
    assert faiss_index.ntotal == 19
    assert await index.count("ns") == 19
    assert_consistent(index, "ns")


async def test_labels_are_never_reused(index: VectorIndex) -> None:
    await index.upsert_many("ns", ["a", "b"], [unit(1), unit(0, 1)])
    await index.delete("ns", "b")
    await index.upsert("ns", "a", unit(0, 0, 1))
    await index.upsert("ns", "c", unit(0, 0, 0, 1))

    namespace = index._namespaces["ns"]
    assert namespace._labels == {"a": 2, "c": 3}
    assert namespace._next_label == 4


async def test_upsert_many_accepts_lists_and_arrays(index: VectorIndex) -> None:
    rows = random_vectors(3)

    assert await index.upsert_many("lists", ["a", "b", "c"], rows.tolist()) == [True] * 3
    assert await index.upsert_many("array", ["a", "b", "c"], rows.astype(np.float64)) == [True] * 3

    for namespace in ("lists", "array"):
        record = await index.get(namespace, "b")
        assert record is not None
        assert np.allclose(record.vector, normalized(rows[1]), atol=1e-6)


async def test_upsert_many_repeated_id_last_one_wins(index: VectorIndex) -> None:
    applied = await index.upsert_many(
        "ns",
        ["a", "b", "a"],
        [unit(1), unit(0, 1), unit(0, 0, 1)],
        [{"n": 1}, None, {"n": 3}],
    )

    assert applied == [True, True, True]
    assert await index.count("ns") == 2
    record = await index.get("ns", "a")
    assert record is not None
    assert record.metadata == {"n": 3}
    assert np.allclose(record.vector, unit(0, 0, 1))
    assert [hit.id for hit in await index.query("ns", unit(1), top_k=5)] != ["a"]
    assert_consistent(index, "ns")


async def test_upsert_many_repeated_id_highest_version_wins(index: VectorIndex) -> None:
    applied = await index.upsert_many(
        "ns", ["a", "a", "a"], [unit(1), unit(0, 1), unit(0, 0, 1)], versions=[1, 3, 2]
    )

    assert applied == [True, True, False]
    record = await index.get("ns", "a")
    assert record is not None
    assert record.version == 3
    assert np.allclose(record.vector, unit(0, 1))
    assert_consistent(index, "ns")


async def test_upsert_many_empty_batch_is_a_no_op(index: VectorIndex) -> None:
    assert await index.upsert_many("ns", [], []) == []
    assert await index.namespaces() == []


async def test_large_batch_is_added_beside_the_bookkeeping(index: VectorIndex) -> None:
    count = 5000  # above BESIDE_THRESHOLD: FAISS adds on a helper thread
    ids = [f"id-{i}" for i in range(count)]
    rows = random_vectors(count)

    await index.upsert_many("ns", ids, rows, versions=list(range(count)))
    await index.upsert_many("ns", [*ids[:10], "new"], rows[:11])

    assert await index.count("ns") == count + 1
    for key, row, version in (("id-4999", 4999, 4999), ("id-0", 0, None), ("new", 10, None)):
        record = await index.get("ns", key)
        assert record is not None
        assert record.version == version
        assert np.allclose(record.vector, normalized(rows[row]), atol=1e-6)
    assert_consistent(index, "ns")


async def test_callers_array_is_never_modified(index: VectorIndex) -> None:
    rows = random_vectors(5000)
    original = rows.copy()

    await index.upsert_many("ns", [f"id-{i}" for i in range(5000)], rows)
    await index.upsert("ns", "one", rows[0])
    await index.query("ns", rows[1])

    assert np.array_equal(rows, original)


async def test_stale_versioned_upsert_is_ignored(index: VectorIndex) -> None:
    assert await index.upsert("ns", "a", unit(1), {"v": 5}, version=5) is True

    assert await index.upsert("ns", "a", unit(0, 1), {"v": 4}, version=4) is False
    assert await index.upsert("ns", "a", unit(0, 1), {"v": 5}, version=5) is False
    record = await index.get("ns", "a")
    assert record == VectorRecord(id="a", vector=tuple(unit(1)), metadata={"v": 5}, version=5)

    assert await index.upsert("ns", "a", unit(0, 1), {"v": 6}, version=6) is True
    record = await index.get("ns", "a")
    assert record is not None
    assert record.version == 6


async def test_a_rewrite_replaces_the_same_version_never_an_older_one(
    index: VectorIndex,
) -> None:
    await index.upsert_many("ns", ["a", "b"], [unit(1), unit(1)], [{"v": 1}, None], versions=[5, 5])

    applied = await index.upsert_many(
        "ns", ["a", "b"], [unit(0, 1), unit(0, 1)], [{"v": 2}, None], versions=[5, 4], rewrite=True
    )

    assert applied == [True, False]
    a, b = await index.get_many("ns", ["a", "b"])
    assert a == VectorRecord(id="a", vector=tuple(unit(0, 1)), metadata={"v": 2}, version=5)
    assert b is not None
    assert (b.vector, b.version) == (tuple(unit(1)), 5)
    assert await index.upsert("ns", "a", unit(1), version=5) is False  # not without rewrite
    assert_consistent(index, "ns")


async def test_get_many_answers_in_order_with_none_where_absent(index: VectorIndex) -> None:
    assert await index.get_many("unknown", ["a"]) == [None]
    await index.upsert_many("ns", ["a", "b"], [unit(1), unit(0, 1)], versions=[1, 2])

    found = await index.get_many("ns", ["b", "x", "a"])

    assert [None if record is None else record.id for record in found] == ["b", None, "a"]
    assert found[0] == await index.get("ns", "b")


async def test_unversioned_upsert_always_applies_and_clears_the_version(
    index: VectorIndex,
) -> None:
    await index.upsert("ns", "a", unit(1), version=9)

    assert await index.upsert("ns", "a", unit(0, 1)) is True

    record = await index.get("ns", "a")
    assert record is not None
    assert record.version is None
    assert await index.upsert("ns", "a", unit(0, 0, 1), version=1) is True


async def test_versioned_delete_leaves_a_tombstone(index: VectorIndex) -> None:
    await index.upsert("ns", "a", unit(1), version=1)

    assert await index.delete("ns", "a", version=2) is True

    assert await index.upsert("ns", "a", unit(1), version=1) is False
    assert await index.upsert("ns", "a", unit(1), version=2) is False
    assert await index.get("ns", "a") is None
    assert await index.upsert("ns", "a", unit(0, 1), version=3) is True
    assert await index.count("ns") == 1


async def test_versioned_delete_of_a_missing_id_still_blocks_stale_upserts(
    index: VectorIndex,
) -> None:
    assert await index.delete("ns", "ghost", version=7) is False

    assert await index.upsert("ns", "ghost", unit(1), version=6) is False
    assert await index.count("ns") == 0
    assert await index.upsert("ns", "ghost", unit(1), version=8) is True


async def test_stale_versioned_delete_is_ignored(index: VectorIndex) -> None:
    await index.upsert("ns", "a", unit(1), version=5)

    assert await index.delete("ns", "a", version=4) is False

    assert await index.count("ns") == 1
    assert await index.upsert("ns", "a", unit(0, 1), version=5) is False


async def test_unversioned_delete_of_a_missing_id_creates_nothing(index: VectorIndex) -> None:
    assert await index.delete("nowhere", "a") is False
    assert await index.delete_many("nowhere", ["a", "b"]) == [False, False]
    assert await index.namespaces() == []


async def test_delete_many_reports_each_id(index: VectorIndex) -> None:
    await index.upsert_many("ns", ["a", "b", "c"], [unit(1), unit(0, 1), unit(0, 0, 1)])

    assert await index.delete_many("ns", ["a", "x", "a", "c"]) == [True, False, False, True]

    assert [hit.id for hit in await index.query("ns", unit(1, 1, 1), top_k=10)] == ["b"]
    assert_consistent(index, "ns")


async def test_delete_many_with_versions(index: VectorIndex) -> None:
    await index.upsert_many("ns", ["a", "b"], [unit(1), unit(0, 1)], versions=[3, 3])

    assert await index.delete_many("ns", ["a", "b", "c"], versions=[2, 3, 1]) == [
        False,
        True,
        False,
    ]

    assert await index.count("ns") == 1
    assert await index.upsert("ns", "c", unit(1), version=1) is False


async def test_metadata_round_trips_as_given(index: VectorIndex) -> None:
    metadata = {"s": "x", "i": 2**62, "f": 0.5, "b": True, "n": None, "l": ["a", 1]}
    await index.upsert_many(
        "ns", ["empty", "none", "full"], [unit(1), unit(0, 1), unit(0, 0, 1)], [{}, None, metadata]
    )

    records = {key: await index.get("ns", key) for key in ("empty", "none", "full")}
    assert {key: r.metadata for key, r in records.items() if r is not None} == {
        "empty": {},
        "none": None,
        "full": metadata,
    }
    hits = {hit.id: hit.metadata for hit in await index.query("ns", unit(1, 1, 1), top_k=3)}
    assert hits == {"empty": {}, "none": None, "full": metadata}


async def test_metadata_is_copied_in_and_out(index: VectorIndex) -> None:
    given: dict[str, object] = {"tags": ["a"]}
    await index.upsert("ns", "a", unit(1), given)
    given["tags"] = ["changed"]

    first = await index.query("ns", unit(1), top_k=1)
    assert first[0].metadata == {"tags": ["a"]}
    returned = first[0].metadata
    assert isinstance(returned, dict)
    returned["tags"].append("b")

    again = await index.query("ns", unit(1), top_k=1, filter={"tags": "a"})
    assert again == [VectorMatch(id="a", score=again[0].score, metadata={"tags": ["a"]})]


async def test_get_returns_the_normalised_vector(index: VectorIndex) -> None:
    await index.upsert("ns", "a", unit(3, 4), {"k": "v"}, version=2)

    record = await index.get("ns", "a")

    assert record is not None
    assert record.id == "a"
    assert np.allclose(record.vector, unit(0.6, 0.8))
    assert isinstance(record.vector, tuple)
    assert record.metadata == {"k": "v"}
    assert record.version == 2
    assert await index.get("ns", "missing") is None
    assert await index.get("unknown", "a") is None


async def test_scores_are_cosine_similarities(index: VectorIndex) -> None:
    await index.upsert("ns", "a", unit(10, 0))
    await index.upsert("ns", "b", unit(1, 1))
    await index.upsert("ns", "c", unit(-1, 0))

    hits = await index.query("ns", unit(2, 0), top_k=3)

    assert [hit.id for hit in hits] == ["a", "b", "c"]
    assert [hit.score for hit in hits] == pytest.approx([1.0, math.sqrt(0.5), -1.0], abs=1e-6)


async def test_query_returns_at_most_what_exists(index: VectorIndex) -> None:
    await index.upsert_many("ns", ["a", "b"], [unit(1), unit(0, 1)])

    assert len(await index.query("ns", unit(1), top_k=10)) == 2
    assert await index.query("unknown", unit(1)) == []


async def test_versions_lists_every_live_id(index: VectorIndex) -> None:
    await index.upsert_many("ns", ["a", "b", "c"], [unit(1), unit(0, 1), unit(0, 0, 1)])
    await index.upsert("ns", "a", unit(1), version=4)
    await index.delete("ns", "c", version=2)

    assert await index.versions("ns") == {"a": 4, "b": None}
    assert await index.versions("unknown") == {}


async def test_count_namespaces_and_drop(index: VectorIndex) -> None:
    await index.upsert("b-ns", "a", unit(1))
    await index.upsert_many("a-ns", ["a", "b"], [unit(1), unit(0, 1)])
    await index.delete("tomb-ns", "x", version=1)

    assert await index.namespaces() == ["a-ns", "b-ns", "tomb-ns"]
    assert await index.count("a-ns") == 2
    assert await index.count("tomb-ns") == 0
    assert await index.count("unknown") == 0

    assert await index.drop("a-ns") is True
    assert await index.drop("a-ns") is False
    assert await index.namespaces() == ["b-ns", "tomb-ns"]
    assert await index.count("a-ns") == 0
    assert await index.query("a-ns", unit(1)) == []
    assert await index.upsert("a-ns", "a", unit(1)) is True
    assert await index.count("a-ns") == 1


async def test_constructor_touches_no_disk(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"

    index = VectorIndex(folder, DIMENSION)
    await index.upsert("ns", "a", unit(1))

    assert not folder.exists()
    assert index.index_path == folder
    assert index.dimension == DIMENSION
    assert index.index_type == "flat"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dimension": 0}, "dimension"),
        ({"dimension": True}, "dimension"),
        ({"index_type": "ivf"}, "index_type"),
        ({"hnsw_m": 0}, "hnsw_m"),
        ({"hnsw_ef_search": -1}, "hnsw_ef_search"),
    ],
)
def test_constructor_rejects_bad_settings(
    tmp_path: Path, arguments: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"index_path": tmp_path, "dimension": 4, **arguments}
    with pytest.raises(ValueError, match=message):
        VectorIndex(**settings)  # type: ignore[arg-type]


def test_checkpoint_accepts_integers_and_none(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, DIMENSION)
    assert index.checkpoint is None

    index.checkpoint = 12
    assert index.checkpoint == 12
    index.checkpoint = None
    assert index.checkpoint is None
    with pytest.raises(ValueError, match="checkpoint"):
        index.checkpoint = "12"  # type: ignore[assignment]


def test_public_names() -> None:
    import satellites_repo.vectors as vectors

    assert sorted(vectors.__all__) == [
        "VectorIndex",
        "VectorMatch",
        "VectorRecord",
        "check_namespace",
        "checked_vector",
    ]
    assert all(hasattr(vectors, name) for name in vectors.__all__)
