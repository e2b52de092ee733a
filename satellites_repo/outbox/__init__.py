"""The transactional outbox: changes written with the commit, delivered at least once.

``store`` reads and writes the table, ``hooks`` is the unit of work's ``CommitHooks``,
``delivery`` applies rows through the ``dispatch``\\er, ``relay`` retries what the fast
path could not finish, ``follower`` keeps each process's local backends in step.
"""

from __future__ import annotations

from satellites_repo.outbox.follower import Follower
from satellites_repo.outbox.hooks import CommitTicket, OutboxHooks
from satellites_repo.outbox.records import OutboxRecord
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.store import OutboxStatus, OutboxStore

__all__ = [
    "CommitTicket",
    "Follower",
    "OutboxHooks",
    "OutboxRecord",
    "OutboxStatus",
    "OutboxStore",
    "Relay",
]
