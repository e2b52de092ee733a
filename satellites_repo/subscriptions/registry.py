"""The event publication registry: one delivery per durable subscriber and outbox row.

A durable subscriber of the in-process bus never relies on the process that committed:
its deliveries are derived from the outbox, which is written in the commit's own
transaction. Each subscriber has a position in the outbox (a snapshot xmin, as a
follower's: every transaction below it has finished). ``materialize`` reads the rows from
there in (txid, seq) order and writes one delivery per row whose event type matches the
subscriber's pattern; rows at or above the xmin are read again next time and skipped by
the (subscriber, seq) key. Instances running the same subscriber compete for its
deliveries with ``FOR UPDATE SKIP LOCKED``; a claimed delivery is leased (its next
attempt moved past the handler's deadline), so a crashed process loses nothing.

Order per entity key: a delivery is claimed only when no earlier delivery of the same
(entity, key) is still owed; a dead-lettered one no longer holds the key back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

import asyncpg
import orjson

from satellites_repo.orm.translate import translated
from satellites_repo.outbox.records import EVENT_OPERATION, REPAIR_EVENT_PREFIX, OutboxRecord
from satellites_repo.retry import Backoff

if TYPE_CHECKING:
    from satellites_repo.config import EventsConfig
    from satellites_repo.events import DataEvent, DurableSubscription

__all__ = ["Claimed", "DeliveryRegistry", "SubscriberStatus"]

_XMIN = "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"


def _owed(alias: str) -> str:
    """A delivery still to be made: neither done nor dead-lettered."""
    return f"{alias}.done_at IS NULL AND {alias}.dead_at IS NULL"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken for one attempt: the event, or why it cannot be built."""

    seq: int
    attempt: int
    event: DataEvent | None
    missing: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    """One durable subscriber: deliveries still owed, dead-lettered and done."""

    name: str
    pattern: str
    pending: int
    dead: int
    done: int | None
    """``None`` where it is not known (a broker forgets acknowledged messages)."""
    oldest_pending: dt.datetime | None
    last_error: str | None


class DeliveryRegistry:
    """Subscribers and their deliveries behind a small API; ``pool`` is the layer's pool.
    A Postgres outage raises ``UnavailableError`` naming it."""

    def __init__(self, pool: asyncpg.Pool, *, max_attempts: int, backoff: Backoff) -> None:
        self.entity_name = "event subscriptions"
        self._pool = pool
        self._max_attempts = max_attempts
        self.backoff = backoff

    @classmethod
    def configured(cls, pool: asyncpg.Pool, config: EventsConfig) -> DeliveryRegistry:
        """The registry with ``config``'s attempts and backoff."""
        backoff = Backoff(config.backoff_initial, config.backoff_max)
        return cls(pool, max_attempts=config.max_attempts, backoff=backoff)

    @translated
    async def register(self, subscription: DurableSubscription) -> None:
        """Record the subscriber; a new one starts at the current position of the outbox."""
        await self._pool.execute(
            "INSERT INTO satellites_subscriptions (name, pattern, position) "
            f"VALUES ($1, $2, {_XMIN}) "
            "ON CONFLICT (name) DO UPDATE SET pattern = excluded.pattern",
            subscription.name,
            subscription.pattern,
        )

    @translated
    async def materialize(self, subscription: DurableSubscription, page_size: int) -> int:
        """Write deliveries for the rows committed since the subscriber's position.

        One instance at a time per subscriber (the subscriber's row is locked; the others
        skip it). Returns how many deliveries were new.
        """
        created = 0
        try:
            async with (
                self._pool.acquire() as connection,
                connection.transaction(isolation="repeatable_read"),
            ):
                position = await connection.fetchval(
                    "SELECT position FROM satellites_subscriptions WHERE name = $1 "
                    "FOR UPDATE SKIP LOCKED",
                    subscription.name,
                )
                if position is None:
                    return 0
                xmin = await connection.fetchval(f"SELECT {_XMIN}")
                after = (int(position), 0)
                while True:
                    rows = await connection.fetch(
                        "SELECT seq, txid, entity, key, operation, payload->>'type' AS type "
                        "FROM satellites_outbox WHERE txid >= $1 AND (txid, seq) > ($1, $2) "
                        "AND event_id NOT LIKE $4 ORDER BY txid, seq LIMIT $3",
                        after[0],
                        after[1],
                        page_size,
                        f"{REPAIR_EVENT_PREFIX}%",
                    )
                    matching = [
                        row for row in rows if fnmatchcase(_type(row), subscription.pattern)
                    ]
                    if matching:
                        created += _affected(
                            await connection.execute(
                                "INSERT INTO satellites_deliveries "
                                "(subscriber, seq, txid, entity, key) "
                                "SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], "
                                "$4::text[], $5::text[]) ON CONFLICT DO NOTHING",
                                subscription.name,
                                [row["seq"] for row in matching],
                                [row["txid"] for row in matching],
                                [row["entity"] for row in matching],
                                [row["key"] for row in matching],
                            )
                        )
                    if rows:
                        after = (rows[-1]["txid"], rows[-1]["seq"])
                    if len(rows) < page_size:
                        break
                await connection.execute(
                    "UPDATE satellites_subscriptions SET position = greatest(position, $2) "
                    "WHERE name = $1",
                    subscription.name,
                    xmin,
                )
        except asyncpg.SerializationError:
            return 0  # another instance moved the position within our snapshot: it did the work
        return created

    @translated
    async def claim(self, name: str, limit: int, lease_seconds: float) -> list[Claimed]:
        """Take up to ``limit`` due deliveries, at most one per entity key, oldest first."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"""
                WITH due AS (
                    SELECT d.seq FROM satellites_deliveries AS d
                     WHERE d.subscriber = $1 AND {_owed("d")}
                       AND d.next_attempt_at <= now()
                       AND NOT EXISTS (
                           SELECT 1 FROM satellites_deliveries AS e
                            WHERE e.subscriber = d.subscriber AND e.entity = d.entity
                              AND e.key = d.key AND e.seq < d.seq
                              AND {_owed("e")})
                     ORDER BY d.seq
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                UPDATE satellites_deliveries AS d
                   SET attempts = d.attempts + 1,
                       next_attempt_at = now() + make_interval(secs => $3)
                  FROM due
                 WHERE d.subscriber = $1 AND d.seq = due.seq
             RETURNING d.seq, d.attempts
                """,
                name,
                limit,
                lease_seconds,
            )
            if not rows:
                return []
            stored = await connection.fetch(
                "SELECT seq, event_id, txid, entity, key, operation, version, "
                "payload::text AS payload FROM satellites_outbox WHERE seq = ANY($1::bigint[])",
                [row["seq"] for row in rows],
            )
        events = {row["seq"]: _event(row) for row in stored}
        return [
            Claimed(row["seq"], row["attempts"], events.get(row["seq"]))
            if row["seq"] in events
            else Claimed(row["seq"], row["attempts"], None, "its outbox row was purged")
            for row in sorted(rows, key=lambda row: row["seq"])
        ]

    @translated
    async def done(self, name: str, seqs: Sequence[int]) -> None:
        if seqs:
            await self._pool.execute(
                "UPDATE satellites_deliveries SET done_at = now(), last_error = NULL "
                "WHERE subscriber = $1 AND seq = ANY($2::bigint[])",
                name,
                list(seqs),
            )

    @translated
    async def failed(self, name: str, failures: Mapping[int, tuple[int, str]]) -> None:
        """Record failed attempts (``seq -> (attempt, error)``): retried later, or dead."""
        if not failures:
            return
        await self._pool.executemany(
            "UPDATE satellites_deliveries SET last_error = $3, "
            "next_attempt_at = now() + make_interval(secs => $4), "
            "dead_at = CASE WHEN attempts >= $5 THEN now() END "
            "WHERE subscriber = $1 AND seq = $2",
            [
                (name, seq, error, self.backoff.delay(attempt), self._max_attempts)
                for seq, (attempt, error) in failures.items()
            ],
        )

    # -- operations (``satellites events``) -----------------------------------------------

    @translated
    async def status(self) -> list[SubscriberStatus]:
        rows = await self._pool.fetch(
            f"""
            SELECT s.name, s.pattern,
                   count(d.seq) FILTER (WHERE {_owed("d")}) AS pending,
                   count(d.seq) FILTER (WHERE d.dead_at IS NOT NULL) AS dead,
                   count(d.seq) FILTER (WHERE d.done_at IS NOT NULL) AS done,
                   min(o.created_at) FILTER (
                       WHERE {_owed("d")}) AS oldest_pending,
                   (array_agg(d.last_error ORDER BY d.seq DESC)
                       FILTER (WHERE d.last_error IS NOT NULL))[1] AS last_error
              FROM satellites_subscriptions AS s
              LEFT JOIN satellites_deliveries AS d ON d.subscriber = s.name
              LEFT JOIN satellites_outbox AS o ON o.seq = d.seq
             GROUP BY s.name, s.pattern ORDER BY s.name
            """
        )
        return [SubscriberStatus(**dict(row)) for row in rows]

    @translated
    async def retry_dead(self, name: str | None = None) -> int:
        """Revive dead-lettered deliveries with a fresh set of attempts, due now."""
        result = await self._pool.execute(
            "UPDATE satellites_deliveries SET dead_at = NULL, attempts = 0, "
            "next_attempt_at = now() WHERE dead_at IS NOT NULL "
            "AND ($1::text IS NULL OR subscriber = $1)",
            name,
        )
        return _affected(result)

    @translated
    async def purge(self, name: str | None = None, *, dead: bool = False) -> int:
        """Delete done deliveries that can no longer be re-read (and dead ones if ``dead``)."""
        result = await self._pool.execute(
            "DELETE FROM satellites_deliveries AS d USING satellites_subscriptions AS s "
            "WHERE s.name = d.subscriber AND ($1::text IS NULL OR d.subscriber = $1) "
            "AND ((d.done_at IS NOT NULL AND d.txid < s.position) "
            "OR ($2 AND d.dead_at IS NOT NULL))",
            name,
            dead,
        )
        return _affected(result)


def _type(row: asyncpg.Record) -> str:
    """The event type of an outbox row, as ``OutboxRecord.event()`` would build it."""
    if row["operation"] == EVENT_OPERATION:
        return str(row["type"])
    return f"{row['entity']}.{row['operation']}"


def _event(row: asyncpg.Record) -> DataEvent:
    values = dict(row)
    values["payload"] = orjson.loads(values["payload"])
    return OutboxRecord.from_row(values).event()


def _affected(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
