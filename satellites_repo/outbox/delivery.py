"""Applying outbox rows: projections first, then events, then what is still owed.

The fast path (right after COMMIT) and the relay (for whatever the fast path could not
finish) deliver rows the same way; only the targets they apply differ.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.errors import Rejection
from satellites_repo.outbox.capture import ALL_SHARED
from satellites_repo.outbox.records import EVENTS_TARGET, OutboxRecord
from satellites_repo.outbox.store import Settlement

if TYPE_CHECKING:
    from satellites_repo.events import EventBus
    from satellites_repo.outbox.dispatch import Dispatcher
    from satellites_repo.outbox.rehydrate import Rehydrator

__all__ = ["Delivery", "deliver"]

logger = logging.getLogger(__name__)

LEFT_FOR_SUBSCRIBERS = Rejection("left for a process with subscribers", permanent=False)
"""Not a failure: an event this process does not publish (it has no subscribers)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery achieved: settlements to record, local targets that failed."""

    settlements: list[Settlement]
    local_failures: frozenset[str]


async def deliver(
    records: Sequence[OutboxRecord],
    dispatcher: Dispatcher,
    events: EventBus,
    rehydrator: Rehydrator,
    *,
    local_targets: Sequence[str] = (),
    publish: bool = True,
) -> Delivery:
    """Apply each row's pending targets (plus ``local_targets``) and publish its event.

    ``publish`` false: the events are left owed (without an error, due at once) for a
    process whose bus has subscribers.

    Returns the settlements to record (per group of rows, the targets that failed and
    why) and which ``local_targets`` failed. Those are projections of this process only
    (FAISS), applied but never owed in the outbox: every process's follower applies them.
    """
    failed: dict[int, dict[str, Rejection]] = defaultdict(dict)
    local_failures: set[str] = set()
    for pending, owed in _by_pending(records, dispatcher.shared_targets).items():
        targets = [*pending, *local_targets]
        group = [record for record in owed if _wanted(record, dispatcher, targets)]
        changes = await rehydrator.complete(group)  # rows no target wants are not read back
        if not changes:
            continue
        written = {(r.entity, r.key): r.stamp.written_at for r in group if r.stamp}
        for failure in await dispatcher.dispatch(changes, targets=targets, written=written):
            if failure.target not in pending:
                local_failures.add(failure.target)
                continue
            missed = {(change.table, change.key) for change in failure.changes}
            for record in group:
                if (record.entity, record.key) in missed:
                    reason = failure.reason(record.entity, record.key)
                    failed[record.seq][failure.target] = reason
    publishing = [record for record in records if EVENTS_TARGET in record.pending]
    if not publish:
        for record in publishing:
            failed[record.seq][EVENTS_TARGET] = LEFT_FOR_SUBSCRIBERS
        publishing = []
    if publishing:
        try:
            await events.publish_many([record.event() for record in publishing])
        except Exception as exc:
            logger.warning("publishing %d event(s) failed: %s", len(publishing), exc)
            for record in publishing:
                reason = Rejection(f"{type(exc).__name__}: {exc}", permanent=False)
                failed[record.seq][EVENTS_TARGET] = reason
    return Delivery(_settlements(records, failed), frozenset(local_failures))


def _wanted(record: OutboxRecord, dispatcher: Dispatcher, targets: Sequence[str]) -> bool:
    change = record.change
    return change is not None and dispatcher.wanted(change, targets)


def _by_pending(
    records: Sequence[OutboxRecord], shared: Sequence[str]
) -> dict[tuple[str, ...], list[OutboxRecord]]:
    """Rows by the targets they owe; a captured row's ``ALL_SHARED`` is every shared one."""
    groups: dict[tuple[str, ...], list[OutboxRecord]] = defaultdict(list)
    for record in records:
        owed = (shared if target == ALL_SHARED else (target,) for target in record.pending)
        targets = tuple(dict.fromkeys(t for each in owed for t in each if t != EVENTS_TARGET))
        groups[targets].append(record)
    return groups


def _settlements(
    records: Sequence[OutboxRecord], failed: dict[int, dict[str, Rejection]]
) -> list[Settlement]:
    """One settlement per outcome. A row a backend refused for its content (a permanent
    rejection) is dead-lettered at once with the reason: retrying cannot help it, and
    ``satellites outbox retry-dead`` gives it new attempts once the cause is fixed."""
    grouped: dict[tuple[tuple[str, ...], str | None, int, bool], list[int]] = defaultdict(list)
    for record in records:
        errors = failed.get(record.seq, {})
        remaining = tuple(sorted(errors))
        reasons = "; ".join(
            f"{target}: {errors[target].reason}"
            for target in remaining
            if errors[target] is not LEFT_FOR_SUBSCRIBERS
        )
        error = reasons or None
        dead = any(errors[target].permanent for target in remaining)
        grouped[(remaining, error, record.attempts, dead)].append(record.seq)
    return [
        Settlement(tuple(seqs), remaining, error, attempt, dead=dead)
        for (remaining, error, attempt, dead), seqs in grouped.items()
    ]
