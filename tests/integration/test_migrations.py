"""Alembic through ``satellites db`` against a real Postgres, one schema per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command

from satellites_repo import ConfigurationError, DataLayerConfig, migrate
from satellites_repo.postgres import open_postgres_pool

ROOT = Path(__file__).resolve().parents[2]


async def _sql(statement: str, *args: object, schema: str | None = None) -> list[asyncpg.Record]:
    config = DataLayerConfig.from_env().postgres
    pool = await open_postgres_pool(
        config.replace(schema_name=schema, min_connections=1, max_connections=1)
    )
    try:
        return list(await pool.fetch(statement, *args))
    finally:
        await pool.close()


def sql(statement: str, *args: object, schema: str | None = None) -> list[asyncpg.Record]:
    return asyncio.run(_sql(statement, *args, schema=schema))


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    sql(f'CREATE SCHEMA "{name}"')
    yield name
    sql(f'DROP SCHEMA "{name}" CASCADE')


def satellites(
    schema: str, *arguments: str, config: Path | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SATELLITES_POSTGRES__SCHEMA_NAME": schema}
    command = [sys.executable, "-m", "satellites_repo.cli", "db", *arguments]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


async def table_names(schema: str) -> set[str]:
    rows = await _sql("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {row["tablename"] for row in rows}


def tables(schema: str) -> set[str]:
    return asyncio.run(table_names(schema))


LIBRARY_TABLES = {
    "satellites_outbox",
    "satellites_meta",
    "satellites_subscriptions",
    "satellites_deliveries",
}
EXAMPLE_TABLES = {"kb_tenants", "kb_articles"}


def test_upgrade_downgrade_and_upgrade_again(schema: str) -> None:
    upgraded = satellites(schema, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert tables(schema) == LIBRARY_TABLES | EXAMPLE_TABLES | {"alembic_version"}

    downgraded = satellites(schema, "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert tables(schema) == {"alembic_version"}

    again = satellites(schema, "upgrade", "heads")
    assert again.returncode == 0, again.stderr
    current = satellites(schema, "current").stdout
    assert "0003_knowledge_base_capture (head)" in current
    assert "0004_changed_columns (effective head)" in current  # the app revision depends on it


def test_check_passes_at_head_and_fails_behind_it(schema: str) -> None:
    assert satellites(schema, "upgrade").returncode == 0
    at_head = satellites(schema, "check")
    assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    assert "match" in at_head.stdout

    assert satellites(schema, "downgrade", "0002_knowledge_base@base").returncode == 0
    assert tables(schema) == LIBRARY_TABLES | {"alembic_version"}
    behind = satellites(schema, "check")
    assert behind.returncode == 1
    assert "not up to date" in behind.stdout


def test_the_library_branch_is_applied_beside_the_application(schema: str) -> None:
    """Two roots, two heads: the library's revisions never sit in the application's chain."""
    history = satellites(schema, "history").stdout
    assert "<base> -> 0001_satellites (satellites)" in history
    assert "0002_event_subscriptions -> 0003_change_capture (satellites)" in history
    assert "0003_change_capture -> 0004_changed_columns (satellites)" in history
    assert "<base> -> 0001_satellites (satellites)" in history
    assert "<base> -> 0002_knowledge_base" in history
    assert (
        "0002_knowledge_base (0004_changed_columns) -> 0003_knowledge_base_capture (head)"
        in history
    )
    assert satellites(schema, "upgrade", "satellites@head").returncode == 0
    assert tables(schema) == LIBRARY_TABLES | {"alembic_version"}


def test_unknown_revision_and_missing_config_have_clear_exit_codes(
    schema: str, tmp_path: Path
) -> None:
    unknown = satellites(schema, "upgrade", "no-such-revision")
    assert unknown.returncode == 1
    assert "no-such-revision" in unknown.stdout
    missing = satellites(schema, "current", config=tmp_path / "absent.ini")
    assert missing.returncode == 2
    assert "no Alembic configuration" in missing.stdout


def test_data_survives_an_upgrade_that_adds_a_column(schema: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "migrations", project / "migrations")
    shutil.copy(ROOT / "alembic.ini", project / "alembic.ini")
    (project / "migrations" / "versions" / "0004_summary.py").write_text(
        '"""Add a summary."""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        'revision = "0004_summary"\ndown_revision = "0003_knowledge_base_capture"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    op.add_column("kb_articles", sa.Column("summary", sa.Text(), nullable=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_column("kb_articles", "summary")\n'
    )
    config = project / "alembic.ini"
    assert satellites(schema, "upgrade", "0002_knowledge_base", config=config).returncode == 0
    sql("INSERT INTO kb_tenants VALUES ('acme', 'Acme')", schema=schema)
    sql(
        "INSERT INTO kb_articles (id, tenant_id, title, body, tags, created_at, embedding, version)"
        " VALUES (gen_random_uuid(), 'acme', 'kept', 'b', '{}', now(), $1, 1)",
        [0.5] * 384,
        schema=schema,
    )
    upgraded = satellites(schema, "upgrade", config=config)
    assert upgraded.returncode == 0, upgraded.stderr
    rows = sql("SELECT title, summary FROM kb_articles", schema=schema)
    assert [(row["title"], row["summary"]) for row in rows] == [("kept", None)]


def test_two_upgrades_at_once_apply_once(schema: str) -> None:
    environment = {**os.environ, "SATELLITES_POSTGRES__SCHEMA_NAME": schema}
    command = [sys.executable, "-m", "satellites_repo.cli", "db", "upgrade"]
    runs = [
        subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err.decode() for _, err in outcomes]
    versions = sql("SELECT version_num FROM alembic_version", schema=schema)
    # One row: the application's head depends on the library's, which it implies.
    assert [row["version_num"] for row in versions] == ["0003_knowledge_base_capture"]
    assert tables(schema) == LIBRARY_TABLES | EXAMPLE_TABLES | {"alembic_version"}


NOTES = """
from sqlalchemy.orm import Mapped, mapped_column

from satellites_repo import Base, Vector, Versioned


class Note(Base, Versioned):
    __tablename__ = "app_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]
    embedding: Mapped[list[float] | None] = mapped_column(Vector(8))
"""


def test_an_initialised_application_migrates_into_a_schema_that_did_not_exist(
    tmp_path: Path,
) -> None:
    """`satellites init`, a revision autogenerated from the app's model, `upgrade`, `check`."""
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    project = tmp_path / "app"
    (project / "notes").mkdir(parents=True)
    (project / "notes" / "__init__.py").write_text("")
    (project / "notes" / "models.py").write_text(NOTES)
    cli = [sys.executable, "-m", "satellites_repo.cli", "init", str(project)]
    initialised = subprocess.run(
        [*cli, "--models", "notes.models"], capture_output=True, text=True, timeout=60
    )
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr
    try:
        generated = satellites(schema, "revision", "-m", "initial", "--autogenerate", cwd=project)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        (revision_file,) = (project / "migrations" / "versions").glob("*initial*.py")
        source = revision_file.read_text()
        assert "satellites_repo.Vector(8)" in source
        assert "satellites_outbox" not in source  # the library's branch creates it
        assert "down_revision: str | Sequence[str] | None = None" in source

        upgraded = satellites(schema, "upgrade", cwd=project)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert tables(schema) == {"app_notes", "alembic_version", *LIBRARY_TABLES}
        assert satellites(schema, "check", cwd=project).returncode == 0
    finally:
        sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_an_ini_without_the_library_branch_is_refused(schema: str, tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n")
    refused = satellites(schema, "current", config=ini)
    assert refused.returncode == 2
    assert "version_locations must list the library's migrations" in " ".join(
        refused.stdout.split()
    )


async def test_upgrade_is_awaitable_inside_a_running_loop(schema: str) -> None:
    config = DataLayerConfig.from_env()
    config = config.replace(postgres=config.postgres.replace(schema_name=schema))
    await migrate.upgrade(ROOT / "alembic.ini", config=config)
    assert await table_names(schema) == LIBRARY_TABLES | EXAMPLE_TABLES | {"alembic_version"}


async def test_alembic_called_directly_inside_a_loop_says_what_to_use(schema: str) -> None:
    config = DataLayerConfig.from_env()
    config = config.replace(postgres=config.postgres.replace(schema_name=schema))
    alembic = migrate.alembic_config(ROOT / "alembic.ini", config)
    with pytest.raises(ConfigurationError, match=r"await satellites_repo\.migrate\.upgrade"):
        command.upgrade(alembic, "heads")


async def test_create_tables_creates_a_missing_schema() -> None:
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    config = DataLayerConfig.from_env()
    config = config.replace(postgres=config.postgres.replace(schema_name=schema))
    try:
        await migrate.create_tables(config)
        assert await table_names(schema) >= LIBRARY_TABLES
    finally:
        await _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
