"""The Redis backend: whole rows as versioned JSON, written only if newer; read-through cache.

A cached value is ``b"<version>:<json>"``; a tombstone (a deleted row) is
``b"<version>:"`` with a short TTL. Every write goes through one Lua script that refuses
a version not newer than the one stored, so a slow reader that loaded an old row, or a
replayed change, can never put an older row (or a deleted one) back into the cache. A
repair (``Operation.REPAIRED``) may also replace an entry at its own version, whose
content drifted.
Reads are one MGET for any number of keys, under ``RedisConfig.call_timeout``: a slow or
absent Redis makes a read fall back to Postgres, never wait (the client never retries).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from satellites_repo.backends._isolation import rejected_error
from satellites_repo.errors import ProjectionError, Rejection, UnavailableError
from satellites_repo.health import proven
from satellites_repo.model import Change, Operation, json_bytes
from satellites_repo.model.codec import digest_of
from satellites_repo.retry import FailureLog

if TYPE_CHECKING:
    from satellites_repo.config import RedisConfig
    from satellites_repo.model import EntitySpec, Registry
    from satellites_repo.types import Held, Progress, RowSource

__all__ = ["CachedRow", "RedisBackend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# KEYS[1] the row's key; ARGV: the version a stored one must be below for the write to
# apply (the row's version, or one more for a repair, which may replace content at the
# same version), the value to store ("<version>:<json>", built by the client so Lua never
# copies the body), TTL seconds. Only the head of the stored value is read: the version
# is all the guard needs.
_GUARDED_SET = """
local head = redis.call('GETRANGE', KEYS[1], 0, 20)
if head ~= '' then
  local current = tonumber(string.match(head, '^(%d+):'))
  if current and current >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_ERRORS = (RedisError, OSError)
REBUILD_BATCH = 500


@dataclass(frozen=True, slots=True)
class CachedRow:
    """What the cache holds for one key: a row's JSON, or a tombstone (``body`` empty)."""

    version: int
    body: bytes

    @property
    def is_tombstone(self) -> bool:
        return not self.body

    @classmethod
    def parse(cls, raw: bytes) -> CachedRow | None:
        head, separator, body = raw.partition(b":")
        if not separator or not head.isdigit():
            return None
        return cls(int(head), body)


def _client(config: RedisConfig) -> redis.Redis:
    return redis.Redis(
        host=config.host,
        port=config.port,
        db=config.db,
        username=config.username,
        password=config.password_value(),
        socket_timeout=config.timeout,
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
        self._guarded_set: Any = None
        self.read_failures = FailureLog(logger, "a Redis cache call", then="using Postgres")

    @property
    def client(self) -> redis.Redis:
        """The native redis-py client (open between ``open`` and ``close``)."""
        if self._client is None:
            raise UnavailableError(self.name, "not connected")
        return self._client

    def key(self, table: str, key: str) -> str:
        return f"{self._config.key_prefix}{table}:{key}"

    def pattern(self, spec: EntitySpec) -> str:
        """The SCAN ``MATCH`` pattern of every cached row of ``spec``."""
        return f"{self._config.key_prefix}{spec.table}:*"

    def row_of(self, spec: EntitySpec, redis_key: str) -> str:
        """The primary key of a Redis key that ``key`` built."""
        return redis_key.removeprefix(f"{self._config.key_prefix}{spec.table}:")

    def covers(self, spec: EntitySpec) -> bool:
        return spec.cache is not None

    async def open(self) -> None:
        client = _client(self._config)
        self._client = await proven(client, _ping, client.aclose)
        self._guarded_set = self._client.register_script(_GUARDED_SET)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def check(self) -> None:
        await _ping(self.client)

    async def apply(self, changes: Sequence[Change]) -> None:
        """One pipeline; a key Redis refuses (an error reply) is reported alone in
        ``ProjectionError.rejected`` and stays owed, the other keys are written."""
        writes: list[tuple[str, int, bytes, int, int]] = []
        written: list[Change] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.cache is None:
                continue
            if change.operation is Operation.DELETED:
                body, ttl = b"", spec.cache.tombstone_ttl
            else:
                body, ttl = json_bytes(change.payload), spec.cache.ttl
            refused_at = change.version + (1 if change.operation is Operation.REPAIRED else 0)
            key = self.key(change.table, change.key)
            writes.append((key, change.version, body, ttl, refused_at))
            written.append(change)
        try:
            replies = await self._write(writes)
        except _ERRORS as exc:
            raise ProjectionError(self.name, f"cache write failed: {exc}") from exc
        refused = [
            (change, Rejection(f"{type(reply).__name__}: {reply}", permanent=False))
            for change, reply in zip(written, replies, strict=True)
            if isinstance(reply, Exception)
        ]
        error = rejected_error(self.name, "key(s)", refused)
        if error is not None:
            raise error

    async def _write(self, writes: Sequence[tuple[str, int, bytes, int, int]]) -> list[Any]:
        """Guarded writes of (key, version, body, ttl, refused_at: the stored version that
        refuses it) in one pipeline round trip; the reply of each (an exception where Redis
        refused that key)."""
        if not writes:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key, version, body, ttl, refused_at in writes:
                value = b"%d:%s" % (version, body)
                await self._guarded_set(keys=[key], args=[refused_at, value, ttl], client=pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies

    async def read(self, spec: EntitySpec, keys: Sequence[str]) -> list[CachedRow | None]:
        """One MGET; ``None`` where the key is absent or unreadable."""
        if not keys:
            return []
        raw_values: list[Any] = await self.client.mget([self.key(spec.table, key) for key in keys])
        return [None if raw is None else CachedRow.parse(raw) for raw in raw_values]

    # -- CacheReader: the request path, under a deadline ---------------------------------

    async def cached(self, spec: EntitySpec, keys: Sequence[str]) -> dict[str, bytes]:
        rows = await self._bounded("read", self.read(spec, keys))
        return {
            key: row.body
            for key, row in zip(keys, rows, strict=True)
            if row is not None and not row.is_tombstone
        }

    async def fill(
        self, spec: EntitySpec, rows: Sequence[tuple[str, int, bytes]], read_at: float
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
        ttl = spec.cache.ttl
        writes = [
            (self.key(spec.table, key), version, body, ttl, version) for key, version, body in rows
        ]
        await self._bounded("fill", self._write(writes))

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
    tombstone has no content. Extras are found by one SCAN of the repository's keys.
    """

    def __init__(self, backend: RedisBackend, spec: EntitySpec) -> None:
        self._backend = backend
        self._spec = spec

    def expected(self, row: Change) -> bytes:
        return self._spec.codec.digest(row.payload)

    async def held(self, rows: Sequence[Change]) -> Mapping[str, Held | None]:
        keys = [row.key for row in rows]
        cached = await self._backend.read(self._spec, keys)
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
            listed_keys = (backend.row_of(spec, name.decode()) for name in batch)
            keys = [key for key in listed_keys if key not in skip]
            cached = await backend.read(spec, keys)
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


async def _ping(client: redis.Redis) -> None:
    await client.ping()
