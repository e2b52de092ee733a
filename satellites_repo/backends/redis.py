"""The Redis backend: whole rows as versioned JSON, written only if newer; read-through cache.

A cached value is ``b"<version>:<fingerprint>:<json>"`` (the codec's cache body, vectors
packed); a tombstone (a deleted row) is ``b"<version>:"`` with a short TTL. Every write
goes through one Lua script that refuses a version older than the one stored, or the
same version in the same shape, so a slow reader that loaded an old row, or a replayed
change, can never put an older row (or a deleted one) back into the cache. The
fingerprint names the model's columns: a row cached before a migration added a column is
of another shape, so a read treats it as a miss and the fill that follows replaces it,
at the same version. A repair (``Operation.REPAIRED``) may also replace an entry at its
own version, whose content drifted. Reads are one GET or MGET for any number of keys,
under ``RedisConfig.call_timeout``: a slow or absent Redis makes a read fall back to
Postgres, never wait (the client never retries).

A tenant-scoped model's keys name the tenant (``RedisBackend.key``, the one place keys are
built): a read in one tenant's unit of work can only spell that tenant's keys, so another
tenant's cached row is out of its reach by construction, whatever key it guesses.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from satellites_repo.backends._isolation import rejected_error
from satellites_repo.errors import ProjectionError, Rejection, TenantError, UnavailableError
from satellites_repo.health import proven
from satellites_repo.model import TENANT_COLUMN, Change, Operation
from satellites_repo.model.codec import digest_of
from satellites_repo.retry import FailureLog

if TYPE_CHECKING:
    from satellites_repo.config import RedisConfig
    from satellites_repo.model import EntitySpec, Registry
    from satellites_repo.types import FillRow, Held, Progress, RowSource

__all__ = ["CachedRow", "RedisBackend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# KEYS[1] the row's key; ARGV: version, the value to store (built by the client so Lua
# never copies the body), TTL seconds, the value's fingerprint ("" for a tombstone), "1"
# for a repair (which replaces whatever its own version holds). Only the head of the
# stored value is read: the version and the shape are all the guard needs. A tombstone's
# shape is "", so no row of its version ever replaces it, but a repair.
_GUARDED_SET = """
local head = redis.call('GETRANGE', KEYS[1], 0, 40)
if head ~= '' then
  local current, shape = string.match(head, '^(%d+):([^:]*)')
  current = tonumber(current)
  local version = tonumber(ARGV[1])
  if current and (current > version or (current == version and ARGV[5] ~= '1' and
                                        (shape == ARGV[4] or shape == ''))) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_GUARDED_SET_SHA = hashlib.sha1(_GUARDED_SET.encode()).hexdigest()

_ERRORS = (RedisError, OSError)
REBUILD_BATCH = 500


@dataclass(frozen=True, slots=True)
class CachedRow:
    """What the cache holds for one key: a row's cache body (see ``RowCodec.cache_body``)
    and the fingerprint of its shape, or a tombstone (``body`` empty)."""

    version: int
    fingerprint: str
    body: bytes

    @property
    def is_tombstone(self) -> bool:
        return not self.body

    @classmethod
    def parse(cls, raw: bytes) -> CachedRow | None:
        head, separator, rest = raw.partition(b":")
        if not separator or not head.isdigit():
            return None
        fingerprint, _, body = rest.partition(b":")
        return cls(int(head), fingerprint.decode(errors="replace"), body)

    def value(self) -> bytes:
        """The row as Redis stores it."""
        if self.is_tombstone:
            return b"%d:" % self.version
        return b"%d:%s:%s" % (self.version, self.fingerprint.encode(), self.body)


def _client(config: RedisConfig, *, socket_timeout: float | None) -> redis.Redis:
    return redis.Redis(
        host=config.host,
        port=config.port,
        db=config.db,
        username=config.username,
        password=config.password_value(),
        socket_timeout=socket_timeout,
        socket_connect_timeout=config.timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),  # a deadline, not a retry storm, bounds every call
    )


class RedisBackend:
    """Write-through projection and read-through cache for repositories with a CachePolicy."""

    name = "redis"
    shared = True

    def __init__(self, config: RedisConfig, registry: Registry) -> None:
        self._config = config
        self._registry = registry
        self._client: redis.Redis | None = None
        self._reader: redis.Redis | None = None
        self.read_failures = FailureLog(logger, "a Redis cache call", then="using Postgres")

    @property
    def client(self) -> redis.Redis:
        """The native redis-py client (open between ``open`` and ``close``)."""
        if self._client is None:
            raise UnavailableError(self.name, "not connected")
        return self._client

    def key(self, spec: EntitySpec, key: str, tenant: str | None = None) -> str:
        """The Redis key of one row: ``<prefix><table>:<key>``, and on a tenant-scoped
        model ``<prefix><table>:<tenant>:<key>`` (``tenant`` required).

        The tenant is percent-encoded, so it holds no ``:`` (nor a SCAN wildcard): where
        it ends is never in doubt, and no tenant and key can spell another tenant's key.
        """
        table = f"{self._config.key_prefix}{spec.table}:"
        if not spec.tenant_scoped:
            return table + key
        if tenant is None:
            raise TenantError(f"{spec.table} is tenant-scoped: its cache keys need the tenant")
        return f"{table}{quote(tenant, safe='')}:{key}"

    def pattern(self, spec: EntitySpec) -> str:
        """The SCAN ``MATCH`` pattern of every cached row of ``spec`` (every tenant's)."""
        return f"{self._config.key_prefix}{spec.table}:*"

    def row_of(self, spec: EntitySpec, redis_key: str) -> tuple[str | None, str]:
        """(tenant, primary key) of a key ``key`` built (tenant ``None``: not scoped)."""
        rest = redis_key.removeprefix(f"{self._config.key_prefix}{spec.table}:")
        if not spec.tenant_scoped:
            return None, rest
        tenant, _, key = rest.partition(":")
        return unquote(tenant), key

    def key_of_change(self, spec: EntitySpec, change: Change) -> str | None:
        """The key of a change's row (its tenant from the payload); ``None`` for a
        tenant-scoped change whose payload does not say the tenant."""
        tenant = change.payload.get(TENANT_COLUMN) if spec.tenant_scoped else None
        if spec.tenant_scoped and not isinstance(tenant, str):
            return None
        return self.key(spec, change.key, tenant)

    def covers(self, spec: EntitySpec) -> bool:
        return spec.cache is not None

    def columns_held(self, spec: EntitySpec) -> None:
        """Whole rows: every change of a cached row is written."""
        return None

    async def open(self) -> None:
        """Two pools: the native client (deliveries, operations; socket timeouts), and the
        request path's reader, whose one deadline is ``call_timeout`` around each call: a
        socket timeout there would add redis-py's own timer (and a task per send) to every
        cached read. A call cancelled by the deadline drops its connection (redis-py)."""
        client = _client(self._config, socket_timeout=self._config.timeout)
        self._client = await proven(client, _ping, client.aclose)
        self._reader = _client(self._config, socket_timeout=None)

    async def close(self) -> None:
        for client in (self._reader, self._client):
            if client is not None:
                await client.aclose()
        self._client = self._reader = None

    async def check(self) -> None:
        await _ping(self.client)

    async def apply(self, changes: Sequence[Change]) -> None:
        """One pipeline; a key Redis refuses (an error reply) is reported alone in
        ``ProjectionError.rejected`` and stays owed, the other keys are written."""
        writes: list[tuple[str, CachedRow, int, bool]] = []
        written: list[Change] = []
        unkeyed: list[tuple[Change, Rejection]] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.cache is None:
                continue
            key = self.key_of_change(spec, change)
            if key is None:
                unkeyed.append((change, Rejection(f"no {TENANT_COLUMN} in the change")))
                continue
            if change.operation is Operation.DELETED:
                row, ttl = CachedRow(change.version, "", b""), spec.cache.tombstone_ttl
            else:
                body = spec.codec.cache_body(change.payload)
                row, ttl = CachedRow(change.version, spec.codec.fingerprint, body), spec.cache.ttl
            repair = change.operation is Operation.REPAIRED
            writes.append((key, row, ttl, repair))
            written.append(change)
        try:
            replies = await self._write(self.client, writes)
        except _ERRORS as exc:
            raise ProjectionError(self.name, f"cache write failed: {exc}") from exc
        refused = unkeyed + [
            (change, Rejection(f"{type(reply).__name__}: {reply}", permanent=False))
            for change, reply in zip(written, replies, strict=True)
            if isinstance(reply, Exception)
        ]
        error = rejected_error(self.name, "key(s)", refused)
        if error is not None:
            raise error

    async def _write(
        self, client: redis.Redis, writes: Sequence[tuple[str, CachedRow, int, bool]]
    ) -> list[Any]:
        """Guarded writes of (key, row, ttl, repair) in one pipeline round trip; the reply
        of each (an exception where Redis refused that key).

        The script is called by its digest (``EVALSHA``) without asking first whether
        Redis knows it: only after a restart or a ``SCRIPT FLUSH`` does it not, and then
        it is loaded and the refused writes sent again (two more round trips, once).
        """
        if not writes:
            return []
        replies = await _evalsha(client, writes)
        unknown = [at for at, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:
            await client.script_load(_GUARDED_SET)
            again = await _evalsha(client, [writes[at] for at in unknown])
            for at, reply in zip(unknown, again, strict=True):
                replies[at] = reply
        return replies

    async def read(
        self, spec: EntitySpec, keys: Sequence[str], tenant: str | None = None
    ) -> list[CachedRow | None]:
        """One GET or MGET; ``None`` where the key is absent or unreadable."""
        return await self.read_keys([self.key(spec, key, tenant) for key in keys])

    async def read_keys(self, redis_keys: Sequence[str]) -> list[CachedRow | None]:
        """``read`` by Redis keys (as ``key`` builds them, or as SCAN lists them)."""
        return await self._read(self.client, redis_keys)

    async def _read(self, client: redis.Redis, redis_keys: Sequence[str]) -> list[CachedRow | None]:
        if len(redis_keys) == 1:  # GET: a lighter reply than a one-item MGET
            raw_values: list[Any] = [await client.get(redis_keys[0])]
        elif redis_keys:
            raw_values = await client.mget(redis_keys)
        else:
            return []
        return [None if raw is None else CachedRow.parse(raw) for raw in raw_values]

    # -- CacheReader: the request path, under a deadline ---------------------------------

    async def cached(
        self, spec: EntitySpec, keys: Sequence[str], tenant: str | None = None
    ) -> dict[str, bytes]:
        """Live rows of the model's current shape; another shape is a miss (and is
        replaced by the fill after it)."""
        names = [self.key(spec, key, tenant) for key in keys]
        rows = await self._bounded("read", self._read(self._request_client(), names))
        shape = spec.codec.fingerprint
        return {
            key: row.body
            for key, row in zip(keys, rows, strict=True)
            if row is not None and row.fingerprint == shape and not row.is_tombstone
        }

    async def fill(
        self, spec: EntitySpec, rows: Sequence[FillRow], read_at: float, tenant: str | None = None
    ) -> None:
        """Fill after a miss, unless the rows were read too long ago.

        A row deleted after the reader's SELECT leaves a tombstone for ``tombstone_ttl``;
        a fill that can land later than that (its age plus the call's deadline) could put
        the deleted row back, so it is dropped: the next read fills instead.
        """
        if spec.cache is None:
            return
        late = time.monotonic() - read_at + self._config.call_timeout
        if late >= spec.cache.tombstone_ttl:
            logger.debug("skipped a cache fill of %s read %.1fs ago", spec.table, late)
            return
        ttl, shape = spec.cache.ttl, spec.codec.fingerprint
        writes = [
            (self.key(spec, key, tenant), CachedRow(version, shape, body), ttl, False)
            for key, version, body in rows
        ]
        await self._bounded("fill", self._write(self._request_client(), writes))

    def _request_client(self) -> redis.Redis:
        if self._reader is None:
            raise UnavailableError(self.name, "not connected")
        return self._reader

    async def _bounded(self, action: str, call: Awaitable[T]) -> T:
        """``call`` within ``call_timeout``; a failure is logged (once), raised as unavailable."""
        try:
            async with asyncio.timeout(self._config.call_timeout):
                result = await call
        except (*_ERRORS, TimeoutError) as exc:
            self.read_failures.failed(exc)
            reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            raise UnavailableError(self.name, f"cache {action}: {reason}") from exc
        self.read_failures.succeeded()
        return result

    # -- operations ----------------------------------------------------------------------

    async def rebuild(self, spec: EntitySpec, source: RowSource, progress: Progress) -> int:
        """Write every row again through the version guard (warming, never flushing:
        tombstones stay, so slow readers still cannot resurrect deleted rows)."""
        done = 0
        async for batch in source.changes(spec, REBUILD_BATCH):
            await self.apply(batch)
            done += len(batch)
            progress(done)
        return done

    def drift_probe(self, spec: EntitySpec) -> _CacheProbe:
        return _CacheProbe(self, spec)


class _CacheProbe:
    """Only what the cache holds counts: an absent key is not drift (caching is optional).

    A cached entry is compared as the row it holds (``RowCodec.digest`` of its JSON); a
    tombstone has no content. Extras are found by one SCAN of the repository's keys. A
    tenant-scoped row's key is built with the tenant of the row Postgres has.
    """

    def __init__(self, backend: RedisBackend, spec: EntitySpec) -> None:
        self._backend = backend
        self._spec = spec

    def expected(self, row: Change) -> bytes:
        return self._spec.codec.digest(row.payload)

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        located = {row.key: self._backend.key_of_change(self._spec, row) for row in rows}
        keys = [key for key, name in located.items() if name is not None]
        cached = await self._backend.read_keys([name for name in located.values() if name])
        return {
            key: (entry.version, self._digest(entry))
            for key, entry in zip(keys, cached, strict=True)
            if entry is not None
        }

    async def count(self) -> None:
        return None  # Redis counts keys per database, not per prefix

    async def entries(
        self, sample: int | None, skip: Container[str]
    ) -> AsyncIterator[list[tuple[str, int]]]:
        """SCAN's order is the hash table's, unrelated to keys or age: a sample is the
        first ``sample`` live entries it lists."""
        backend, spec = self._backend, self._spec
        listed = 0
        scan = backend.client.scan_iter(match=backend.pattern(spec), count=REBUILD_BATCH)
        async for batch in _batched(scan, REBUILD_BATCH):
            names = {backend.row_of(spec, name.decode())[1]: name.decode() for name in batch}
            keys = [key for key in names if key not in skip]
            cached = await backend.read_keys([names[key] for key in keys])
            live = [
                (key, entry.version)
                for key, entry in zip(keys, cached, strict=True)
                if entry is not None and not entry.is_tombstone
            ]
            if sample is not None:
                live = live[: sample - listed]
            listed += len(live)
            yield live
            if sample is not None and listed >= sample:
                return

    def _digest(self, entry: CachedRow) -> bytes | None:
        if entry.is_tombstone:
            return None
        try:
            document = orjson.loads(entry.body)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            return digest_of({"unreadable": entry.body})
        return self._spec.codec.digest(document)


async def _batched(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _evalsha(
    client: redis.Redis, writes: Sequence[tuple[str, CachedRow, int, bool]]
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for key, row, ttl, repair in writes:
            args = (row.version, row.value(), ttl, row.fingerprint, "1" if repair else "")
            pipe.evalsha(_GUARDED_SET_SHA, 1, key, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


async def _ping(client: redis.Redis) -> None:
    await client.ping()
