"""``satellites init``: the files an application needs to migrate and test with satellites.

Templates in ``templates/``, rendered with ``string.Template`` (``$name``), so the ``%(...)s``
of ``alembic.ini`` and the ``${...}`` of Alembic's Mako template pass through untouched.
Nothing is overwritten: an existing file stops the whole run before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from string import Template

from satellites_repo.errors import ConfigurationError

__all__ = ["PROJECT_FILES", "render_project", "write_project"]

TEMPLATES = Path(__file__).parent / "templates"

PROJECT_FILES = (
    "alembic.ini",
    "migrations/env.py",
    "migrations/script.py.mako",
    "migrations/versions/.gitkeep",
    "conftest.py",
)
"""What ``write_project`` writes, relative to the project folder."""


def render_project(models: Sequence[str]) -> dict[str, str]:
    """Each file of ``PROJECT_FILES`` and its text; ``models`` are modules env.py imports."""
    imports = [f"import {module}  # noqa: F401 - registers its models" for module in models]
    if not imports:
        imports = ["# import myapp.models  # every module that declares models on Base"]
    return {
        "alembic.ini": _render("alembic.ini.tmpl", pathsep=os.pathsep),
        "migrations/env.py": _render("env.py.tmpl", imports="\n".join(imports)),
        "migrations/script.py.mako": (TEMPLATES / "script.py.mako").read_text(),
        "migrations/versions/.gitkeep": "",
        "conftest.py": (TEMPLATES / "conftest.py.tmpl").read_text(),
    }


def write_project(directory: Path, models: Sequence[str]) -> list[Path]:
    """Write the project files into ``directory`` (created if needed); the paths written."""
    files = {directory / name: text for name, text in render_project(models).items()}
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise ConfigurationError(f"not overwriting {', '.join(existing)}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def _render(template: str, **values: str) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)
