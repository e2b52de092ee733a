"""A newcomer's first day, from the built wheel, as the README's walk tells it.

The wheel is built from this checkout and installed with its ``[test]`` extra into a fresh
virtual environment outside it (pip fetches the dependencies from PyPI). In a copy of
``examples/helpdesk`` the installed ``satellites`` then runs ``init``, autogenerates the
helpdesk's first revision, applies it with the library's branch to a schema that does not
exist yet, runs the helpdesk's own tests (the plugin's fixtures, in that environment),
checks ``health``, ``verify`` (the app found from the working directory, no PYTHONPATH)
and ``demo`` (shipped in the wheel). All against the real servers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from satellites_repo import DataLayerConfig
from satellites_repo.postgres import open_postgres_pool
from tests.integration.conftest import subprocess_environment

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(1800)


async def run(*command: str | Path, cwd: Path, env: dict[str, str], limit: float = 300) -> str:
    """Run ``command`` in a thread, killed after ``limit`` s; fail unless it exits 0."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def outside_this_checkout(environment: dict[str, str]) -> dict[str, str]:
    """The environment without a trace of this project's virtual environment or sources."""
    hidden = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    return {name: value for name, value in environment.items() if name not in hidden}


@pytest.fixture
async def fresh_schema(
    satellites_config: DataLayerConfig, satellites_token: str
) -> AsyncIterator[str]:
    """A schema name nobody has created; dropped afterwards if the test created it."""
    name = f"{satellites_token}_app"
    yield name
    pool = await open_postgres_pool(satellites_config.postgres.replace(min_connections=1))
    try:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await pool.close()


@pytest.fixture
async def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its [test] extra; its bin folder."""
    here = tmp_path_factory.mktemp("wheel")
    host = outside_this_checkout(dict(os.environ))
    pip_wheel = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", here, ROOT)
    await run(*pip_wheel, cwd=here, env=host, limit=600)
    (wheel,) = here.glob("satellites_repo-*.whl")
    await run(sys.executable, "-m", "venv", here / "venv", cwd=here, env=host, limit=120)
    bin_folder = here / "venv" / "bin"
    install = (bin_folder / "python", "-m", "pip", "install", "--quiet", f"{wheel}[test]")
    await run(*install, cwd=here, env=host, limit=900)
    return bin_folder


async def test_from_pip_install_to_a_migrated_tested_app(
    installed: Path,
    satellites_config: DataLayerConfig,
    satellites_token: str,
    fresh_schema: str,
    tmp_path: Path,
) -> None:
    satellites = installed / "satellites"
    app = tmp_path / "helpdesk"
    shutil.copytree(ROOT / "examples" / "helpdesk", app)
    env = outside_this_checkout(
        subprocess_environment(
            satellites_config,
            SATELLITES_POSTGRES__SCHEMA_NAME=fresh_schema,
            SATELLITES_FAISS__INDEX_PATH=str(tmp_path / "faiss"),
        )
    )

    await run(satellites, "init", ".", "--models", "helpdesk.models", cwd=app, env=env)
    await run(satellites, "db", "revision", "--autogenerate", "-m", "init", cwd=app, env=env)
    (revision,) = (app / "migrations" / "versions").glob("*_init.py")
    assert "helpdesk_tickets" in revision.read_text()
    assert "satellites_outbox" not in revision.read_text()  # the library's branch has it
    assert "upgraded to heads" in await run(satellites, "db", "upgrade", cwd=app, env=env)
    checked = await run(satellites, "db", "check", cwd=app, env=env)
    assert "the models and the database match" in checked

    pytest_run = (installed / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert "2 passed" in await run(*pytest_run, cwd=app, env=env)

    assert "elasticsearch" in await run(satellites, "health", cwd=app, env=env)
    verify = (satellites, "verify", "--repositories", "helpdesk.models:REPOSITORIES")
    assert "Tickets" in await run(*verify, cwd=app, env=env)

    demo = (satellites, "demo", "--schema", satellites_token, "--prefix", satellites_token)
    shown = await run(*demo, cwd=tmp_path, env=env)
    assert "checks passed" in shown
