"""Crash-safe snapshots of a whole ``VectorIndex`` on disk.

Layout inside ``index_path``::

    CURRENT                     "snapshot-<hex>\\n<sha256 of its manifest>\\n"
    .lock                       flock'ed by a saving process (never holds data)
    snapshot-<hex>/
        manifest.json           format, dimension, metric, index_type, checkpoint,
                                per namespace: count, file names, sha256 of each file
        <namespace>.faiss       faiss.serialize_index of the namespace's IndexIDMap2
        <namespace>.sidecar     orjson sidecar (id maps, metadata, versions, tombstones)

Why it is crash-safe: a snapshot is written into ``.tmp-<hex>/``, every file and the
folder are fsynced, then the folder is renamed to ``snapshot-<hex>/`` and the parent is
fsynced. Only then is ``CURRENT`` replaced, via a fsynced temporary file and
``os.replace``, which is atomic on POSIX. A crash before that replace leaves the old
``CURRENT`` and its complete snapshot untouched (the stray folder is removed by the next
save); after it, the new snapshot is complete. Older snapshots are deleted last.

Readers trust only ``CURRENT``: they check the manifest's checksum against it and each
file's checksum against the manifest before any byte reaches FAISS or the sidecar
decoder. Saves from several processes are serialised by ``flock`` on ``.lock``; a load
holds the same lock shared while it reads, so no save deletes a snapshot under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from satellites_repo.errors import VectorIndexError
from satellites_repo.vectors._documents import parse_document
from satellites_repo.vectors._stores import IndexSpec
from satellites_repo.vectors._validation import check_namespace

__all__ = [
    "FORMAT",
    "NamespaceFiles",
    "Snapshot",
    "SnapshotFiles",
    "export_snapshot",
    "install_snapshot",
    "read_snapshot",
    "write_snapshot",
]

logger = logging.getLogger(__name__)

FORMAT = 1
_CURRENT = "CURRENT"
_LOCK = ".lock"
_SNAPSHOT_PREFIX = "snapshot-"
_TEMP_PREFIX = ".tmp-"
_SNAPSHOT_NAME = re.compile(r"snapshot-[0-9a-f]{32}")
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class NamespaceFiles:
    """The two files of one namespace, in memory, plus its live count."""

    name: str
    count: int
    index: np.ndarray[Any, np.dtype[np.uint8]]
    sidecar: bytes


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot read back from disk."""

    namespaces: list[NamespaceFiles]
    checkpoint: int | None
    origin: str | None = None


def write_snapshot(
    root: Path,
    spec: IndexSpec,
    namespaces: list[NamespaceFiles],
    checkpoint: int | None,
    origin: str | None = None,
) -> str:
    """Write ``namespaces`` as the new current snapshot of ``root``; return its name."""
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, fcntl.LOCK_EX, create=True):
        token = uuid.uuid4().hex
        temp = root / f"{_TEMP_PREFIX}{token}"
        temp.mkdir()
        try:
            manifest = _write_folder(temp, spec, namespaces, checkpoint, origin)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        name = f"{_SNAPSHOT_PREFIX}{token}"
        temp.rename(root / name)
        _fsync_dir(root)
        _publish(root, name, f"{name}\n{_sha256(manifest)}\n".encode())
        _remove_stale(root, keep=name)
    logger.info("saved %d vector namespaces to %s", len(namespaces), root / name)
    return name


def _publish(root: Path, name: str, pointer: bytes) -> None:
    """Atomically make snapshot ``name`` the current one (the commit point of a save).

    ``pointer``: the ``CURRENT`` text, the folder's name and its manifest's sha256.
    """
    temporary = root / f"{_TEMP_PREFIX}{_CURRENT}-{name}"
    _write_file(temporary, pointer)
    os.replace(temporary, root / _CURRENT)
    _fsync_dir(root)


def _write_folder(
    folder: Path,
    spec: IndexSpec,
    namespaces: list[NamespaceFiles],
    checkpoint: int | None,
    origin: str | None,
) -> bytes:
    """Write every namespace and the manifest into ``folder``, fsynced; return the manifest."""
    entries = {ns.name: _write_namespace(folder, ns) for ns in namespaces}
    manifest = orjson.dumps(
        {
            "format": FORMAT,
            "dimension": spec.dimension,
            "metric": spec.metric,
            "index_type": spec.index_type,
            "checkpoint": checkpoint,
            "origin": origin,
            "created_at": datetime.now(UTC).isoformat(),
            "namespaces": entries,
        },
        option=orjson.OPT_INDENT_2,
    )
    _write_file(folder / _MANIFEST, manifest)
    _fsync_dir(folder)
    return manifest


def read_snapshot(root: Path, spec: IndexSpec) -> Snapshot:
    """Read and verify the current snapshot of ``root`` (empty if there is none).

    Raises ``VectorIndexError`` when anything is missing, corrupt, or made for another
    dimension, metric or index type.
    """
    if not (root / _CURRENT).exists():
        return Snapshot(namespaces=[], checkpoint=None)
    try:
        with _locked(root, fcntl.LOCK_SH, create=False):
            return _read_current(root, spec)
    except OSError as exc:
        raise VectorIndexError(f"cannot read the vector snapshot in {root}: {exc}") from exc


def _read_current(root: Path, spec: IndexSpec) -> Snapshot:
    lines = (root / _CURRENT).read_text(encoding="utf-8").split()
    if len(lines) != 2 or _SNAPSHOT_NAME.fullmatch(lines[0]) is None:
        raise VectorIndexError(f"{root / _CURRENT} is malformed")
    folder = root / lines[0]
    manifest_bytes = (folder / _MANIFEST).read_bytes()
    _verify(manifest_bytes, lines[1], f"{folder / _MANIFEST}")
    manifest = _parse_manifest(manifest_bytes, spec, folder)
    namespaces = [
        _read_namespace(folder, name, entry) for name, entry in manifest["namespaces"].items()
    ]
    checkpoint = manifest["checkpoint"]
    if checkpoint is not None and type(checkpoint) is not int:
        raise VectorIndexError(f"{folder / _MANIFEST}: checkpoint {checkpoint!r} is not an integer")
    origin = manifest.get("origin")
    if origin is not None and not isinstance(origin, str):
        raise VectorIndexError(f"{folder / _MANIFEST}: origin {origin!r} is not a string")
    return Snapshot(namespaces=namespaces, checkpoint=checkpoint, origin=origin)


def _parse_manifest(data: bytes, spec: IndexSpec, folder: Path) -> dict[str, Any]:
    where = folder / _MANIFEST
    manifest = parse_document(data, expected_format=FORMAT, what=str(where))
    expected = {"dimension": spec.dimension, "metric": spec.metric, "index_type": spec.index_type}
    for field, value in expected.items():
        if manifest.get(field) != value:
            raise VectorIndexError(
                f"{where}: snapshot has {field}={manifest.get(field)!r}, this index has {value!r}"
            )
    if not isinstance(manifest.get("namespaces"), dict) or "checkpoint" not in manifest:
        raise VectorIndexError(f"{where}: namespaces or checkpoint missing")
    return manifest


def _write_namespace(folder: Path, files: NamespaceFiles) -> dict[str, Any]:
    index_name, sidecar_name = _file_names(files.name)
    _write_file(folder / index_name, files.index)
    _write_file(folder / sidecar_name, files.sidecar)
    return {
        "count": files.count,
        "index_file": index_name,
        "index_sha256": _sha256(files.index),
        "sidecar_file": sidecar_name,
        "sidecar_sha256": _sha256(files.sidecar),
    }


def _read_namespace(folder: Path, name: str, entry: object) -> NamespaceFiles:
    try:
        check_namespace(name)
        if not isinstance(entry, dict):
            raise ValueError("entry is not an object")
        count = entry["count"]
        index_hash, sidecar_hash = entry["index_sha256"], entry["sidecar_sha256"]
    except (KeyError, ValueError) as exc:
        raise VectorIndexError(f"{folder / _MANIFEST}: bad entry for {name!r} ({exc})") from exc
    index_name, sidecar_name = _file_names(name)
    index = (folder / index_name).read_bytes()
    sidecar = (folder / sidecar_name).read_bytes()
    _verify(index, index_hash, f"{folder / index_name}")
    _verify(sidecar, sidecar_hash, f"{folder / sidecar_name}")
    if type(count) is not int:
        raise VectorIndexError(f"{folder / _MANIFEST}: count of {name!r} is not an integer")
    return NamespaceFiles(
        name=name, count=count, index=np.frombuffer(index, dtype=np.uint8), sidecar=sidecar
    )


def _file_names(namespace: str) -> tuple[str, str]:
    return f"{namespace}.faiss", f"{namespace}.sidecar"


def _verify(data: bytes, expected: object, where: str) -> None:
    if _sha256(data) != expected:
        raise VectorIndexError(f"{where} is corrupt or incomplete: sha256 does not match")


def _sha256(data: bytes | np.ndarray[Any, Any]) -> str:
    return hashlib.sha256(_view(data)).hexdigest()


def _view(data: bytes | np.ndarray[Any, Any]) -> memoryview:
    """A zero-copy view: index files are hundreds of megabytes."""
    return data.data if isinstance(data, np.ndarray) else memoryview(data)


def _write_file(path: Path, data: bytes | np.ndarray[Any, Any]) -> None:
    with path.open("xb") as file:
        file.write(_view(data))
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _locked(root: Path, operation: int, *, create: bool) -> Iterator[None]:
    """Hold ``flock`` on ``root/.lock``; without ``create``, skip it if the file is absent.

    A missing lock file means no save has started yet, so there is nothing to guard.
    """
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    try:
        descriptor = os.open(root / _LOCK, flags, 0o644)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(descriptor, operation)
        yield
    finally:
        os.close(descriptor)


def _remove_stale(root: Path, *, keep: str) -> None:
    """Delete older snapshots and leftovers of interrupted saves; never fails the save."""
    for path in root.iterdir():
        stale_snapshot = path.name.startswith(_SNAPSHOT_PREFIX) and path.name != keep
        if not (stale_snapshot or path.name.startswith(_TEMP_PREFIX)):
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            logger.warning("could not remove stale vector snapshot %s: %s", path, exc)


@dataclass(frozen=True)
class SnapshotFiles:
    """The current snapshot's files as they lie on disk, to move them elsewhere unchanged.

    ``files`` maps paths relative to the index folder (``CURRENT`` and
    ``snapshot-<hex>/...``) to their bytes; ``checkpoint`` is the manifest's.
    """

    files: dict[str, bytes]
    checkpoint: int | None


def export_snapshot(root: Path) -> SnapshotFiles | None:
    """The current snapshot's files, read under the save lock (``None`` if there is none).

    Nothing is verified here: whoever installs them verifies on load.
    """
    if not (root / _CURRENT).exists():
        return None
    with _locked(root, fcntl.LOCK_SH, create=False):
        pointer = (root / _CURRENT).read_bytes()
        lines = pointer.decode("utf-8", errors="replace").split()
        if not lines or _SNAPSHOT_NAME.fullmatch(lines[0]) is None:
            raise VectorIndexError(f"{root / _CURRENT} is malformed")
        folder = root / lines[0]
        files = {f"{folder.name}/{path.name}": path.read_bytes() for path in folder.iterdir()}
    manifest = orjson.loads(files[f"{folder.name}/{_MANIFEST}"])
    files[_CURRENT] = pointer
    return SnapshotFiles(files=files, checkpoint=manifest.get("checkpoint"))


def install_snapshot(root: Path, files: dict[str, bytes]) -> None:
    """Make ``files`` (as ``export_snapshot`` returned them) the current snapshot of ``root``.

    The same commit protocol as ``write_snapshot``: the folder is written and fsynced
    under a temporary name, renamed, then ``CURRENT`` is replaced. Raises
    ``VectorIndexError`` if the files do not form one snapshot folder and its pointer.
    """
    pointer = files.get(_CURRENT, b"").decode("utf-8", errors="replace").split()
    if len(pointer) != 2 or _SNAPSHOT_NAME.fullmatch(pointer[0]) is None:
        raise VectorIndexError("the snapshot's CURRENT pointer is missing or malformed")
    name = pointer[0]
    members = {path: data for path, data in files.items() if path != _CURRENT}
    if any(path.split("/")[0] != name or path.count("/") != 1 for path in members):
        raise VectorIndexError(f"the snapshot holds files outside {name}/")
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, fcntl.LOCK_EX, create=True):
        temp = root / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            for path, data in members.items():
                _write_file(temp / path.split("/")[1], data)
            _fsync_dir(temp)
            shutil.rmtree(root / name, ignore_errors=True)
            temp.rename(root / name)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(root)
        _publish(root, name, files[_CURRENT])
        _remove_stale(root, keep=name)
