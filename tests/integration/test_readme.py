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


async def test_the_quickstart_runs(config: DataLayerConfig, tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(block_after("quickstart"))
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
    assert re.search(r"event: quickstart_articles.created [0-9a-f-]{36} version 1", text), text
    assert "Hello satellites 1 ['Hello satellites']" in text


def test_the_migrations_recipe_is_what_init_writes() -> None:
    assert block_after("alembic-env") == render_project(["myapp.models"])["migrations/env.py"]
