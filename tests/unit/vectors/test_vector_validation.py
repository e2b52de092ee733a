"""Invalid input raises ``ValueError`` naming the problem, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import numpy as np
import pytest

from satellites_repo.vectors import VectorIndex

from ._support import DIMENSION, normalized, unit

BAD_NAMESPACES = ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "a b", "é", "a" * 129]


async def _assert_rejected(
    index: VectorIndex, call: Callable[[], Awaitable[Any]], message: str
) -> None:
    """``call`` raises ValueError matching ``message`` and the index is as before."""
    before = {ns: await index.count(ns) for ns in await index.namespaces()}
    with pytest.raises(ValueError, match=message):
        await call()
    assert {ns: await index.count(ns) for ns in await index.namespaces()} == before


@pytest.fixture
async def seeded(index: VectorIndex) -> VectorIndex:
    await index.upsert("ns", "existing", unit(1), {"k": "v"})
    return index


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
async def test_unsafe_namespace_names_are_rejected(seeded: VectorIndex, namespace: str) -> None:
    await _assert_rejected(seeded, lambda: seeded.upsert(namespace, "a", unit(1)), "namespace")
    await _assert_rejected(seeded, lambda: seeded.query(namespace, unit(1)), "namespace")
    await _assert_rejected(seeded, lambda: seeded.delete(namespace, "a", version=1), "namespace")
    await _assert_rejected(seeded, lambda: seeded.drop(namespace), "namespace")


@pytest.mark.parametrize("namespace", ["a", "A.b-c_d", "0", "x" * 128])
async def test_plain_namespace_names_are_accepted(index: VectorIndex, namespace: str) -> None:
    assert await index.upsert(namespace, "a", unit(1)) is True


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (unit(1)[:-1], "vector must have 8 numbers"),
        ([*unit(1), 0.0], "vector must have 8 numbers"),
        ([unit(1)], "vector must have 8 numbers"),
        (unit(float("nan")), "NaN or infinity"),
        (unit(1, float("inf")), "NaN or infinity"),
        (unit(1e39), "NaN or infinity"),  # beyond float32
        (unit(), "all zeros"),
        (["x"] * DIMENSION, "only numbers"),
    ],
)
async def test_bad_vectors_are_rejected(seeded: VectorIndex, vector: Any, message: str) -> None:
    await _assert_rejected(seeded, lambda: seeded.upsert("ns", "a", vector), message)
    await _assert_rejected(seeded, lambda: seeded.query("ns", vector), message)
    assert await seeded.get("ns", "a") is None


@pytest.mark.parametrize("scale", [1e-30, 1e30])
async def test_extreme_but_valid_vectors_are_normalised_exactly(
    index: VectorIndex, scale: float
) -> None:
    """Their float32 sums of squares under- or overflow; they are still valid."""
    await index.upsert("ns", "a", unit(3 * scale, 4 * scale))

    record = await index.get("ns", "a")
    assert record is not None
    assert np.allclose(record.vector, unit(0.6, 0.8))


async def test_extreme_rows_keep_their_place_when_a_batch_is_thinned(index: VectorIndex) -> None:
    tiny = unit(3e-30, 4e-30)
    await index.upsert_many("ns", ["a", "b", "a"], [unit(1), unit(0, 1), tiny], versions=[1, 1, 2])

    a, b = await index.get("ns", "a"), await index.get("ns", "b")
    assert a is not None
    assert b is not None
    assert np.allclose(a.vector, unit(0.6, 0.8))
    assert np.allclose(b.vector, unit(0, 1))


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True, "3"])
async def test_bad_top_k_is_rejected(seeded: VectorIndex, top_k: Any) -> None:
    await _assert_rejected(seeded, lambda: seeded.query("ns", unit(1), top_k=top_k), "top_k")


@pytest.mark.parametrize("vector_id", ["", None, 3, b"a", "\ud800"])
async def test_bad_ids_are_rejected(seeded: VectorIndex, vector_id: Any) -> None:
    await _assert_rejected(seeded, lambda: seeded.upsert("ns", vector_id, unit(1)), "vector_id")
    await _assert_rejected(
        seeded, lambda: seeded.upsert_many("ns", ["ok", vector_id], [unit(1)] * 2), "ids"
    )
    await _assert_rejected(seeded, lambda: seeded.delete_many("ns", ["ok", vector_id]), "ids")


async def test_a_string_is_not_a_list_of_ids(seeded: VectorIndex) -> None:
    await _assert_rejected(
        seeded, lambda: seeded.upsert_many("ns", "ab", [unit(1)] * 2), "not a single string"
    )


@pytest.mark.parametrize(
    "metadata",
    [
        {"k": object()},
        {"k": {"nested": 1}},
        {"k": [[1]]},
        {"k": {1, 2}},
        {"k": b"bytes"},
        {"k": float("nan")},
        {"k": 2**63},
        {1: "non-string key"},
        ["not", "a", "mapping"],
    ],
)
async def test_metadata_must_be_json_safe(seeded: VectorIndex, metadata: Any) -> None:
    await _assert_rejected(
        seeded, lambda: seeded.upsert("ns", "existing", unit(0, 1), metadata), "metadata"
    )
    record = await seeded.get("ns", "existing")
    assert record is not None
    assert record.metadata == {"k": "v"}
    assert np.allclose(record.vector, unit(1))


@pytest.mark.parametrize("version", [-1, True, "1", 1.0, 2**63])
async def test_bad_versions_are_rejected(seeded: VectorIndex, version: Any) -> None:
    await _assert_rejected(
        seeded, lambda: seeded.upsert("ns", "a", unit(1), version=version), "version"
    )
    await _assert_rejected(
        seeded, lambda: seeded.delete("ns", "existing", version=version), "version"
    )


@pytest.mark.parametrize("bad", [-1, True, 2**63, 1.0])
async def test_a_bad_version_in_a_batch_of_plain_ints_is_named(
    seeded: VectorIndex, bad: Any
) -> None:
    """The batch check decides plain ints at once; anything else still gets its name."""
    vectors = [unit(1), unit(0, 1), unit(0, 0, 1)]
    await _assert_rejected(
        seeded,
        lambda: seeded.upsert_many("ns", ["a", "b", "c"], vectors, versions=[1, 2**63 - 1, bad]),
        r"versions\[2\]",
    )


async def test_equal_metadata_in_a_batch_keeps_each_value_and_type(index: VectorIndex) -> None:
    """Equal mappings are checked once and stored once, but True, 1 and 1.0 stay apart."""
    metadata: list[dict[str, Any]] = [{"k": True}, {"k": 1}, {"k": 1.0}, {"k": True}, {"k": "1"}]
    ids = [f"v{n}" for n in range(len(metadata))]
    await index.upsert_many("ns", ids, [unit(n % 3 + 1) for n in range(len(ids))], metadata)
    for key, expected in zip(ids, metadata, strict=True):
        record = await index.get("ns", key)
        assert record is not None
        assert record.metadata == expected
        assert type(record.metadata["k"]) is type(expected["k"])
    matches = await index.query("ns", unit(1), 5, filter={"k": True})
    assert sorted(match.id for match in matches) == ["v0", "v3"]
    matches[0].metadata["k"] = "changed"  # type: ignore[index]  # a copy: the index keeps its own
    assert (await index.query("ns", unit(1), 5, filter={"k": True}))[0].metadata == {"k": True}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"vectors": [unit(1)] * 2}, "vectors has 2 items but ids has 3"),
        ({"vectors": np.ones((3, DIMENSION + 1))}, r"shape \(n, 8\)"),
        ({"metadata": [None] * 2}, "metadata has 2 items"),
        ({"versions": [1] * 4}, "versions has 4 items"),
    ],
)
async def test_batch_lengths_must_match(
    seeded: VectorIndex, arguments: dict[str, Any], message: str
) -> None:
    batch: dict[str, Any] = {"vectors": [unit(1), unit(0, 1), unit(0, 0, 1)], **arguments}
    await _assert_rejected(
        seeded, lambda: seeded.upsert_many("ns", ["a", "b", "c"], **batch), message
    )


async def test_one_bad_item_rejects_the_whole_batch(seeded: VectorIndex) -> None:
    ids = ["existing", "b", "c"]
    good = [unit(0, 1), unit(0, 0, 1), unit(0, 0, 0, 1)]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"vectors": [*good[:2], unit(float("nan"))]}, r"vectors\[2\] contains NaN"),
        ({"vectors": [*good[:2], unit()]}, r"vectors\[2\] is all zeros"),
        ({"vectors": good, "metadata": [{}, {}, {"k": object()}]}, r"metadata\[2\]"),
        ({"vectors": good, "versions": [1, 2, -3]}, r"versions\[2\]"),
    ]
    for arguments, message in cases:
        await _assert_rejected(seeded, partial(seeded.upsert_many, "ns", ids, **arguments), message)
    await _assert_rejected(
        seeded, lambda: seeded.delete_many("ns", ids, versions=[1, 2, -3]), r"versions\[2\]"
    )
    record = await seeded.get("ns", "existing")
    assert record is not None
    assert np.allclose(record.vector, normalized(unit(1)))
    assert await seeded.namespaces() == ["ns"]


@pytest.mark.parametrize("query_filter", [{"k": {"a": 1}}, {"k": [object()]}, {3: "x"}, ["k"]])
async def test_bad_filters_are_rejected(seeded: VectorIndex, query_filter: Any) -> None:
    await _assert_rejected(
        seeded, lambda: seeded.query("ns", unit(1), filter=query_filter), "filter"
    )
