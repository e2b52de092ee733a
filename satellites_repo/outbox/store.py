"""Reading and writing the outbox: insert in the transaction, settle after it.

Rows are inserted through the unit of work's session (same transaction as the change);
everything after COMMIT goes through the asyncpg pool in short transactions of their own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from sqlalchemy import insert, select, text

from satellites_repo import observe
from satellites_repo.model.change import Operation
from satellites_repo.model.codec import json_bytes, json_safe
from satellites_repo.observe import OutboxStamp
from satellites_repo.orm.translate import translated
from satellites_repo.outbox.capture import CAPTURE_TRIGGER_NAMES, MISSING_CAPTURE_SQL
from satellites_repo.outbox.records import (
    EVENT_OPERATION,
    EVENTS_TARGET,
    REPAIR_EVENT_PREFIX,
    OutboxRecord,
    event_row_payload,
)
from satellites_repo.outbox.table import (
    NOTIFY_PAYLOAD,
    OUTBOX_CHANNEL,
    meta_table,
    outbox_table,
)
from satellites_repo.retry import Backoff

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from satellites_repo.events import DataEvent
    from satellites_repo.model.change import Change

__all__ = ["FollowPoint", "OutboxStatus", "OutboxStore", "Settlement"]

_COLUMNS = (
    "seq, event_id, txid, entity, key, operation, version, "
    "payload::text AS payload, pending, attempts, "
    "extract(epoch FROM created_at)::float8 AS created, changed"
)
PURGED_UPTO = "outbox_purged_upto_txid"
_CAPTURED = (
    f"SELECT {_COLUMNS} FROM {outbox_table.name} "
    "WHERE txid = (pg_current_xact_id_if_assigned()::text)::bigint "
    f"AND operation <> '{EVENT_OPERATION}' AND event_id NOT LIKE '{REPAIR_EVENT_PREFIX}%' "
    "ORDER BY seq"
)
"""The rows the capture triggers wrote in the current transaction (not the re-projections
of related tables' capture: the relay's, in its batches)."""
_SNAPSHOT = (
    "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax,"
    " ARRAY(SELECT pg_snapshot_xip(s)::text::bigint) AS xip FROM pg_current_snapshot() AS s"
)


@dataclass(frozen=True, slots=True)
class Settlement:
    """Targets that failed for some rows after an attempt, and why.

    ``dead``: dead-letter the rows now (a backend refused their content), whatever
    their attempts; otherwise they are dead only after ``max_attempts``.
    """

    seqs: tuple[int, ...]
    remaining: tuple[str, ...]
    error: str | None
    attempt: int = 1
    dead: bool = False


@dataclass(frozen=True, slots=True)
class FollowPoint:
    """How far a follower has read: every transaction below ``xmin``, and every one
    below ``xmax`` but those in ``pending`` (in progress when it read)."""

    xmin: int
    xmax: int
    pending: frozenset[int] = frozenset()

    @classmethod
    def at(cls, position: int) -> FollowPoint:
        """Nothing known beyond ``position``: read every transaction from it on."""
        return cls(position, position)

    def holds(self, txid: int) -> bool:
        """Whether a transaction is still to be read (or skipped) after this point."""
        return txid >= self.xmax or txid in self.pending


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int
    dead: int
    done: int
    oldest_pending: dt.datetime | None
    by_target: Mapping[str, int]


class OutboxStore:
    """The outbox table behind a small API; ``pool`` is the layer's asyncpg pool.

    Its methods raise ``UnavailableError`` naming Postgres when it cannot be reached
    (``captured`` and ``insert`` run inside a unit of work, which translates for them)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_attempts: int,
        backoff: Backoff,
        grace_seconds: float,
        followed: Iterable[str] = (),
    ) -> None:
        """``followed``: the tables whose rows wake followers (NOTIFY) at commit."""
        self.entity_name = "outbox"
        self._pool = pool
        self._followed = frozenset(followed)
        self._max_attempts = max_attempts
        self._grace_seconds = grace_seconds
        self.backoff = backoff

    # -- inside the unit of work's transaction -------------------------------------------

    async def captured(self, session: AsyncSession) -> list[OutboxRecord]:
        """The rows the capture triggers wrote in this transaction, folded per key.

        Several statements on one row fold as a ChangeSet folds flushes (created then
        updated is one ``created``; created then deleted is nothing): the superseded rows
        are deleted, so one commit publishes one event per row it changed. Re-projection
        rows (of related tables' capture) are left to the relay: they may be many. The columns a
        folded row changed are then not known (each statement recorded its own): ``NULL``.
        """
        # On the driver's connection (the same transaction): SQLAlchemy's result rows
        # cost more than the rows themselves here, one per captured row of a bulk commit.
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        stamp = observe.outbox_stamp()
        rows = await driver.fetch(_CAPTURED)
        folded, superseded, rewritten = fold_captured([_record(row, stamp) for row in rows])
        if superseded:
            await session.execute(
                text(f"DELETE FROM {outbox_table.name} WHERE seq = ANY(:seqs)"),
                {"seqs": superseded},
            )
        if rewritten:
            operations = {record.seq: record.operation for record in folded}
            await session.execute(
                text(
                    f"UPDATE {outbox_table.name} AS o SET operation = v.operation, changed = NULL "
                    "FROM unnest(CAST(:seqs AS bigint[]), CAST(:operations AS text[])) "
                    "AS v(seq, operation) WHERE o.seq = v.seq"
                ),
                {"seqs": rewritten, "operations": [operations[seq] for seq in rewritten]},
            )
        await self._stamp_captured(session, folded, stamp)
        return folded

    async def _stamp_captured(
        self, session: AsyncSession, records: list[OutboxRecord], stamp: OutboxStamp | None
    ) -> None:
        """When the commit is traced, the trigger-written rows get its stamp too (one
        UPDATE), so a relay that delivers them later links to this commit. Untraced, the
        UPDATE would only rewrite every row for a write time ``created_at`` already holds.
        """
        if stamp is None or stamp.traceparent is None or not records:
            return
        await session.execute(
            text(
                f"UPDATE {outbox_table.name} SET payload = payload || jsonb_build_object("
                "CAST(:key AS text), CAST(:stamp AS jsonb)) WHERE seq = ANY(:seqs)"
            ),
            {
                "key": observe.STAMP_KEY,
                "stamp": json_bytes(stamp.to_json()).decode(),
                "seqs": [record.seq for record in records],
            },
        )

    @translated
    async def captured_tables(self, tables: Sequence[str]) -> set[str]:
        """Which of ``tables`` carry every capture trigger."""
        missing = await self._pool.fetch(
            MISSING_CAPTURE_SQL,
            list(tables),
            list(CAPTURE_TRIGGER_NAMES),
            len(CAPTURE_TRIGGER_NAMES),
        )
        return set(tables) - {row[0] for row in missing}

    async def missing_triggers(self, wanted: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (table, trigger name) pairs of ``wanted`` do not exist."""
        rows = await self._pool.fetch(
            "SELECT w.tab, w.name FROM unnest($1::text[], $2::text[]) AS w(tab, name) "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g "
            "WHERE g.tgrelid = to_regclass(w.tab) AND g.tgname = w.name)",
            [table for table, _ in wanted],
            [name for _, name in wanted],
        )
        return {(row[0], row[1]) for row in rows}

    async def insert(
        self,
        session: AsyncSession,
        changes: Sequence[tuple[Change, Sequence[str]]],
        emitted: Sequence[DataEvent],
    ) -> list[OutboxRecord]:
        """Write one row per change and per custom event; returns them with their seq.

        The rows become due for the relay only after a grace period, so the committing
        process's own fast path settles them without a relay racing it.
        """
        rows = [_change_row(change, targets) for change, targets in changes]
        rows.extend(_event_row(event) for event in emitted)
        if not rows:
            return []
        wholes: list[Change | None] = [change for change, _ in changes]
        wholes.extend(None for _ in emitted)
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._grace_seconds)
        for row in rows:
            row["next_attempt_at"] = due
        statement = insert(outbox_table).returning(
            outbox_table.c.seq, outbox_table.c.txid, sort_by_parameter_order=True
        )
        stamp = observe.outbox_stamp()
        result = await session.execute(statement, observe.stamped(rows, stamp))
        if any(row["entity"] in self._followed for row in rows):
            await session.execute(select(text(f"pg_notify('{OUTBOX_CHANNEL}', {NOTIFY_PAYLOAD})")))
        return [
            OutboxRecord(
                seq=seq,
                event_id=row["event_id"],
                txid=txid,
                entity=row["entity"],
                key=row["key"],
                operation=row["operation"],
                version=row["version"],
                payload=row["payload"],
                pending=tuple(row["pending"]),
                attempts=1,
                whole=whole,
                stamp=stamp,
            )
            for (seq, txid), row, whole in zip(result.all(), rows, wholes, strict=True)
        ]

    @translated
    async def enqueue(self, owed: Sequence[tuple[Change, Sequence[str]]]) -> int:
        """Owe changes to targets outside any unit of work (repairs); due at once, no events."""
        if not owed:
            return 0
        rows = [_change_row(change, targets) for change, targets in owed]
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                "INSERT INTO satellites_outbox "
                "(event_id, entity, key, operation, version, payload, pending, attempts) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::text[], 0)",
                [
                    (
                        REPAIR_EVENT_PREFIX + row["event_id"],
                        row["entity"],
                        row["key"],
                        row["operation"],
                        row["version"],
                        json_bytes(row["payload"]).decode(),
                        [target for target in row["pending"] if target != EVENTS_TARGET],
                    )
                    for row in rows
                ],
            )
            await connection.execute(f"NOTIFY {OUTBOX_CHANNEL}")
        return len(rows)

    # -- after COMMIT ----------------------------------------------------------------------

    @translated
    async def settle(self, settlements: Iterable[Settlement]) -> None:
        """Record the outcome of one attempt: done rows, or what is still owed and when.

        Rows owed without an error (events left for a process with subscribers) are due
        at once and never dead-lettered for it.
        """
        # One statement per outcome, each committed on its own: rows are independent.
        async with self._pool.acquire() as connection:
            for settlement in settlements:
                if not settlement.remaining:
                    await connection.execute(
                        "UPDATE satellites_outbox SET pending = '{}', done_at = now(), "
                        "last_error = NULL, leased_until = NULL WHERE seq = ANY($1::bigint[])",
                        list(settlement.seqs),
                    )
                    continue
                await connection.execute(
                    "UPDATE satellites_outbox SET pending = $2::text[], last_error = $3, "
                    "leased_until = NULL, "
                    "next_attempt_at = now() + make_interval(secs => $4), "
                    "dead_at = CASE WHEN $6 OR ($3::text IS NOT NULL AND attempts >= $5) "
                    "THEN now() END WHERE seq = ANY($1::bigint[])",
                    list(settlement.seqs),
                    list(settlement.remaining),
                    settlement.error,
                    0.0 if settlement.error is None else self.backoff.delay(settlement.attempt),
                    self._max_attempts,
                    settlement.dead,
                )

    @translated
    async def claim(
        self, limit: int, lease_seconds: float, *, events: bool = True
    ) -> list[OutboxRecord]:
        """Take up to ``limit`` due rows, oldest first, for ``lease_seconds``.

        ``FOR UPDATE SKIP LOCKED`` lets several relays claim disjoint rows; the lease
        (a later ``next_attempt_at``) keeps a crashed relay's rows from being lost.
        ``events`` false: only rows owed to a projection (a relay that does not publish).
        """
        owed = "pending" if events else f"array_remove(pending, '{EVENTS_TARGET}')"
        rows = await self._pool.fetch(
            f"""
            UPDATE satellites_outbox AS o
               SET attempts = o.attempts + 1,
                   next_attempt_at = now() + make_interval(secs => $2),
                   leased_until = now() + make_interval(secs => $2)
              FROM (SELECT seq FROM satellites_outbox
                     WHERE cardinality({owed}) > 0 AND dead_at IS NULL
                       AND next_attempt_at <= now()
                     ORDER BY seq
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED) AS due
             WHERE o.seq = due.seq
         RETURNING {_COLUMNS.replace("seq,", "o.seq,", 1)}
            """,
            limit,
            lease_seconds,
        )
        return sorted((_record(row) for row in rows), key=lambda record: record.seq)

    @translated
    async def follow(
        self,
        start: FollowPoint | int | None,
        entities: Sequence[str],
        apply: Callable[[list[OutboxRecord]], Awaitable[None]],
        *,
        page_size: int,
        skip: Sequence[int] = (),
        reread: Iterable[int] = (),
    ) -> FollowPoint:
        """Feed ``apply`` every committed row of ``entities`` not read before ``start``.

        Pages are read in (txid, seq) order inside one snapshot, and the point returned is
        that snapshot: every transaction below its ``xmax`` has been read, except those
        still in progress then (``pending``), which the next call reads with any newer
        ones. So each committed row is read once, however long another transaction stays
        open, and what is remembered is bounded by the transactions open at once. Rows of
        the ``skip`` transactions (applied by this process) are not read; ``reread`` names
        transactions below ``xmax`` to read again (a claim given back).
        """
        point = FollowPoint.at(start or 0) if not isinstance(start, FollowPoint) else start
        again = sorted({*point.pending, *reread})
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            snapshot = await connection.fetchrow(_SNAPSHOT)
            assert snapshot is not None
            after = (min([point.xmin, *again]), 0)
            while True:
                rows = await connection.fetch(
                    f"SELECT {_COLUMNS} FROM satellites_outbox "
                    "WHERE txid >= $1 AND (txid, seq) > ($1, $2) AND entity = ANY($3::text[]) "
                    "AND (txid >= $6 OR txid = ANY($7::bigint[])) "
                    "AND txid <> ALL($5::bigint[]) ORDER BY txid, seq LIMIT $4",
                    after[0],
                    after[1],
                    list(entities),
                    page_size,
                    list(skip),
                    point.xmax,
                    again,
                )
                if rows:
                    page = [_record(row) for row in rows]
                    await apply(page)
                    after = (page[-1].txid, page[-1].seq)
                if len(rows) < page_size:
                    return FollowPoint(
                        int(snapshot["xmin"]), int(snapshot["xmax"]), frozenset(snapshot["xip"])
                    )

    @translated
    async def current_position(self) -> int:
        """The current snapshot's xmin: every transaction below it has finished."""
        value = await self._pool.fetchval(
            "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
        )
        return int(value)

    @translated
    async def identity(self) -> str:
        """This database as snapshots record it: ``<system identifier>/<database>/<schema>``.

        The system identifier (unique per cluster, kept by physical backups) is read only
        by privileged roles; without the privilege it is recorded as ``?``.
        """
        async with self._pool.acquire() as connection:
            try:
                system: object = await connection.fetchval(
                    "SELECT system_identifier::text FROM pg_control_system()"
                )
            except asyncpg.InsufficientPrivilegeError:
                system = "?"
            where = await connection.fetchrow("SELECT current_database(), current_schema()")
        assert where is not None
        return f"{system}/{where[0]}/{where[1]}"

    @translated
    async def purged_upto(self) -> int:
        value = await self._pool.fetchval(
            "SELECT value FROM satellites_meta WHERE name = $1", PURGED_UPTO
        )
        return int(value or 0)

    # -- operations -------------------------------------------------------------------------

    @translated
    async def status(self) -> OutboxStatus:
        row = await self._pool.fetchrow(
            """
            SELECT count(*) FILTER (WHERE cardinality(pending) > 0 AND dead_at IS NULL),
                   count(*) FILTER (WHERE dead_at IS NOT NULL),
                   count(*) FILTER (WHERE cardinality(pending) = 0),
                   min(created_at) FILTER (WHERE cardinality(pending) > 0 AND dead_at IS NULL)
              FROM satellites_outbox
            """
        )
        targets = await self._pool.fetch(
            "SELECT target, count(*) AS n FROM satellites_outbox, unnest(pending) AS target "
            "WHERE dead_at IS NULL GROUP BY target ORDER BY target"
        )
        assert row is not None
        return OutboxStatus(
            pending=row[0],
            dead=row[1],
            done=row[2],
            oldest_pending=row[3],
            by_target={record["target"]: record["n"] for record in targets},
        )

    @translated
    async def retry_dead(self) -> int:
        """Give dead-lettered rows a fresh set of attempts, due now."""
        result = await self._pool.execute(
            "UPDATE satellites_outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now() "
            "WHERE dead_at IS NOT NULL"
        )
        return _affected(result)

    @translated
    async def retry_now(self) -> int:
        """Make every pending row due now (after an outage, say), except rows a running
        relay or a committing process holds (their lease has not run out)."""
        result = await self._pool.execute(
            "UPDATE satellites_outbox SET next_attempt_at = now() "
            "WHERE cardinality(pending) > 0 AND dead_at IS NULL AND next_attempt_at > now() "
            "AND (leased_until IS NULL OR leased_until <= now())"
        )
        return _affected(result)

    @translated
    async def purge(self, done_older_than: dt.timedelta) -> int:
        """Delete settled rows older than the age given; followers behind it must rebuild.

        Rows a durable event subscriber has not read yet, still owes or dead-lettered
        (``satellites events retry`` needs them) are kept.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            purged = await connection.fetchrow(
                "WITH gone AS (DELETE FROM satellites_outbox AS o WHERE cardinality(pending) = 0 "
                "AND done_at < now() - $1::interval "
                "AND txid < (SELECT coalesce(min(position), o.txid + 1) "
                "FROM satellites_subscriptions) "
                "AND NOT EXISTS (SELECT 1 FROM satellites_deliveries AS d WHERE d.seq = o.seq "
                "AND d.done_at IS NULL) RETURNING txid) "
                "SELECT count(*), max(txid) FROM gone",
                done_older_than,
            )
            assert purged is not None
            count, purged_txid = purged
            if purged_txid is not None:
                await connection.execute(
                    f"INSERT INTO {meta_table.name} (name, value) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET value = greatest("
                    f"{meta_table.name}.value, excluded.value)",
                    PURGED_UPTO,
                    purged_txid,
                )
        return int(count)


def fold_captured(
    records: Sequence[OutboxRecord],
) -> tuple[list[OutboxRecord], list[int], list[int]]:
    """(one record per key, seqs superseded, seqs whose stored row the fold rewrites).

    A row that absorbed earlier ones may have become ``created``, and the columns it
    changed are no longer known (``changed`` becomes ``None``).
    """
    latest: dict[tuple[str, str], OutboxRecord] = {}
    superseded: list[int] = []
    for record in records:
        slot = (record.entity, record.key)
        earlier = latest.pop(slot, None)
        if earlier is None:
            latest[slot] = record
            continue
        superseded.append(earlier.seq)
        if earlier.operation != Operation.CREATED.value:
            latest[slot] = dataclasses.replace(record, changed=None)
        elif record.operation == Operation.DELETED.value:
            superseded.append(record.seq)  # the row never existed outside the transaction
        else:
            latest[slot] = dataclasses.replace(
                record, operation=Operation.CREATED.value, changed=None
            )
    stored = {record.seq: record for record in records}
    rewritten = [
        record.seq
        for record in latest.values()
        if (record.operation, record.changed)
        != (stored[record.seq].operation, stored[record.seq].changed)
    ]
    return sorted(latest.values(), key=lambda r: r.seq), superseded, rewritten


def _change_row(change: Change, targets: Sequence[str]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "entity": change.table,
        "key": change.key,
        "operation": change.operation.value,
        "version": change.version,
        "payload": change.stored_payload,
        "pending": [*targets, EVENTS_TARGET],
        "attempts": 1,
    }


def _event_row(event: DataEvent) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "entity": event.resource,
        "key": event.key,
        "operation": EVENT_OPERATION,
        "version": event.version or 0,
        "payload": json_safe(event_row_payload(event)),
        "pending": [EVENTS_TARGET],
        "attempts": 1,
    }


def _record(
    row: Mapping[Any, Any] | asyncpg.Record, stamp: OutboxStamp | None = None
) -> OutboxRecord:
    """An outbox row as a record; its stamp is ``stamp`` (this commit's), else the one it
    stores, else its ``created_at`` (a row no traced commit stamped)."""
    values = dict(row)
    payload = orjson.loads(values["payload"])
    stored = observe.pop_stamp(payload)
    values["payload"] = payload
    values["stamp"] = stamp or stored or OutboxStamp(None, values["created"])
    return OutboxRecord.from_row(values)


def _affected(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
