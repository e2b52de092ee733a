"""Rebuild a projection from Postgres alone, without downtime, for any registered backend.

Shared backends rebuild themselves from the ``RowSource`` (Elasticsearch into a new index
behind its alias; Redis by warming through the version guard). A local backend (FAISS) is
rebuilt through its follower, which owns its position in the outbox, and then saved as a
snapshot for instances to load at start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from satellites_repo import observe
from satellites_repo.types import LocalBackend

if TYPE_CHECKING:
    from satellites_repo.bootstrap import Runtime
    from satellites_repo.model import EntitySpec
    from satellites_repo.types import Backend, Progress

__all__ = ["ReindexReport", "count_rows", "rebuild"]


@dataclass(frozen=True, slots=True)
class ReindexReport:
    repository: str
    target: str
    rows: int


async def count_rows(runtime: Runtime, spec: EntitySpec) -> int:
    async with runtime.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(spec.model)) or 0)


async def rebuild(
    runtime: Runtime, spec: EntitySpec, backend: Backend, progress: Progress
) -> ReindexReport:
    """Rebuild ``backend``'s projection of one repository from Postgres."""
    if not backend.covers(spec):
        raise ValueError(f"{spec.name} is not projected into {backend.name}")
    started = time.perf_counter()
    attributes = observe.db_attributes(backend.name, "reindex", spec.table)
    with observe.span(f"reindex {backend.name}", attributes) as current:
        if isinstance(backend, LocalBackend):
            rows = await runtime.follower_of(backend).rebuild([spec])
            await backend.persist()
            progress(rows)
        else:
            rows = await backend.rebuild(spec, runtime.source, progress)
        current.set_attribute("satellites.rows", rows)
    observe.reindexed(backend.name, spec.table, rows, time.perf_counter() - started)
    return ReindexReport(spec.name, backend.name, rows)
