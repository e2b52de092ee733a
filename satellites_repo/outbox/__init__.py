"""The transactional outbox: changes written with the commit, delivered at least once.

``store`` reads and writes the table, ``delivery`` applies rows, ``relay`` retries what
the fast path could not finish, ``follower`` keeps each process's FAISS index in step.
"""

from __future__ import annotations

from satellites_repo.outbox.follower import VectorFollower
from satellites_repo.outbox.records import OutboxRecord
from satellites_repo.outbox.relay import Relay
from satellites_repo.outbox.store import OutboxStatus, OutboxStore

__all__ = ["OutboxRecord", "OutboxStatus", "OutboxStore", "Relay", "VectorFollower"]
