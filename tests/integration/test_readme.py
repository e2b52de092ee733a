"""The README's code is run as written."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from satellites_repo import DataLayerConfig
from satellites_repo.migrate.scaffold import render_project
from tests.integration.conftest import subprocess_environment

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def block_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker}:.*?-->\n```python\n(.*?)```", README, re.S)
    assert match is not None, f"no python block after <!-- {marker} --> in README.md"
    return match.group(1)


async def run_block(marker: str, config: DataLayerConfig, tmp_path: Path) -> str:
    """The README's block after ``marker`` run as a script; its output (it must succeed)."""
    script = tmp_path / f"{marker}.py"
    script.write_text(block_after(marker))
    environment = subprocess_environment(
        config,
        SATELLITES_ELASTICSEARCH__REFRESH="true",
        SATELLITES_FAISS__INDEX_PATH=str(tmp_path / "faiss"),
        SATELLITES_FAISS__DIMENSION="4",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text
    return text


async def test_the_quickstart_runs(config: DataLayerConfig, tmp_path: Path) -> None:
    text = await run_block("quickstart", config, tmp_path)
    assert re.search(r"event: quickstart_articles.created [0-9a-f-]{36} version 1", text), text
    assert "Hello satellites 1 ['Hello satellites']" in text


async def test_the_search_example_runs(config: DataLayerConfig, tmp_path: Path) -> None:
    text = await run_block("search", config, tmp_path)
    assert "total 4 seen 4 facets {'open': 2, 'pending': 2}" in text, text
    assert "suggest 5 True" in text, text
    assert "deleted True True" in text, text


async def test_the_related_fields_example_runs(config: DataLayerConfig, tmp_path: Path) -> None:
    text = await run_block("related", config, tmp_path)
    assert "gold 3 facets {'Acme Corp': 3}" in text, text


async def test_the_tenants_example_runs(config: DataLayerConfig, tmp_path: Path) -> None:
    text = await run_block("tenants", config, tmp_path)
    assert "guessed key None" in text, text
    assert "search ['acme-1']" in text, text
    assert "refused: Case: filter tenant_id='globex' names another tenant" in text, text
    assert "no tenant: refused" in text, text
    assert "all tenants 2" in text, text


def test_the_migrations_recipe_is_what_init_writes() -> None:
    assert block_after("alembic-env") == render_project(["myapp.models"])["migrations/env.py"]
