"""Keyset pagination: pages that stay fast and stable however deep the reader goes.

The cursor is the last row's (sort value, primary key), encoded as URL-safe base64 JSON.
It is opaque to callers; a tampered or foreign cursor raises ``ValueError``. On a
tenant-scoped repository the cursor also names the tenant, so a cursor taken from another
tenant's page fails clearly (it could not reach that tenant's rows anyway: the tenant
where-clause is on every page). The sort
column should be NOT NULL (NULLs do not compare in a row-value comparison).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from satellites_repo.errors import TenantError
from satellites_repo.model import Page, json_bytes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.model import EntitySpec

__all__ = ["keyset_page"]


async def keyset_page(
    session: AsyncSession,
    spec: EntitySpec,
    where: Sequence[ColumnElement[bool]],
    *,
    order_by: InstrumentedAttribute[Any] | None,
    descending: bool,
    limit: int,
    cursor: str | None,
    bound_to: str | None = None,
) -> Page[Any]:
    """``bound_to``: the tenant whose pages the cursors belong to (``None``: any)."""
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    key_column: InstrumentedAttribute[Any] = getattr(spec.model, spec.codec.primary_key)
    sort_column = key_column if order_by is None else order_by
    columns = [sort_column] if sort_column.key == key_column.key else [sort_column, key_column]
    statement = select(spec.model).where(*where)
    if cursor is not None:
        after = _decode(cursor, columns, bound_to)
        position = tuple_(*columns)
        boundary = tuple_(*after)
        statement = statement.where(position < boundary if descending else position > boundary)
    orderings = [column.desc() if descending else column.asc() for column in columns]
    statement = statement.order_by(*orderings).limit(limit + 1)
    rows = list(await session.scalars(statement))
    items, more = rows[:limit], len(rows) > limit
    last = [getattr(items[-1], column.key) for column in columns]
    next_cursor = _encode(last if bound_to is None else [bound_to, *last]) if more else None
    return Page(items, next_cursor)


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json_bytes(values)).decode().rstrip("=")


def _decode(
    cursor: str, columns: list[InstrumentedAttribute[Any]], bound_to: str | None
) -> list[Any]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if bound_to is not None:
            raw = _unbound(raw, bound_to)
        if not isinstance(raw, list) or len(raw) != len(columns):
            raise ValueError("wrong shape")
        return [
            TypeAdapter(column.type.python_type).validate_python(value)
            for column, value in zip(columns, raw, strict=True)
        ]
    except (ValueError, binascii.Error, ValidationError, orjson.JSONDecodeError):
        raise ValueError("invalid pagination cursor (not one this query produced)") from None


def _unbound(raw: Any, tenant: str) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("wrong shape")
    if raw[0] != tenant:
        raise TenantError(
            f"pagination cursor belongs to another tenant's page, not tenant {tenant!r}'s"
        )
    return raw[1:]
