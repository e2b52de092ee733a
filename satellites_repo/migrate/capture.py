"""Installing the change capture: triggers that record every write of a projected table.

``create_tables`` installs it on every ``Versioned`` table it creates (``capture_ddl``);
an application's Alembic revision calls ``install_capture(Model.__table__)`` (or the
table's name with ``key=`` and ``hidden=``) in ``upgrade()`` and ``remove_capture`` in
``downgrade()``. The library's own revision creates the shared functions and sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import MetaData, Table

from satellites_repo.model import Vector
from satellites_repo.orm.base import CAPTURED
from satellites_repo.outbox.capture import (
    capture_statements,
    function_statements,
    uncapture_statements,
)

__all__ = ["capture_ddl", "install_capture", "remove_capture"]


def capture_ddl(metadata: MetaData) -> list[str]:
    """The capture functions, then the triggers of every ``Versioned`` table of ``metadata``."""
    statements = function_statements()
    for table in metadata.sorted_tables:
        if any(column.info.get(CAPTURED) for column in table.columns):
            statements.extend(capture_statements(*_capture_arguments(table)))
    return statements


def install_capture(
    table: Table | str, *, key: str | None = None, hidden: Sequence[str] = ()
) -> None:
    """In an Alembic revision's ``upgrade()``: capture every write on ``table``.

    Given a ``Table`` (``Model.__table__``), the key and the vector columns are read from
    it; given a name, pass ``key`` (the primary key column) and ``hidden`` (its ``Vector``
    columns, kept out of outbox payloads). Idempotent.
    """
    if isinstance(table, Table):
        name, key, hidden = _capture_arguments(table)
    else:
        name = table
    if key is None:
        raise ValueError(f"install_capture({name!r}) needs key=<primary key column>")
    for statement in [*function_statements(), *capture_statements(name, key, hidden)]:
        op.execute(statement)


def remove_capture(table: Table | str) -> None:
    """In a revision's ``downgrade()``: drop the capture triggers of ``table``."""
    for statement in uncapture_statements(table if isinstance(table, str) else table.name):
        op.execute(statement)


def _capture_arguments(table: Table) -> tuple[str, str, list[str]]:
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise ValueError(f"{table.name}: change capture needs a single-column primary key")
    hidden = [column.name for column in table.columns if isinstance(column.type, Vector)]
    return table.name, keys[0].name, hidden
