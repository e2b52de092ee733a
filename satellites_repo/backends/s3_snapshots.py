"""FAISS snapshots in an S3-compatible store, moved there as the index folder holds them.

Layout under ``s3://bucket/prefix/``, one folder per snapshot::

    <checkpoint, 20 digits>-<UTC time>-<hex>/
        snapshot-<hex>/<namespace>.faiss, <namespace>.sidecar   the data files, first
        snapshot-<hex>/manifest.json                            checksums of the files
        CURRENT                                                 the manifest's checksum, last

The files are the local snapshot's (``vectors/_persistence.py``), byte for byte, so the
store adds no format of its own. ``CURRENT`` is written last and is the commit point: a
folder without it is an upload that was cut and is never loaded. A snapshot is loaded by
installing its files into the local index folder and reading them with
``VectorIndex.load()``, which verifies the manifest against ``CURRENT`` and every file
against the manifest; a snapshot that fails any check is skipped for the next older one.

One writer at a time: an upload holds a Postgres advisory lock keyed on the URL, on a
connection of its own (a writer that dies loses the lock with its connection). An
instance that finds the lock held skips its upload: another one is writing the same
commits. The writer keeps the newest ``snapshot_retention`` snapshots and removes the
rest, and any folder left by a cut upload, ``CURRENT`` first so no reader picks one up
half-deleted.

The client is obstore (the ``satellites-repo[s3]`` extra): the FAISS backend imports this module
only when a store is configured.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from satellites_repo import postgres
from satellites_repo.errors import VectorIndexError

if TYPE_CHECKING:
    from obstore.store import ClientConfig

    from satellites_repo.config import FaissConfig, PostgresConfig
    from satellites_repo.vectors import VectorIndex

__all__ = ["S3Snapshots"]

logger = logging.getLogger(__name__)

_CURRENT = "CURRENT"
_LOCK_NAMESPACE = "satellites.faiss.snapshots:"
_RETRIES = 3

T = TypeVar("T")


class S3Snapshots:
    """Uploads this process's snapshot to the store, and restores the newest good one."""

    def __init__(self, config: FaissConfig, database: PostgresConfig) -> None:
        assert config.snapshot_url is not None
        self.url = config.snapshot_url.rstrip("/")
        self._database = database
        self._retention = config.snapshot_retention
        self._store = _s3_store(config)
        self._lock_key = _lock_key(self.url)
        self.restored: str | None = None
        """The snapshot the last ``restore`` loaded (``None``: none was usable)."""

    # -- restore -------------------------------------------------------------------------

    async def restore(self, index: VectorIndex) -> str | None:
        """Load the newest snapshot that passes every check; its name, or ``None``.

        ``None``: the store has no usable snapshot, or does not answer, so the caller
        rebuilds from Postgres (a start never fails for want of a snapshot). Errors of
        one snapshot (missing files, checksums) are logged and the next older one is tried.
        """
        self.restored = None
        try:
            committed, _ = await self.folders()
        except BaseError as exc:
            logger.warning("cannot list FAISS snapshots in %s: %s", self.url, exc)
            return None
        for name in sorted(committed, reverse=True):
            try:
                await index.install_snapshot(await self._download(name))
                await index.load()
            except (VectorIndexError, FileNotFoundError, BaseError) as exc:
                logger.warning("skipping FAISS snapshot %s/%s: %s", self.url, name, exc)
                continue
            logger.info("loaded FAISS snapshot %s/%s", self.url, name)
            self.restored = name
            return name
        return None

    async def _download(self, name: str) -> dict[str, bytes]:
        paths = await self._paths(name)

        async def one(path: str) -> tuple[str, bytes]:
            result = await obstore.get_async(self._store, path)
            return path.removeprefix(f"{name}/"), bytes(await result.bytes_async())

        return dict(await _all([one(path) for path in paths]))

    # -- upload --------------------------------------------------------------------------

    async def upload(self, index: VectorIndex) -> str | None:
        """Store the index's current local snapshot; its name, or ``None`` if skipped.

        Skipped when another instance holds the writer's lock, or there is no snapshot
        with an outbox position to store.
        """
        connection = await postgres.open_connection(self._database)
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                logger.info("another instance is writing FAISS snapshots to %s; skipped", self.url)
                return None
            try:
                return await self._upload_locked(index)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
        finally:
            await connection.close()

    async def _upload_locked(self, index: VectorIndex) -> str | None:
        exported = await index.export_snapshot()
        if exported is None or exported.checkpoint is None:
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{exported.checkpoint:020d}-{stamp}-{uuid.uuid4().hex[:8]}"
        files = dict(exported.files)
        pointer = files.pop(_CURRENT)
        manifests = [path for path in files if path.endswith("/manifest.json")]
        data = [path for path in files if path not in manifests]
        await _all([obstore.put_async(self._store, f"{name}/{path}", files[path]) for path in data])
        for path in manifests:
            await obstore.put_async(self._store, f"{name}/{path}", files[path])
        await obstore.put_async(self._store, f"{name}/{_CURRENT}", pointer)
        logger.info("stored FAISS snapshot %s/%s", self.url, name)
        await self._prune(keep=name)
        return name

    async def _prune(self, *, keep: str) -> None:
        """Keep the newest ``retention`` snapshots; remove older ones and cut uploads."""
        committed, cut = await self.folders()
        stale = sorted(committed, reverse=True)[self._retention :]
        for name in [*stale, *(name for name in cut if name != keep)]:
            try:
                await self._remove(name)
            except Exception as exc:  # pruning never fails the snapshot that was stored
                logger.warning("could not remove FAISS snapshot %s/%s: %s", self.url, name, exc)

    async def _remove(self, name: str) -> None:
        await obstore.delete_async(self._store, f"{name}/{_CURRENT}")
        paths = await self._paths(name)
        if paths:
            await obstore.delete_async(self._store, paths)

    # -- listing -------------------------------------------------------------------------

    async def _paths(self, name: str) -> list[str]:
        """The files of snapshot ``name``: ``CURRENT`` and ``snapshot-<hex>/<file>``.

        Anything else listed is left out: stores over a file system (s3proxy) list their
        folders as objects too.
        """
        paths = []
        async for batch in obstore.list(self._store, f"{name}/"):
            for meta in batch:
                rest = meta["path"].removeprefix(f"{name}/")
                if rest == _CURRENT or rest.count("/") == 1:
                    paths.append(meta["path"])
        return paths

    async def folders(self) -> tuple[list[str], list[str]]:
        """(snapshot folders with ``CURRENT``: committed, folders without: cut uploads)."""
        committed: set[str] = set()
        seen: set[str] = set()
        async for batch in obstore.list(self._store, None):
            for meta in batch:
                folder, _, rest = meta["path"].partition("/")
                seen.add(folder)
                if rest == _CURRENT:
                    committed.add(folder)
        return sorted(committed), sorted(seen - committed)


async def _all(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await every call, even when one fails (no result is left unretrieved); then raise
    the first failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)


def _s3_store(config: FaissConfig) -> S3Store:
    assert config.snapshot_url is not None
    parts = urlsplit(config.snapshot_url)
    options: ClientConfig = {"timeout": dt.timedelta(seconds=config.s3_timeout)}
    settings: dict[str, Any] = {"region": config.s3_region}
    if config.s3_endpoint_url is not None:
        settings["endpoint"] = config.s3_endpoint_url
        settings["virtual_hosted_style_request"] = False
        options["allow_http"] = config.s3_endpoint_url.startswith("http://")
    keys = config.s3_keys()
    if keys is not None:
        settings["access_key_id"], settings["secret_access_key"] = keys
    return S3Store(
        parts.netloc,
        prefix=parts.path.strip("/") or None,
        client_options=options,
        retry_config={
            "max_retries": _RETRIES,
            "retry_timeout": dt.timedelta(seconds=config.s3_timeout),
        },
        **settings,
    )


def _lock_key(url: str) -> int:
    """A signed 64-bit advisory-lock key for the store's URL."""
    digest = hashlib.sha256(f"{_LOCK_NAMESPACE}{url}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
