"""Read-only views of the outbox for operators: backlog per target, recent throughput.

Kept apart from ``store`` (the outbox's reads and writes on the delivery path) because
nothing here is on that path: these queries run every second or so in a watching process
(the relay's gauges, ``satellites top``, ``satellites metrics``), never in a commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.observe import TargetBacklog
from satellites_repo.outbox.table import outbox_table

if TYPE_CHECKING:
    import asyncpg

__all__ = ["OutboxMonitor", "Throughput"]

_TABLE = outbox_table.name


@dataclass(frozen=True, slots=True)
class Throughput:
    """The outbox's last ``window`` seconds: commits written and how late they settled."""

    window: float
    commits: int
    settle_lag: tuple[float, float, float] | None
    """p50, p95, p99 seconds from the outbox write to the row settled (all targets)."""

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.window


class OutboxMonitor:
    """Backlog and throughput queries over the layer's asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def backlog(self, targets: Sequence[str] = ()) -> list[TargetBacklog]:
        """Per target: rows owed, age of the oldest owed, dead letters (``targets`` at least)."""
        rows = await self._pool.fetch(
            f"""
            SELECT target,
                   count(*) FILTER (WHERE dead_at IS NULL) AS owed,
                   coalesce(extract(epoch FROM now() - min(created_at)
                                    FILTER (WHERE dead_at IS NULL)), 0)::float8 AS age,
                   count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead
              FROM {_TABLE}, unnest(pending) AS target
             WHERE cardinality(pending) > 0
             GROUP BY target
            """
        )
        found = {
            row["target"]: TargetBacklog(row["target"], row["owed"], row["age"], row["dead"])
            for row in rows
        }
        for target in targets:
            found.setdefault(target, TargetBacklog(target, 0, 0.0, 0))
        return [found[target] for target in sorted(found)]

    async def throughput(self, window: float) -> Throughput:
        """Commits (distinct transactions) written in the last ``window`` seconds, and lag."""
        row = await self._pool.fetchrow(
            f"""
            SELECT count(DISTINCT txid) FILTER (WHERE created_at > now() - $1 * interval '1 s'),
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
                       ORDER BY extract(epoch FROM done_at - created_at))
                       FILTER (WHERE done_at > now() - $1 * interval '1 s')
              FROM {_TABLE}
             WHERE created_at > now() - $1 * interval '1 s' OR done_at > now() - $1 * interval '1 s'
            """,
            window,
        )
        assert row is not None
        lag = row[1]
        percentiles = (float(lag[0]), float(lag[1]), float(lag[2])) if lag else None
        return Throughput(window, int(row[0]), percentiles)
