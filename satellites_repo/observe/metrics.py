"""The library's instruments, all named under ``satellites.`` (see the README, "Observing").

Instruments are created once per process, on first use, from the API's global meter: they
bind to whatever ``MeterProvider`` the application installs. Without OpenTelemetry every
helper returns at once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.observe import _otel
from satellites_repo.observe.tracing import DB_COLLECTION, db_attributes, span

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram

__all__ = ["TARGET", "applying", "cache_outcome", "commit_timer", "reindexed", "verified"]

TARGET = "satellites.target"
"""The attribute naming a backend (``redis``, ``elasticsearch``, ``faiss``, ``events``)."""


SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram boundaries for durations and lag (the SDK's default ones suit milliseconds)."""


@dataclass(frozen=True, slots=True)
class _Instruments:
    commit_duration: Histogram
    apply_duration: Histogram
    apply_failures: Counter
    lag: Histogram
    cache_hits: Counter
    cache_misses: Counter
    reindex_rows: Counter
    reindex_rate: Histogram
    verify_rows: Counter
    verify_rate: Histogram


@functools.cache
def _instruments() -> _Instruments:
    meter = _otel.meter()

    def seconds(name: str, description: str) -> Histogram:
        return meter.create_histogram(
            name,
            unit="s",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            description=description,
        )

    return _Instruments(
        commit_duration=seconds("satellites.commit.duration", "uow.commit(), end to end"),
        apply_duration=seconds("satellites.apply.duration", "One batch applied to a backend"),
        apply_failures=meter.create_counter(
            "satellites.apply.failures", description="Batches a backend failed to apply"
        ),
        lag=seconds(
            "satellites.projection.lag",
            "From the outbox write (the commit) to the change applied, per backend",
        ),
        cache_hits=meter.create_counter(
            "satellites.cache.hits", description="Keys read from the cache"
        ),
        cache_misses=meter.create_counter(
            "satellites.cache.misses", description="Keys the cache did not hold"
        ),
        reindex_rows=meter.create_counter("satellites.reindex.rows", description="Rows reindexed"),
        reindex_rate=meter.create_histogram(
            "satellites.reindex.rate", unit="{row}/s", description="Rows/s of one reindex run"
        ),
        verify_rows=meter.create_counter("satellites.verify.rows", description="Rows verified"),
        verify_rate=meter.create_histogram(
            "satellites.verify.rate", unit="{row}/s", description="Rows/s of one verify run"
        ),
    )


class _CommitTimer:
    __slots__ = ("_started",)

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        outcome = "ok" if exc_type is None else "error"
        _instruments().commit_duration.record(
            time.perf_counter() - self._started, {"satellites.outcome": outcome}
        )


class _Nothing:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NOTHING = _Nothing()


def commit_timer() -> _CommitTimer | _Nothing:
    """Times a block into ``satellites.commit.duration``."""
    return _CommitTimer() if _otel.AVAILABLE else _NOTHING


def applying(
    target: str, collection: str | None, count: int, work: Awaitable[None], written: Sequence[float]
) -> Awaitable[None]:
    """``work`` (one backend's apply of ``count`` changes) inside its span, timed.

    ``written``: the outbox write times of the changes, for ``satellites.projection.lag``
    (one measurement per commit delivered, not per change: a bulk commit of 500 rows is
    one lag, and 500 histogram records would cost the commit more than its spans).
    """
    if not _otel.AVAILABLE:
        return work
    return _applying(target, collection, count, work, written)


async def _applying(
    target: str, collection: str | None, count: int, work: Awaitable[None], written: Sequence[float]
) -> None:
    instruments = _instruments()
    attributes = {TARGET: target}
    started = time.perf_counter()
    with span(
        f"apply {target}",
        {**db_attributes(target, "apply", collection), "satellites.changes": count},
    ):
        try:
            await work
        except Exception:
            instruments.apply_failures.add(1, attributes)
            raise
        finally:
            instruments.apply_duration.record(time.perf_counter() - started, attributes)
    now = time.time()
    for at in set(written):  # one per commit: a batch's changes share its write time
        instruments.lag.record(max(now - at, 0.0), attributes)


def cache_outcome(table: str, hits: int, misses: int) -> None:
    """Count a cache read, and note it on the current span (a ``get``/``get_many``)."""
    if not _otel.AVAILABLE:
        return
    from opentelemetry.trace import get_current_span

    instruments = _instruments()
    attributes = {DB_COLLECTION: table}
    if hits:
        instruments.cache_hits.add(hits, attributes)
    if misses:
        instruments.cache_misses.add(misses, attributes)
    current = get_current_span()
    current.set_attribute("satellites.cache.hits", hits)
    current.set_attribute("satellites.cache.misses", misses)
    current.set_attribute("satellites.cache.hit", misses == 0)


def reindexed(target: str, table: str, rows: int, seconds: float) -> None:
    """Record one reindex run of one backend: its rows and its rows per second."""
    if _otel.AVAILABLE:
        instruments = _instruments()
        _run(instruments.reindex_rows, instruments.reindex_rate, target, table, rows, seconds)


def verified(table: str, rows: int, seconds: float) -> None:
    """Record one verify run over every backend of a table."""
    if _otel.AVAILABLE:
        instruments = _instruments()
        _run(instruments.verify_rows, instruments.verify_rate, None, table, rows, seconds)


def _run(
    rows_counter: Counter,
    rate: Histogram,
    target: str | None,
    table: str,
    rows: int,
    seconds: float,
) -> None:
    attributes = (
        {DB_COLLECTION: table} if target is None else {TARGET: target, DB_COLLECTION: table}
    )
    rows_counter.add(rows, attributes)
    rate.record(rows / seconds if seconds > 0 else 0.0, attributes)
