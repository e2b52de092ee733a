"""Finding the rows at fault when a backend refuses a whole batch for its content.

A batch is one request for speed; when the backend refuses the request as a whole (a
request-level 400 or 413 from Elasticsearch, a ``ValueError`` from FAISS), the batch is
split in halves and each half tried again, down to single rows: the good rows are
applied, and only the rows refused on their own are reported, each with its reason. A
batch of n rows with one poison row costs about 2·log2(n) extra requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from satellites_repo.errors import ProjectionError, Rejection

if TYPE_CHECKING:
    from satellites_repo.model import Change

__all__ = ["bisected", "rejected_error"]

T = TypeVar("T")

Attempt = Callable[[Sequence[T]], Awaitable[list[tuple[T, Rejection]]]]
"""Applies items; returns those refused one by one (per-item errors), raises for all."""

Refusal = Callable[[Exception], Rejection | None]
"""The rejection an error means for the items of the attempt, ``None`` if not a refusal
of their content (the backend is away: the error is raised, the whole batch stays owed)."""


async def bisected(
    items: Sequence[T], attempt: Attempt[T], refusal: Refusal
) -> list[tuple[T, Rejection]]:
    """Apply ``items`` with ``attempt``; the items refused, each with why."""
    if not items:
        return []
    try:
        return await attempt(items)
    except Exception as exc:
        rejection = refusal(exc)
        if rejection is None:
            raise
        if len(items) == 1:
            return [(items[0], rejection)]
    middle = len(items) // 2
    first = await bisected(items[:middle], attempt, refusal)
    return first + await bisected(items[middle:], attempt, refusal)


def rejected_error(
    backend: str, what: str, refused: Iterable[tuple[Change, Rejection]]
) -> ProjectionError | None:
    """The ``ProjectionError`` naming each refused row (``None`` if none was)."""
    rejected = {(change.table, change.key): why for change, why in refused}
    if not rejected:
        return None
    sample = "; ".join(f"{key!r}: {why.reason}" for (_, key), why in rejected.items())
    return ProjectionError(
        backend, f"{len(rejected)} {what} rejected: {sample[:1000]}", rejected=rejected
    )
