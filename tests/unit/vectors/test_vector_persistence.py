"""Snapshots: round trips, atomic replacement, and all-or-nothing loads of bad snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

import satellites_repo.vectors._persistence as persistence
from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors import VectorIndex, VectorRecord

from ._support import DIMENSION, assert_consistent, random_vectors, unit


async def _fill(index: VectorIndex) -> None:
    await index.upsert_many(
        "docs",
        ["empty", "none", "full"],
        [unit(1), unit(0, 1), unit(0, 0, 1)],
        [{}, None, {"tenant_id": "acme", "tags": ["a", "b"]}],
        versions=[1, None, 3],
    )
    await index.delete("docs", "gone", version=9)
    await index.upsert_many("other", [f"id-{i}" for i in range(50)], random_vectors(50))
    await index.delete_many("other", ["id-1", "id-2"])
    index.checkpoint = 1234


async def _state(index: VectorIndex) -> dict[str, object]:
    """Everything observable about an index, for before/after comparisons."""
    records: dict[str, VectorRecord | None] = {}
    for namespace in await index.namespaces():
        for key in ["empty", "none", "full", "gone"] + [f"id-{i}" for i in range(50)]:
            records[f"{namespace}/{key}"] = await index.get(namespace, key)
    return {
        "namespaces": await index.namespaces(),
        "counts": [await index.count(ns) for ns in await index.namespaces()],
        "records": records,
        "checkpoint": index.checkpoint,
    }


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _snapshot_folder(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().split()[0]


def _rewrite(root: Path, name: str, data: bytes) -> None:
    """Replace one snapshot file and fix every checksum, as a subtle bug would."""
    folder = _snapshot_folder(root)
    (folder / name).write_bytes(data)
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    for entry in manifest["namespaces"].values():
        for kind in ("index", "sidecar"):
            if entry[f"{kind}_file"] == name:
                entry[f"{kind}_sha256"] = hashlib.sha256(data).hexdigest()
    manifest_bytes = orjson.dumps(manifest)
    (folder / "manifest.json").write_bytes(manifest_bytes)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    (root / "CURRENT").write_text(f"{folder.name}\n{digest}\n")


async def test_round_trip_keeps_everything(index: VectorIndex, index_type: str) -> None:
    await _fill(index)
    await index.save()

    loaded = VectorIndex(index.index_path, DIMENSION, index_type=index.index_type)
    await loaded.load()

    assert await _state(loaded) == await _state(index)
    assert loaded.checkpoint == 1234
    full = await loaded.get("docs", "full")
    assert full is not None
    assert full.metadata == {"tenant_id": "acme", "tags": ["a", "b"]}
    empty = await loaded.get("docs", "empty")
    assert empty is not None
    assert empty.metadata == {}
    assert empty.version == 1
    assert await loaded.upsert("docs", "gone", unit(1), version=9) is False  # tombstone
    assert await loaded.upsert("docs", "full", unit(1), version=3) is False  # version
    hits = await loaded.query("docs", unit(1), top_k=3, filter={"tags": "b"})
    assert [hit.id for hit in hits] == ["full"]
    await loaded.upsert("other", "new", unit(1))  # labels continue after the saved counter
    for namespace in ("docs", "other"):
        assert_consistent(loaded, namespace)


async def test_save_creates_the_folder_and_keeps_one_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    index = VectorIndex(root, DIMENSION)
    await index.upsert("ns", "a", unit(1))

    await index.save()
    first = _snapshot_folder(root)
    await index.save()

    second = _snapshot_folder(root)
    assert first != second
    assert _names(root) == sorted([".lock", "CURRENT", second.name])
    manifest = orjson.loads((second / "manifest.json").read_bytes())
    assert manifest["dimension"] == DIMENSION
    assert manifest["metric"] == "inner_product"
    assert manifest["index_type"] == "flat"
    assert manifest["namespaces"]["ns"]["count"] == 1


async def test_load_of_a_missing_or_empty_folder_gives_an_empty_index(tmp_path: Path) -> None:
    missing = VectorIndex(tmp_path / "missing", DIMENSION)
    await missing.upsert("ns", "a", unit(1))
    missing.checkpoint = 5

    await missing.load()

    assert await missing.namespaces() == []
    assert missing.checkpoint is None
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    empty = VectorIndex(tmp_path / "empty", DIMENSION)
    await empty.load()
    assert await empty.namespaces() == []


async def test_save_and_load_with_no_namespaces(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, DIMENSION)
    index.checkpoint = 0
    await index.save()

    loaded = VectorIndex(tmp_path, DIMENSION)
    await loaded.load()

    assert await loaded.namespaces() == []
    assert loaded.checkpoint == 0


async def test_dropped_namespaces_are_not_saved(tmp_path: Path) -> None:
    index = VectorIndex(tmp_path, DIMENSION)
    await index.upsert("keep", "a", unit(1))
    await index.upsert("drop", "a", unit(1))
    await index.drop("drop")
    await index.save()

    loaded = VectorIndex(tmp_path, DIMENSION)
    await loaded.load()

    assert await loaded.namespaces() == ["keep"]


@pytest.fixture
async def saved(tmp_path: Path) -> Path:
    """A folder holding a valid snapshot of ``_fill``."""
    index = VectorIndex(tmp_path / "saved", DIMENSION)
    await _fill(index)
    await index.save()
    return tmp_path / "saved"


@pytest.fixture
async def busy(tmp_path: Path) -> VectorIndex:
    """An index with state of its own, which a failed load must leave untouched."""
    index = VectorIndex(tmp_path / "saved", DIMENSION)
    await index.upsert("mine", "x", unit(0, 0, 0, 1), {"k": 1}, version=4)
    index.checkpoint = 77
    return index


async def _assert_load_fails(index: VectorIndex, message: str) -> None:
    before = await _state(index)
    with pytest.raises(VectorIndexError, match=message):
        await index.load()
    assert await _state(index) == before


async def test_truncated_index_file_is_rejected(saved: Path, busy: VectorIndex) -> None:
    index_file = _snapshot_folder(saved) / "other.faiss"
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])

    await _assert_load_fails(busy, "other.faiss is corrupt or incomplete")


async def test_flipped_byte_in_a_sidecar_is_rejected(saved: Path, busy: VectorIndex) -> None:
    sidecar = _snapshot_folder(saved) / "docs.sidecar"
    data = bytearray(sidecar.read_bytes())
    data[10] ^= 0xFF
    sidecar.write_bytes(bytes(data))

    await _assert_load_fails(busy, "docs.sidecar is corrupt or incomplete")


async def test_tampered_manifest_is_rejected(saved: Path, busy: VectorIndex) -> None:
    manifest = _snapshot_folder(saved) / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"checkpoint": 1234', b'"checkpoint": 1'))

    await _assert_load_fails(busy, "manifest.json is corrupt or incomplete")


async def test_missing_snapshot_folder_is_rejected(saved: Path, busy: VectorIndex) -> None:
    folder = _snapshot_folder(saved)
    folder.rename(saved / "elsewhere")

    await _assert_load_fails(busy, "cannot read the vector snapshot")


async def test_malformed_current_pointer_is_rejected(saved: Path, busy: VectorIndex) -> None:
    (saved / "CURRENT").write_text("../../etc\nabc\n")

    await _assert_load_fails(busy, "CURRENT is malformed")


async def test_sidecar_that_disagrees_with_the_index_is_rejected(
    saved: Path, busy: VectorIndex
) -> None:
    sidecar = orjson.loads((_snapshot_folder(saved) / "other.sidecar").read_bytes())
    for column in ("ids", "labels", "metadata", "versions"):
        sidecar[column] = sidecar[column][1:]
    _rewrite(saved, "other.sidecar", orjson.dumps(sidecar))

    await _assert_load_fails(busy, "hold different labels")


async def test_malformed_sidecar_is_rejected(saved: Path, busy: VectorIndex) -> None:
    sidecar = orjson.loads((_snapshot_folder(saved) / "docs.sidecar").read_bytes())
    sidecar["versions"][0] = "one"
    _rewrite(saved, "docs.sidecar", orjson.dumps(sidecar))

    await _assert_load_fails(busy, "sidecar is malformed")


async def test_unreadable_faiss_data_is_rejected(saved: Path, busy: VectorIndex) -> None:
    _rewrite(saved, "docs.faiss", b"not a faiss index at all")

    await _assert_load_fails(busy, "FAISS could not read the index")


async def test_dimension_mismatch_is_rejected(saved: Path, tmp_path: Path) -> None:
    other = VectorIndex(saved, DIMENSION * 2)
    await other.upsert("mine", "x", random_vectors(1, dimension=DIMENSION * 2)[0])

    await _assert_load_fails(other, "dimension=8, this index has 16")


async def test_index_type_mismatch_is_rejected(saved: Path) -> None:
    other = VectorIndex(saved, DIMENSION, index_type="hnsw")

    await _assert_load_fails(other, "index_type='flat', this index has 'hnsw'")


async def test_crash_before_the_pointer_moves_keeps_the_old_snapshot(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = VectorIndex(saved, DIMENSION)
    await index.load()
    await index.upsert("docs", "late", unit(1))

    def crash(root: Path, name: str, manifest: bytes) -> None:
        raise OSError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(persistence, "_publish", crash)
        with pytest.raises(OSError, match="power cut"):
            await index.save()

    reloaded = VectorIndex(saved, DIMENSION)
    await reloaded.load()
    assert await reloaded.get("docs", "late") is None
    assert await reloaded.count("docs") == 3

    await index.save()  # the next save clears what the crashed one left behind
    assert [name for name in _names(saved) if name.startswith(("snapshot-", ".tmp-"))] == [
        _snapshot_folder(saved).name
    ]


async def test_a_failed_write_leaves_no_partial_folder(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = VectorIndex(saved, DIMENSION)
    await index.load()
    before = _names(saved)

    def full_disk(folder: Path, files: persistence.NamespaceFiles) -> dict[str, object]:
        raise OSError("no space left on device")

    monkeypatch.setattr(persistence, "_write_namespace", full_disk)
    with pytest.raises(OSError, match="no space left"):
        await index.save()

    assert _names(saved) == before
