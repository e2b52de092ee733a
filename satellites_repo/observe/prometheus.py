"""Serve the library's metrics for Prometheus with OpenTelemetry's official exporter.

Needs the ``satellites-repo[otel]`` extra (the SDK, ``opentelemetry-exporter-prometheus`` and
``prometheus-client``). Installs a global ``MeterProvider`` whose only reader is the
Prometheus one, so call it once, at the start of a process that owns its telemetry
(``satellites metrics``); an application with its own provider adds a
``PrometheusMetricReader`` to it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from satellites_repo.errors import ConfigurationError

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

__all__ = ["PrometheusEndpoint", "parse_address", "serve_prometheus"]

EXTRA_HINT = "install the otel extra: pip install 'satellites-repo[otel]'"


@dataclass(frozen=True, slots=True)
class PrometheusEndpoint:
    """The running ``/metrics`` HTTP server; ``close()`` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``:port`` (every interface, as Prometheus exporters do)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError(f"{address!r} is not an address like :9464 or 127.0.0.1:9464")
    return host or "0.0.0.0", int(port)


def serve_prometheus(address: str) -> PrometheusEndpoint:
    """Install a ``MeterProvider`` exporting to Prometheus and serve it at ``address``."""
    host, port = parse_address(address)
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(
            f"serving Prometheus metrics needs {exc.name}: {EXTRA_HINT}"
        ) from exc
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve Prometheus metrics on {address}: {exc}") from exc
    return PrometheusEndpoint(host, server.server_port, server, thread)
