"""The command line's pure parts: argument parsing and repository loading."""

from __future__ import annotations

import datetime as dt

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
