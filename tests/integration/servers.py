"""Servers of a test's own (a private redis-server), so faulting them disturbs no other test."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `make services`", pytrace=False)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir"]
    return subprocess.Popen([*command, str(folder)], stdout=subprocess.DEVNULL)


async def wait_for_redis(port: int) -> None:
    client = redis_asyncio.Redis(port=port)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    await client.ping()
                    return
                except (OSError, redis_asyncio.ConnectionError):
                    await asyncio.sleep(0.05)
    finally:
        await client.aclose()
