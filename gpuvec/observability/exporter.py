"""The ``/metrics`` HTTP endpoint of a gpuvec process (``gpuvec serve`` and every cluster
role): ``prometheus_client``'s HTTP server on a daemon thread, serving the default registry
with the scrape-time collector of :mod:`.collector` registered.

The port is Milvus's metrics port, 9091, unless ``--metrics-port`` or
``GPUVEC_METRICS_PORT`` says otherwise; 0 turns the endpoint off. Metrics never stop a
server: a port that cannot be bound is logged as a warning and the process goes on without
the endpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gpuvec.metrics")

DEFAULT_METRICS_PORT = 9091  # Milvus's metrics port
METRICS_PORT_ENV = "GPUVEC_METRICS_PORT"


def default_metrics_port() -> int:
    """``GPUVEC_METRICS_PORT`` if set to a port number (0: off), else 9091; a value that is
    not a port number is logged and ignored (metrics never stop a server)."""
    text = os.environ.get(METRICS_PORT_ENV, "").strip()
    if not text:
        return DEFAULT_METRICS_PORT
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        log.warning("%s=%r is not a port number; using %d", METRICS_PORT_ENV, text,
                    DEFAULT_METRICS_PORT)  # fmt: skip
        return DEFAULT_METRICS_PORT
    return port


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint."""

    host: str
    port: int
    _server: Any
    _thread: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer | None:
    """Serve ``/metrics`` on ``host:port`` (a daemon thread); None when ``port`` is 0 or
    cannot be bound (logged: metrics never stop a server)."""
    if not port:
        return None
    from prometheus_client import start_http_server

    from gpuvec.observability import internals  # noqa: F401  (define every family)
    from gpuvec.observability.collector import register_collector

    register_collector()
    try:
        server, thread = start_http_server(port, addr=host)
    except (OSError, OverflowError, ValueError) as e:  # in use, not allowed, out of range
        log.warning("metrics endpoint %s:%d not started (%s); continuing without it", host, port, e)
        return None
    log.info("gpuvec metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(host, int(server.server_address[1]), server, thread)
