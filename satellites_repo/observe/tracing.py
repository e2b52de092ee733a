"""Spans, and the trace context an outbox row carries from the commit to its delivery.

Span tree of one ``uow.commit()`` (names as exported)::

    satellites.commit
    ├── satellites.flush
    ├── INSERT satellites_outbox
    ├── COMMIT
    └── apply <backend>             one per backend, concurrent

The commit's W3C ``traceparent`` and the wall-clock time of the outbox write travel in
the outbox row (``OutboxStamp``), so the relay's ``satellites.relay.batch`` span links to
every commit it delivers, and projection lag is measured from the write, in any process.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from satellites_repo.observe import _otel

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link

__all__ = [
    "DB_COLLECTION",
    "DB_OPERATION",
    "DB_SYSTEM",
    "STAMP_KEY",
    "OutboxStamp",
    "SpanLike",
    "committing",
    "db_attributes",
    "outbox_stamp",
    "pop_stamp",
    "read_span",
    "relay_batch",
    "span",
    "stamped",
]

DB_SYSTEM = "db.system.name"
DB_COLLECTION = "db.collection.name"
DB_OPERATION = "db.operation.name"
"""OpenTelemetry's semantic conventions for database spans (stable since 1.26)."""

STAMP_KEY = "_satellites_trace"
"""The key of the stamp inside an outbox row's JSON payload (taken out when read back)."""

Attribute = str | bool | int | float


class SpanLike(Protocol):
    """What the library does with a span: an OpenTelemetry ``Span`` or the no-op one."""

    def set_attribute(self, key: str, value: Attribute) -> Any: ...


class _NoopSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: Attribute) -> None:
        return None

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


_NOOP = _NoopSpan()
_COMMIT_CONTEXT: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "satellites_commit_context", default=None
)


def db_attributes(
    system: str | None = None, operation: str | None = None, collection: str | None = None
) -> dict[str, Attribute]:
    """The semantic-convention attributes that apply (unknown ones are left out)."""
    pairs = ((DB_SYSTEM, system), (DB_OPERATION, operation), (DB_COLLECTION, collection))
    return {name: value for name, value in pairs if value is not None}


def span(
    name: str,
    attributes: Mapping[str, Attribute] | None = None,
    *,
    links: Sequence[Link] = (),
) -> contextlib.AbstractContextManager[SpanLike]:
    """A span around a block, current inside it; an exception marks it failed and re-raises.

    Inside a trace that is not sampled (the current span valid but not recording) no span
    is made: its children would be dropped too (parent-based sampling, the default), and
    eight spans a commit with sampling off were most of tracing's cost.
    """
    if not _otel.tracing() or _in_unsampled_trace():
        return _NOOP
    return _otel.tracer().start_as_current_span(name, attributes=attributes, links=links)


def _in_unsampled_trace() -> bool:
    from opentelemetry.trace import get_current_span

    current = get_current_span()
    return current.get_span_context().is_valid and not current.is_recording()


def read_span(operation: str, table: str) -> contextlib.AbstractContextManager[SpanLike]:
    """The span of one repository read (``get``, ``search`` ...) of ``table``."""
    if not _otel.tracing():
        return _NOOP
    return span(f"{operation} {table}", db_attributes(operation=operation, collection=table))


@contextlib.contextmanager
def _commit_span() -> Iterator[SpanLike]:
    from opentelemetry import context

    with _otel.tracer().start_as_current_span("satellites.commit") as current:
        token = _COMMIT_CONTEXT.set(context.get_current())
        try:
            yield current
        finally:
            _COMMIT_CONTEXT.reset(token)


def committing() -> contextlib.AbstractContextManager[SpanLike]:
    """The root span of one ``commit()``; outbox rows written inside it link back to it."""
    if not _otel.tracing():
        return _NOOP
    return _commit_span()


@dataclass(frozen=True, slots=True)
class OutboxStamp:
    """What an outbox row carries for observability: the commit's span and write time."""

    traceparent: str | None
    written_at: float
    """Wall-clock seconds (``time.time()``) when the row was written, for projection lag."""

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"at": self.written_at}
        if self.traceparent is not None:
            value["traceparent"] = self.traceparent
        return value

    @classmethod
    def from_json(cls, value: object) -> OutboxStamp | None:
        """The stamp, or ``None`` for anything that is not one (never an error: rows live long)."""
        if not isinstance(value, dict) or not isinstance(value.get("at"), int | float):
            return None
        traceparent = value.get("traceparent")
        return cls(traceparent if isinstance(traceparent, str) else None, float(value["at"]))


def outbox_stamp() -> OutboxStamp | None:
    """The stamp for rows written now: ``None`` without OpenTelemetry (rows stay as they were).

    Only a sampled commit gives its ``traceparent``: a link to a trace nobody records is
    worth nothing, and a commit whose rows need no trace is spared rewriting them.
    """
    if not _otel.AVAILABLE:
        return None
    from opentelemetry.trace import get_current_span

    context = _COMMIT_CONTEXT.get()
    if not get_current_span(context).get_span_context().trace_flags.sampled:
        return OutboxStamp(None, time.time())
    carrier: dict[str, str] = {}
    _otel.propagator().inject(carrier, context=context)
    return OutboxStamp(carrier.get("traceparent"), time.time())


def stamped(rows: list[dict[str, Any]], stamp: OutboxStamp | None) -> list[dict[str, Any]]:
    """Copies of outbox ``rows`` whose payload carries ``stamp`` (``rows`` itself if none)."""
    if stamp is None:
        return rows
    value = stamp.to_json()
    return [{**row, "payload": {**row["payload"], STAMP_KEY: value}} for row in rows]


def pop_stamp(payload: dict[str, Any]) -> OutboxStamp | None:
    """Take the stamp out of a payload read back from the outbox (``None`` if it has none)."""
    return OutboxStamp.from_json(payload.pop(STAMP_KEY, None))


def relay_batch(
    stamps: Iterable[OutboxStamp | None], rows: int
) -> contextlib.AbstractContextManager[SpanLike]:
    """The span of one relay batch, linked to each commit whose rows it delivers."""
    if not _otel.AVAILABLE:
        return _NOOP
    return span(
        "satellites.relay.batch",
        {"satellites.rows": rows},
        links=_links({stamp.traceparent for stamp in stamps if stamp and stamp.traceparent}),
    )


def _links(traceparents: Iterable[str]) -> list[Link]:
    from opentelemetry.trace import Link, get_current_span

    links = []
    for traceparent in sorted(traceparents):
        extracted = _otel.propagator().extract({"traceparent": traceparent})
        context = get_current_span(extracted).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    return links
