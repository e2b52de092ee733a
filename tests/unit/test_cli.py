"""The command line's pure parts: argument parsing and repository loading."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from satellites_repo.cli import app
from satellites_repo.cli.ops import import_repositories, parse_age


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("15m", dt.timedelta(minutes=15)),
        ("7d", dt.timedelta(days=7)),
    ],
)
def test_ages_parse(text: str, expected: dt.timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["7", "7w", "-1d", ""])
def test_unclear_ages_are_rejected(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not an age"):
        parse_age(text)


def test_repositories_load_from_module_attributes() -> None:
    loaded = import_repositories("tests.integration.models:REPOSITORIES")
    assert [repository.__name__ for repository in loaded] == ["Articles", "Tags"]
    assert import_repositories("tests.integration.models:Tags")[0].__name__ == "Tags"


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("tests.integration.models", "module:attribute"),
        ("no.such.module:X", "cannot load"),
        ("tests.integration.models:Article", "not a Repository"),
    ],
)
def test_bad_repository_references_are_named(reference: str, problem: str) -> None:
    with pytest.raises(typer.BadParameter, match=problem):
        import_repositories(reference)


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("health", "demo", "db", "outbox", "reindex", "verify"):
        assert command in result.output


def test_a_bad_environment_exits_with_code_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITES_REDIS__PORT", "0")
    result = CliRunner().invoke(app, ["health"])
    assert result.exit_code == 2
    assert "SATELLITES_REDIS__PORT" in result.output


@pytest.mark.parametrize("command", [[], ["db"], ["outbox", "retry"], ["db", "revision"]])
def test_help_shows_no_type_after_flags(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


@pytest.fixture
def forget_helpdesk() -> Iterator[None]:
    yield
    for name in ("helpdesk.repos", "helpdesk"):
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("forget_helpdesk")
def test_the_application_is_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--repositories helpdesk.repos:ALL`` from the app's folder, without PYTHONPATH=."""
    (tmp_path / "helpdesk").mkdir()
    (tmp_path / "helpdesk" / "__init__.py").write_text("")
    (tmp_path / "helpdesk" / "repos.py").write_text(
        "from tests.integration.models import Tags\n\nALL = [Tags]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".")])
    with pytest.raises(typer.BadParameter, match="No module named 'helpdesk'"):
        import_repositories("helpdesk.repos:ALL")

    # Any command runs the callback; this one stops early (no alembic.ini here).
    assert CliRunner().invoke(app, ["db", "current"]).exit_code == 2

    assert [repository.__name__ for repository in import_repositories("helpdesk.repos:ALL")] == [
        "Tags"
    ]
    assert sys.path[0] == str(tmp_path)


def test_the_cli_registers_no_model_of_the_demo() -> None:
    """`satellites db revision --autogenerate` sees the app's models and the library's only."""
    script = (
        "import satellites_repo.cli\nfrom satellites_repo import Base\n"
        "print(sorted(Base.metadata.tables))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == str(
        [
            "satellites_deliveries",
            "satellites_meta",
            "satellites_outbox",
            "satellites_subscriptions",
        ]
    )
