"""Alembic commands on an application's ``alembic.ini``, with the library's branch beside it.

The library's own tables are the Alembic branch ``satellites`` in this package's
``versions/`` folder. An application's ``alembic.ini`` names that folder as
``%(satellites_migrations)s`` in ``version_locations`` (``satellites init`` writes it so);
``alembic_config`` supplies the value, wherever the package is installed. Hence:

- the database has two heads, the application's and the library's: ``upgrade`` goes to
  ``heads`` (both) by default, and a new release of the package brings its revisions on its
  own branch, applied by the next ``satellites db upgrade``;
- an application's revisions form a history of their own (its first revision is a root),
  written to its own folder, never into the installed package (``new_revision``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from satellites_repo.config import DataLayerConfig
from satellites_repo.errors import ConfigurationError
from satellites_repo.migrate.env import CONFIG_ATTRIBUTE

__all__ = [
    "LIBRARY_BRANCH",
    "LIBRARY_VERSIONS",
    "LIBRARY_VERSIONS_KEY",
    "alembic_config",
    "new_revision",
    "upgrade",
]

LIBRARY_BRANCH = "satellites"
"""The branch label of the library's revisions (``satellites@head``)."""

LIBRARY_VERSIONS = (Path(__file__).parent / "versions").resolve()
"""The folder of the library's revisions, inside the installed package."""

LIBRARY_VERSIONS_KEY = "satellites_migrations"
"""``%(satellites_migrations)s`` in ``alembic.ini``: replaced by ``LIBRARY_VERSIONS``."""


def alembic_config(ini: str | os.PathLike[str], config: DataLayerConfig | None = None) -> Config:
    """Alembic's configuration from ``ini``, on ``config``'s database (default: from_env).

    Fails with ``ConfigurationError`` when the file is missing or its ``version_locations``
    leaves out the library's branch (the outbox would never be created).
    """
    path = Path(ini)
    if not path.is_file():
        raise ConfigurationError(
            f"no Alembic configuration at {path} (`satellites init` writes one)"
        )
    alembic = Config(str(path), config_args={LIBRARY_VERSIONS_KEY: str(LIBRARY_VERSIONS)})
    locations = {Path(location).resolve() for location in _version_locations(alembic)}
    if LIBRARY_VERSIONS not in locations:
        raise ConfigurationError(
            f"{path}: version_locations must list the library's migrations, "
            f"%({LIBRARY_VERSIONS_KEY})s, beside your own folder (see `satellites init`)"
        )
    alembic.attributes[CONFIG_ATTRIBUTE] = config or DataLayerConfig.from_env()
    return alembic


async def upgrade(
    ini: str | os.PathLike[str] = "alembic.ini",
    revision: str = "heads",
    *,
    config: DataLayerConfig | None = None,
) -> None:
    """``satellites db upgrade`` for async code: an app's lifespan, an async test fixture.

    Alembic and the ``env.py`` run in a worker thread with an event loop of their own, as
    they would in the command. Cancelling the await does not stop a migration already under
    way: it runs to its end in the thread, holding the advisory lock.
    """

    def run() -> None:
        command.upgrade(alembic_config(ini, config), revision)

    await asyncio.to_thread(run)


def new_revision(
    alembic: Config, message: str, *, autogenerate: bool, head: str | None = None
) -> None:
    """Write the application's next revision file, after its own head, in its own folder.

    Alembic left alone would put it after the library's head, in the library's folder
    inside the installed package. ``head`` defaults to the application's only head (a new
    root before its first revision). With ``autogenerate`` the library's branch is applied
    first: Alembic compares only a database that is at every head, and the library's tables
    belong to its branch, never to an application's revision.
    """
    script = ScriptDirectory.from_config(alembic)
    if autogenerate:
        command.upgrade(alembic, f"{LIBRARY_BRANCH}@head")
    command.revision(
        alembic,
        message=message,
        autogenerate=autogenerate,
        head=head or _own_head(script),
        version_path=_own_versions(alembic),
    )


def _version_locations(alembic: Config) -> list[str]:
    return alembic.get_version_locations_list() or []


def _own_head(script: ScriptDirectory) -> str:
    library = {rev.revision for rev in script.get_revisions(f"{LIBRARY_BRANCH}@head") if rev}
    own = sorted(set(script.get_heads()) - library)
    if len(own) > 1:
        raise ConfigurationError(
            f"your revisions have several heads ({', '.join(own)}); pass --head to choose "
            "the one the new revision follows"
        )
    return own[0] if own else "base"


def _own_versions(alembic: Config) -> Path:
    for location in _version_locations(alembic):
        if Path(location).resolve() != LIBRARY_VERSIONS:
            return Path(location)
    raise ConfigurationError(
        "version_locations lists no folder for your own revisions beside the library's"
    )
