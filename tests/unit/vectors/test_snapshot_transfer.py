"""Moving a snapshot's files elsewhere and back (what the S3 store does), unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors import VectorIndex


async def _saved(folder: Path) -> VectorIndex:
    index = VectorIndex(folder, 4)
    await index.upsert_many("ns", ["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], versions=[3, 4])
    index.checkpoint = 42
    await index.save()
    return index


async def test_exported_files_install_and_load_elsewhere(tmp_path: Path) -> None:
    source = await _saved(tmp_path / "source")
    exported = await source.export_snapshot()
    assert exported is not None
    assert exported.checkpoint == 42
    copy = VectorIndex(tmp_path / "copy", 4)
    await copy.install_snapshot(exported.files)
    await copy.load()
    assert copy.checkpoint == 42
    assert await copy.versions("ns") == {"a": 3, "b": 4}


async def test_no_snapshot_exports_nothing(tmp_path: Path) -> None:
    assert await VectorIndex(tmp_path, 4).export_snapshot() is None


async def test_a_tampered_file_installs_but_never_loads(tmp_path: Path) -> None:
    exported = await (await _saved(tmp_path / "source")).export_snapshot()
    assert exported is not None
    files = dict(exported.files)
    name = next(path for path in files if path.endswith(".faiss"))
    files[name] = files[name][:-1] + bytes([files[name][-1] ^ 0xFF])
    copy = VectorIndex(tmp_path / "copy", 4)
    await copy.install_snapshot(files)
    with pytest.raises(VectorIndexError, match="corrupt or incomplete"):
        await copy.load()


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"CURRENT": b"nonsense\n"},
        {"CURRENT": b"snapshot-" + b"0" * 32 + b"\nabc\n", "../escape": b""},
    ],
)
async def test_files_that_are_not_one_snapshot_are_refused(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    with pytest.raises(VectorIndexError):
        await VectorIndex(tmp_path, 4).install_snapshot(files)
