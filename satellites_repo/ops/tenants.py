"""A tenant's lifecycle: export its rows, purge them and every projection of them.

Both run through units of work opened for that one tenant, so they see exactly what the
tenant's own reads see (the repository's confinement and the row-level security policy).
Purge deletes in batches, each its own transaction: every batch's changes go through the
outbox like any delete, so Redis, Elasticsearch and every FAISS follower drop them too, and
an interrupted purge is resumed by running it again (what was committed stays deleted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from satellites_repo.model import json_bytes
from satellites_repo.orm.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from satellites_repo.model import EntitySpec
    from satellites_repo.orm import UnitOfWorkContext

__all__ = ["PURGE_BATCH", "export_tenant", "purge_tenant"]

PURGE_BATCH = 500
"""Rows deleted per transaction by a purge: small enough to keep locks and the outbox short."""


def tenant_specs(specs: Sequence[EntitySpec]) -> list[EntitySpec]:
    return [spec for spec in specs if spec.tenant_scoped]


async def purge_tenant(
    context: UnitOfWorkContext,
    specs: Sequence[EntitySpec],
    tenant: str,
    *,
    batch: int = PURGE_BATCH,
) -> dict[str, int]:
    """Delete every row of ``tenant`` (soft-deleted ones too); rows deleted per repository."""
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    deleted: dict[str, int] = {}
    for spec in tenant_specs(specs):
        deleted[spec.name] = 0
        while True:
            async with UnitOfWork(context, tenant) as uow:
                rows = await _repository(uow, spec).list(limit=batch, include_deleted=True)
                if not rows:
                    break
                for entity in rows:
                    await uow.session.delete(entity)
                await uow.commit()
            deleted[spec.name] += len(rows)
    return deleted


async def export_tenant(
    context: UnitOfWorkContext, specs: Sequence[EntitySpec], tenant: str, *, batch: int = 500
) -> AsyncIterator[bytes]:
    """Every row of ``tenant`` as JSON lines: ``{"repository": ..., "row": {...}}``.

    Keyset pages, one short transaction each, so a large tenant streams in bounded memory.
    """
    for spec in tenant_specs(specs):
        cursor: str | None = None
        while True:
            async with UnitOfWork(context, tenant) as uow:
                page = await _repository(uow, spec).page(
                    limit=batch, cursor=cursor, include_deleted=True
                )
                lines = [
                    json_bytes({"repository": spec.name, "row": spec.codec.payload(entity)}) + b"\n"
                    for entity in page.items
                ]
            for line in lines:
                yield line
            cursor = page.next_cursor
            if cursor is None:
                break


def _repository(uow: UnitOfWork, spec: EntitySpec) -> Any:
    return uow.repository(spec.repository)
