"""The Redis cache: whole rows as versioned JSON, written only if newer.

A cached value is ``b"<version>:<json>"``; a tombstone (a deleted row) is
``b"<version>:"`` with a short TTL. Every write goes through one Lua script that refuses
a version not newer than the one stored, so a slow reader that loaded an old row, or a
replayed change, can never put an older row (or a deleted one) back into the cache.
Reads are one MGET for any number of keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError

from satellites_repo.errors import ProjectionError
from satellites_repo.orm.changeset import Change, Operation

if TYPE_CHECKING:
    import redis.asyncio as redis

    from satellites_repo.orm.registry import EntitySpec, Registry

__all__ = ["CachedRow", "RedisCache"]

logger = logging.getLogger(__name__)

# KEYS[1] the row's key; ARGV: version, the value to store ("<version>:<json>", built by
# the client so Lua never copies the body), TTL seconds. Only the head of the stored value
# is read: the version is all the guard needs.
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

CACHE_ERRORS = (RedisError, OSError)


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


class RedisCache:
    """Write-through projection and read-through store for repositories with a CachePolicy."""

    name = "redis"

    def __init__(self, client: redis.Redis, key_prefix: str, registry: Registry) -> None:
        self._client = client
        self._prefix = key_prefix
        self._registry = registry
        self._guarded_set = client.register_script(_GUARDED_SET)

    def key(self, table: str, key: str) -> str:
        return f"{self._prefix}{table}:{key}"

    def covers(self, change: Change) -> bool:
        spec = self._registry.spec_of_table(change.table)
        return spec is not None and spec.cache is not None

    async def apply(self, changes: Sequence[Change]) -> None:
        writes: list[tuple[str, int, bytes, int]] = []
        for change in changes:
            spec = self._registry.spec_of_table(change.table)
            if spec is None or spec.cache is None:
                continue
            if change.operation is Operation.DELETED:
                body, ttl = b"", spec.cache.tombstone_ttl
            else:
                body, ttl = orjson.dumps(change.payload), spec.cache.ttl
            writes.append((self.key(change.table, change.key), change.version, body, ttl))
        try:
            await self._write(writes)
        except CACHE_ERRORS as exc:
            raise ProjectionError("redis", f"cache write failed: {exc}") from exc

    async def _write(self, writes: Sequence[tuple[str, int, bytes, int]]) -> None:
        """Guarded writes of (key, version, body, ttl), in one pipeline round trip."""
        if not writes:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key, version, body, ttl in writes:
                value = b"%d:%s" % (version, body)
                await self._guarded_set(keys=[key], args=[version, value, ttl], client=pipe)
            await pipe.execute()

    async def read(self, spec: EntitySpec, keys: Sequence[str]) -> list[CachedRow | None]:
        """One MGET; ``None`` where the key is absent or unreadable."""
        if not keys:
            return []
        raw_values: list[Any] = await self._client.mget([self.key(spec.table, key) for key in keys])
        return [None if raw is None else CachedRow.parse(raw) for raw in raw_values]

    async def fill(self, spec: EntitySpec, rows: Sequence[tuple[str, int, bytes]]) -> None:
        """Cache rows just read from Postgres, each only if newer than what is there."""
        if spec.cache is None:
            return
        ttl = spec.cache.ttl
        await self._write(
            [(self.key(spec.table, key), version, body, ttl) for key, version, body in rows]
        )


def cache_failure(action: str, table: str, error: Any) -> None:
    """Log a cache error on the read path, where Postgres answers instead."""
    logger.warning("redis %s for %s failed, using Postgres: %s", action, table, error)
