"""Health reports: one aggregate answer, one entry per backend; and proving a new client.

A check never raises and never hangs: each probe runs under its own timeout and a failure
becomes a ``"down"`` entry with the error text. ``proven`` is the same idea at open: a
client is handed out only once a round trip succeeded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, TypeVar

__all__ = ["BackendHealth", "Health", "probe", "proven"]

C = TypeVar("C")

Status = Literal["ok", "down"]


class BackendHealth(TypedDict):
    """One backend's entry in ``Health.details``."""

    status: Status
    latency_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class Health:
    """Aggregate status: ``ok`` only when every backend in ``details`` is ok."""

    ok: bool
    details: Mapping[str, Any]

    @classmethod
    def of(cls, details: Mapping[str, BackendHealth]) -> Health:
        return cls(ok=all(entry["status"] == "ok" for entry in details.values()), details=details)


async def probe(check: Callable[[], Awaitable[object]], within: float) -> BackendHealth:
    """Run one check for at most ``within`` seconds and report how it went and how long it took."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            await check()
    except TimeoutError:
        return _entry("down", started, f"no answer within {within:g}s")
    except Exception as exc:
        return _entry("down", started, f"{type(exc).__name__}: {exc}".strip())
    return _entry("ok", started, None)


def _entry(status: Status, started: float, error: str | None) -> BackendHealth:
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return BackendHealth(status=status, latency_ms=latency_ms, error=error)


async def proven(
    client: C, check: Callable[[C], Awaitable[object]], close: Callable[[], Awaitable[object]]
) -> C:
    """``client`` once a round trip succeeded; closed again (never leaked) if it failed."""
    try:
        await check(client)
    except BaseException:
        await close()
        raise
    return client
