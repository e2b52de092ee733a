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

from satellites_repo import DataLayerConfig
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
    schema: str, *arguments: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SATELLITES_POSTGRES__SCHEMA_NAME": schema}
    command = [sys.executable, "-m", "satellites_repo.cli", "db", *arguments]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def tables(schema: str) -> set[str]:
    rows = sql("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {row["tablename"] for row in rows}


LIBRARY_TABLES = {"satellites_outbox", "satellites_meta"}
EXAMPLE_TABLES = {"kb_tenants", "kb_articles"}


def test_upgrade_downgrade_and_upgrade_again(schema: str) -> None:
    upgraded = satellites(schema, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert tables(schema) == LIBRARY_TABLES | EXAMPLE_TABLES | {"alembic_version"}

    downgraded = satellites(schema, "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert tables(schema) == {"alembic_version"}

    again = satellites(schema, "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert "0003_capture (head)" in satellites(schema, "current").stdout


def test_check_passes_at_head_and_fails_behind_it(schema: str) -> None:
    assert satellites(schema, "upgrade").returncode == 0
    at_head = satellites(schema, "check")
    assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    assert "match" in at_head.stdout

    assert satellites(schema, "downgrade", "0001_satellites").returncode == 0
    behind = satellites(schema, "check")
    assert behind.returncode == 1
    assert "not up to date" in behind.stdout


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
    (project / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/migrations\nprepend_sys_path = .\n"
        "path_separator = os\n"
    )
    (project / "migrations" / "versions" / "0004_summary.py").write_text(
        '"""Add a summary."""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        'revision = "0004_summary"\ndown_revision = "0003_capture"\n'
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
    assert [row["version_num"] for row in versions] == ["0003_capture"]
    assert tables(schema) == LIBRARY_TABLES | EXAMPLE_TABLES | {"alembic_version"}


def test_an_application_migrates_its_models_with_the_library_tables(
    schema: str, tmp_path: Path
) -> None:
    """The README's "Migrations" recipe, run as written (examples/alembic_app)."""
    project = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "alembic_app", project)
    config = project / "alembic.ini"
    generated = satellites(schema, "revision", "-m", "initial", "--autogenerate", config=config)
    assert generated.returncode == 0, generated.stderr
    (revision_file,) = (project / "migrations" / "versions").glob("*initial*.py")
    source = revision_file.read_text()
    assert "satellites_repo.Vector(8)" in source
    assert "satellites_outbox" in source
    assert satellites(schema, "upgrade", config=config).returncode == 0
    assert {"app_notes", *LIBRARY_TABLES} <= tables(schema)
    assert satellites(schema, "check", config=config).returncode == 0
