"""``satellites demo`` end to end: the command `make demo` runs, on the real servers."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from satellites_repo import DataLayer, DataLayerConfig
from satellites_repo.cli import app

pytestmark = pytest.mark.integration

SATELLITES = Path(sys.executable).parent / "satellites"


async def run_demo(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SATELLITES),
        "demo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ.copy(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_demo_passes_every_check_and_keeps_its_sandbox(
    satellites_config: DataLayerConfig, satellites_token: str
) -> None:
    # The plugin's names for this test double as the demo's sandbox, so the plugin
    # removes what the demo keeps.
    code, out, err = await run_demo("--schema", satellites_token, "--prefix", satellites_token)

    assert code == 0, out + err
    assert "Traceback" not in err
    assert f"Postgres schema {satellites_token}" in out
    assert "1000/1000" in out
    for heading in ("1. Load", "2. Cache", "3. Full-text search", "4. Similar articles"):
        assert heading in out
    for heading in ("5. Hybrid query", "6. Tenant isolation", "7. Update", "8. Rollback"):
        assert heading in out
    assert "hit: Redis" in out
    assert "search('refund invoice', tenant=acme): " in out
    assert re.search(r"event kb_articles\.updated key=[0-9a-f-]{36} version=[0-9]+ ", out)
    assert "new article in faiss" in out
    assert "unchanged" in out
    assert re.search(r"All \d{2,} checks passed in [\d.]+ s", out)
    assert max(len(line) for line in out.splitlines()) <= 100

    async with DataLayer(satellites_config) as kept:
        assert await kept.postgres.fetchval("SELECT count(*) FROM kb_articles") == 1000
        keys = [key async for key in kept.redis.scan_iter(match=f"{satellites_token}:*")]
        assert len(keys) >= 1000
        alias = f"{satellites_token}-kb-articles"
        assert await kept.elasticsearch.indices.exists_alias(name=alias)


def test_a_backend_that_is_down_ends_the_demo_with_a_clear_message(
    satellites_token: str,
) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--schema", satellites_token, "--prefix", satellites_token],
        env={"SATELLITES_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.exit_code == 1, result.output
    assert "demo failed: could not start redis" in result.output
    assert "Are the servers up?" in result.output


@pytest.mark.parametrize(
    "option", [["--schema", "Robert'); DROP"], ["--prefix", "with:colon"], ["--articles", "5"]]
)
def test_bad_options_are_refused_before_anything_runs(option: list[str]) -> None:
    result = CliRunner().invoke(app, ["demo", *option])
    assert result.exit_code == 2, result.output
