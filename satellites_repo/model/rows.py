"""Reading rows of a projected table: by keys, or streamed whole, as plain values or changes.

Every consumer that reads rows outside the ORM (the relay completing replayed changes,
reindex, verify, the FAISS rebuild) goes through these helpers, so keys are parsed one way,
memory stays flat on large tables (server-side cursors), and a row becomes a ``Change`` one
way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select

from satellites_repo.model.change import Change, Operation

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncEngine

    from satellites_repo.model.spec import EntitySpec

__all__ = [
    "current_changes",
    "key_in",
    "row_change",
    "row_columns",
    "sample_changes",
    "select_by_keys",
    "stream_changes",
    "stream_rows",
]

STREAM_BATCH = 2000


def row_columns(spec: EntitySpec, names: Sequence[str] | None = None) -> list[Any]:
    """Mapped columns (all by default), labelled with their attribute names."""
    return [getattr(spec.model, name).label(name) for name in names or spec.codec.columns]


def key_in(spec: EntitySpec, keys: Sequence[object]) -> ColumnElement[bool]:
    """``primary key IN keys``, the keys parsed from their text form to the column's type."""
    codec = spec.codec
    column = getattr(spec.model, codec.primary_key)
    return column.in_([codec.parse_key(key) for key in keys])  # type: ignore[no-any-return]


def row_change(spec: EntitySpec, row: Mapping[Any, Any], operation: Operation) -> Change:
    """A selected row (``row_columns``, as a mapping) as a change with every column."""
    codec = spec.codec
    values: dict[str, Any] = dict(row)
    key = str(values[codec.primary_key])
    version = int(values.get("version") or 0)
    payload = codec.payload_of_values(values)
    return Change(spec.table, key, operation, version, payload, spec.hidden)


async def select_by_keys(
    engine: AsyncEngine,
    spec: EntitySpec,
    keys: Sequence[object],
    columns: Sequence[Any] | None = None,
) -> list[Row[Any]]:
    """The rows for ``keys`` (in no particular order): one SELECT, whatever their number."""
    if not keys:
        return []
    statement = select(*(columns or row_columns(spec))).where(key_in(spec, keys))
    async with engine.connect() as connection:
        return list((await connection.execute(statement)).all())


async def stream_rows(
    engine: AsyncEngine,
    spec: EntitySpec,
    columns: Sequence[Any],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    batch_size: int = STREAM_BATCH,
) -> AsyncIterator[Sequence[Row[Any]]]:
    """Every row (``columns`` of it) in batches, from a server-side cursor."""
    statement = select(*columns).where(*where).execution_options(yield_per=batch_size)
    async with engine.connect() as connection:
        result = await connection.stream(statement)
        async for rows in result.partitions():
            yield rows


async def current_changes(
    engine: AsyncEngine, spec: EntitySpec, keys: Sequence[str], operation: Operation
) -> dict[str, Change]:
    """The current rows for ``keys`` as changes with every column, by key."""
    rows = await select_by_keys(engine, spec, keys)
    changes = (row_change(spec, row._mapping, operation) for row in rows)
    return {change.key: change for change in changes}


async def stream_changes(
    engine: AsyncEngine, spec: EntitySpec, batch_size: int = STREAM_BATCH
) -> AsyncIterator[list[Change]]:
    """Every row as an ``updated`` change at its version, in batches."""
    async for rows in stream_rows(engine, spec, row_columns(spec), batch_size=batch_size):
        yield [row_change(spec, row._mapping, Operation.UPDATED) for row in rows]


async def sample_changes(engine: AsyncEngine, spec: EntitySpec, count: int) -> list[Change]:
    """``count`` rows picked at random (every row if the table has fewer), as changes.

    One ``ORDER BY random() LIMIT``: Postgres reads the whole table once but keeps only
    ``count`` rows, so a sample of a large table costs a scan, not its size in memory.
    """
    statement = select(*row_columns(spec)).order_by(func.random()).limit(count)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [row_change(spec, row._mapping, Operation.UPDATED) for row in rows]
