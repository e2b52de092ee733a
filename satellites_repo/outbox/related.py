"""Reading a document's related rows: one SELECT per relationship per batch of changes.

The document version comes first (``document_version``: a value of the database sequence,
committed before any row is read), then the rows and their related rows, each in a snapshot
taken after it. So of two deliveries of one document, the later version read rows at least
as new: the one with the highest version, which Elasticsearch keeps, holds what the last
commit left, whatever order concurrent transactions on the row and its related rows took
their versions in.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from satellites_repo.model import Change, Operation, json_safe
from satellites_repo.model.change import RelatedValues
from satellites_repo.outbox.table import VERSION_SEQUENCE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from satellites_repo.model import EntitySpec, Registry
    from satellites_repo.model.related import RelatedJoin

__all__ = ["attach_related", "document_version", "with_related"]

_Loaded = tuple[dict[str, Any], str | None]
"""A document's related fields, and why it is refused (``None``: it is not)."""


async def document_version(engine: AsyncEngine) -> int:
    """A fresh version for the documents about to be built, committed before they are read."""
    async with engine.connect() as connection:
        value = await connection.scalar(text(f"SELECT nextval('{VERSION_SEQUENCE}')"))
        await connection.commit()
    return int(value)


async def attach_related(
    engine: AsyncEngine, registry: Registry, changes: Sequence[Change], version: int
) -> list[Change]:
    """``changes`` (rows' current state, read after ``version`` was taken) with the related
    fields of those whose search document declares some."""
    by_table: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        spec = registry.spec_of_table(change.table)
        if spec is not None and spec.related:
            by_table[change.table].append(change)
    attached: dict[tuple[str, str], Change] = {}
    for table, group in by_table.items():
        spec = registry.spec_of_table(table)
        assert spec is not None
        for change in await with_related(engine, spec, group, version):
            attached[(change.table, change.key)] = change
    return [attached.get((change.table, change.key), change) for change in changes]


async def with_related(
    engine: AsyncEngine, spec: EntitySpec, changes: Sequence[Change], version: int
) -> list[Change]:
    """``changes`` of ``spec`` with their related fields, to be written at ``version``."""
    loaded: dict[str, dict[str, Any]] = defaultdict(dict)
    refused: dict[str, str] = {}
    live = [change for change in changes if change.operation is not Operation.DELETED]
    if live:
        async with engine.connect() as connection:
            for join in spec.related:
                for key, (fields, why) in (await _load(connection, spec, join, live)).items():
                    loaded[key].update(fields)
                    if why is not None:
                        refused.setdefault(key, why)
    return [
        dataclasses.replace(
            change,
            related=RelatedValues(version, loaded.get(change.key, {}), refused.get(change.key)),
        )
        for change in changes
    ]


async def _load(
    connection: AsyncConnection, spec: EntitySpec, join: RelatedJoin, changes: Sequence[Change]
) -> dict[str, _Loaded]:
    """Each change's fields from ``join``: ``None`` (or ``[]``) where nothing is related."""
    joined = {change.key: spec.codec.typed(change.payload).get(join.local) for change in changes}
    wanted = sorted({value for value in joined.values() if value is not None}, key=str)
    found = (
        (await _many(connection, join, wanted))
        if join.many
        else await _one(connection, join, wanted)
    )
    empty: _Loaded = (
        {join.field(column): [] if join.many else None for column in join.fields},
        None,
    )
    return {
        key: found.get(value, empty) if value is not None else empty
        for key, value in joined.items()
    }


async def _one(
    connection: AsyncConnection, join: RelatedJoin, wanted: list[Any]
) -> dict[Any, _Loaded]:
    """Many-to-one: the related row of each foreign key value."""
    if not wanted:
        return {}
    remote = getattr(join.target, join.remote)
    columns = [getattr(join.target, column) for column in join.fields]
    rows = await connection.execute(select(remote, *columns).where(remote.in_(wanted)))
    return {
        row[0]: (
            {
                join.field(column): json_safe(value)
                for column, value in zip(join.fields, row[1:], strict=True)
            },
            None,
        )
        for row in rows
    }


async def _many(
    connection: AsyncConnection, join: RelatedJoin, wanted: list[Any]
) -> dict[Any, _Loaded]:
    """One-to-many: each parent's related rows in key order, at most ``max_fanout`` (one
    more is read, to know that a parent has too many)."""
    if not wanted:
        return {}
    assert join.max_fanout is not None
    target = join.target
    remote = getattr(target, join.remote)
    numbered = (
        select(
            remote.label("parent"),
            *(getattr(target, column).label(f"c{i}") for i, column in enumerate(join.fields)),
            func.row_number()
            .over(partition_by=remote, order_by=getattr(target, join.key))
            .label("n"),
        )
        .where(remote.in_(wanted))
        .subquery()
    )
    statement = (
        select(numbered)
        .where(numbered.c.n <= join.max_fanout + 1)
        .order_by(numbered.c.parent, numbered.c.n)
    )
    values: dict[Any, dict[str, list[Any]]] = {}
    for row in await connection.execute(statement):
        lists = values.setdefault(row[0], {join.field(column): [] for column in join.fields})
        for column, value in zip(join.fields, row[1:-1], strict=True):
            lists[join.field(column)].append(json_safe(value))
    loaded: dict[Any, _Loaded] = {}
    for parent, lists in values.items():
        count = len(next(iter(lists.values())))
        why = None
        if count > join.max_fanout:
            why = (
                f"{join.name} has more than max_fanout={join.max_fanout} rows for this "
                "document: raise Related(max_fanout=...) in its SearchIndex, then "
                "`satellites outbox retry-dead`"
            )
        loaded[parent] = (lists, why)
    return loaded
