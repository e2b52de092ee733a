"""``satellites init``: what it writes, and that this repository's Alembic project is it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from satellites_repo.cli import app
from satellites_repo.migrate import LIBRARY_VERSIONS, alembic_config
from satellites_repo.migrate.scaffold import PROJECT_FILES, render_project

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", ["alembic.ini", "migrations/env.py", "migrations/script.py.mako"])
def test_the_repository_migrates_the_demo_with_what_init_writes(name: str) -> None:
    """The top-level Alembic project is `satellites init --models satellites_repo.demo.models`."""
    expected = render_project(["satellites_repo.demo.models"])[name]
    assert (ROOT / name).read_text() == expected


def test_init_writes_a_project_whose_ini_names_the_library_branch(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "app"), "--models", "app.models"])
    assert result.exit_code == 0, result.output
    for name in PROJECT_FILES:
        assert (tmp_path / "app" / name).is_file(), name
    env = (tmp_path / "app" / "migrations" / "env.py").read_text()
    assert "import app.models  # noqa: F401" in env
    compile(env, "env.py", "exec")

    alembic = alembic_config(tmp_path / "app" / "alembic.ini")
    locations = [Path(location) for location in alembic.get_version_locations_list() or []]
    assert locations == [tmp_path / "app" / "migrations" / "versions", LIBRARY_VERSIONS]
    assert alembic.get_main_option("prepend_sys_path") == "."


def test_init_without_models_leaves_a_placeholder_that_still_runs() -> None:
    env = render_project([])["migrations/env.py"]
    assert "# import myapp.models" in env
    compile(env, "env.py", "exec")


def test_init_overwrites_nothing(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("mine\n")
    result = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert "not overwriting" in result.output
    assert (tmp_path / "alembic.ini").read_text() == "mine\n"
    assert not (tmp_path / "migrations").exists()
