"""Observability: OpenTelemetry spans and metrics, outbox backlog gauges, log fields.

Everything here is a no-op without the ``satellites-repo[otel]`` extra (``_otel.AVAILABLE``),
and the API's own no-op until the application installs an SDK provider. The library
calls these helpers around its existing steps; the logic lives here so the write path
reads as before. Names are documented in the README ("Observing").
"""

from __future__ import annotations

from satellites_repo.observe._otel import AVAILABLE
from satellites_repo.observe.backlog import TargetBacklog, publish_backlog, watch_backlog
from satellites_repo.observe.logs import log_fields
from satellites_repo.observe.metrics import (
    TARGET,
    applying,
    cache_outcome,
    commit_timer,
    reindexed,
    verified,
)
from satellites_repo.observe.tracing import (
    STAMP_KEY,
    OutboxStamp,
    SpanLike,
    committing,
    db_attributes,
    outbox_stamp,
    pop_stamp,
    read_span,
    relay_batch,
    span,
    stamped,
)

__all__ = [
    "AVAILABLE",
    "STAMP_KEY",
    "TARGET",
    "OutboxStamp",
    "SpanLike",
    "TargetBacklog",
    "applying",
    "cache_outcome",
    "commit_timer",
    "committing",
    "db_attributes",
    "log_fields",
    "outbox_stamp",
    "pop_stamp",
    "publish_backlog",
    "read_span",
    "reindexed",
    "relay_batch",
    "span",
    "stamped",
    "verified",
    "watch_backlog",
]
