"""The one place that imports OpenTelemetry, and only if it is installed.

Without the ``satellites-repo[otel]`` extra (no ``opentelemetry-api``), ``AVAILABLE`` is false
and every helper of this package returns shared no-op objects: no import, no allocation,
no context switch per call. With it, the API's own proxies do the work: until the
application installs an SDK provider they are no-ops too, and they bind to the provider
whenever it is set, before or after the layer starts.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: everything is a no-op
    AVAILABLE = False
else:
    AVAILABLE = True

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Tracer

__all__ = ["AVAILABLE", "SCOPE", "meter", "propagator", "tracer", "tracing"]

SCOPE = "satellites_repo"
"""The instrumentation scope name of every span and instrument of the library."""


class _Tracing:
    """Whether a tracer provider has been set; once one is, it stays (the API sets it once),
    so only the answer "not yet" is asked again."""

    provider_set = False


def tracing() -> bool:
    """Whether spans are worth making: the API is installed and the application has set a
    tracer provider (until then the API's proxy would make non-recording spans, at a cost
    on every read and commit)."""
    if _Tracing.provider_set:
        return True
    if not AVAILABLE or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    _Tracing.provider_set = True
    return True


@functools.cache
def tracer() -> Tracer:
    return trace.get_tracer(SCOPE)


@functools.cache
def meter() -> Meter:
    return metrics.get_meter(SCOPE)


@functools.cache
def propagator() -> TraceContextTextMapPropagator:
    """W3C trace context only: the outbox row carries ``traceparent``, never baggage."""
    return TraceContextTextMapPropagator()
