"""Health: the seed's type and the probe that never raises or hangs."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from satellites_repo import Health
from satellites_repo.health import BackendHealth, probe


def test_health_ok() -> None:
    health = Health(ok=True, details={"redis": "connected"})
    assert health.ok is True
    assert health.details["redis"] == "connected"


def test_health_is_immutable() -> None:
    health = Health(ok=True, details={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        health.ok = False  # type: ignore[misc]


def test_aggregate_is_ok_only_when_every_backend_is() -> None:
    up = BackendHealth(status="ok", latency_ms=1.0, error=None)
    down = BackendHealth(status="down", latency_ms=1.0, error="refused")
    assert Health.of({"a": up, "b": up}).ok is True
    assert Health.of({"a": up, "b": down}).ok is False


async def test_probe_reports_success() -> None:
    async def fine() -> None:
        return None

    entry = await probe(fine, within=1)
    assert entry["status"] == "ok"
    assert entry["error"] is None
    assert entry["latency_ms"] >= 0


async def test_probe_turns_an_exception_into_down() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    entry = await probe(refused, within=1)
    assert entry["status"] == "down"
    assert entry["error"] == "ConnectionRefusedError: connection refused"


async def test_probe_gives_up_after_its_timeout() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    entry = await probe(hangs, within=0.05)
    assert entry["status"] == "down"
    assert entry["error"] == "no answer within 0.05s"
