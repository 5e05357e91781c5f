"""``gpuvec serve``: the embedded runtime behind a Milvus-compatible gRPC endpoint.

Owns the server's lifecycle: the gRPC server (thread pool, message-size limits, keepalive
as pymilvus expects), optional authentication and TLS, and graceful shutdown — stop taking
calls, let running ones finish, flush every collection, close the engine. A crash
(``kill -9``) loses no acknowledged write: the engine acknowledges a write only once it is
in the WAL, and the next start replays it.

A request larger than ``max_recv_size`` bytes (Milvus's ``proxy.grpc.serverMaxRecvSize``:
64 MiB by default, or ``GPUVEC_MAX_RECV_SIZE``) is refused by gRPC itself with
``RESOURCE_EXHAUSTED`` before any of it is decoded; a body that does not decode is
refused with ``INTERNAL`` (as Milvus's gRPC server does), logged in one line.

With ``metrics_port`` set, the server also serves Prometheus ``/metrics`` on that port of
its host (:mod:`gpuvec.observability.exporter`); a port that cannot be bound is a warning,
never a failure to start.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pymilvus.grpc_gen import milvus_pb2_grpc

from gpuvec.errors import InvalidArgumentError
from gpuvec.observability.exporter import start_metrics_server

__all__ = [
    "DEFAULT_MAX_RECV_SIZE",
    "Server",
    "ServerOptions",
    "default_max_recv_size",
    "start_server",
]

log = logging.getLogger("gpuvec.server")

MB = 1 << 20
DEFAULT_MAX_RECV_SIZE = 64 * MB  # Milvus's proxy.grpc.serverMaxRecvSize default
_MAX_GRPC_SIZE = (1 << 31) - 1  # gRPC's limits are C ints
MAX_RECV_ENV = "GPUVEC_MAX_RECV_SIZE"


def default_max_recv_size() -> int:
    """The request size limit in bytes: ``GPUVEC_MAX_RECV_SIZE`` if set, else 64 MiB."""
    text = os.environ.get(MAX_RECV_ENV)
    if text is None:
        return DEFAULT_MAX_RECV_SIZE
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(f"{MAX_RECV_ENV}={text!r} is not a number of bytes") from None


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 19530
    auth: bool = False
    root_password: str = "Milvus"
    tls_cert: str | None = None
    tls_key: str | None = None
    max_workers: int = 32
    max_message_mb: int = 256  # largest response (MiB)
    max_recv_size: int = field(default_factory=default_max_recv_size)  # largest request (bytes)
    grace_s: float = 10.0
    flush_on_stop: bool = True  # a cluster proxy holds no data: it does not flush
    metrics_port: int = 0  # /metrics on this port and host (0: none; the CLI's default 9091)


class Server:
    """A running endpoint: ``address``, ``port``, ``stop()``, ``wait()``."""

    def __init__(
        self, grpc_server: grpc.Server, client: Any, port: int, host: str, flush: bool = True
    ) -> None:
        self._server = grpc_server
        self._flush = flush
        self.client = client
        self.port = port
        self.host = host
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.metrics: Any = None  # the /metrics endpoint (exporter.MetricsServer) if any

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float | None = 10.0) -> None:
        """Graceful shutdown: refuse new calls, finish running ones, flush, close."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._server.stop(grace).wait()
            try:
                if self._flush:
                    self.client.flush_all()
            except Exception:
                log.exception("flush on shutdown failed")
            finally:
                self.client.close()
                if self.metrics is not None:
                    self.metrics.stop()
                self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


class _OneLineDecodeErrors(logging.Filter):
    """gRPC logs a full traceback for every request body it cannot decode (and answers
    INTERNAL); a client sending garbage would flood the log. One line per request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Exception deserializing message!" and record.exc_info:
            exc = record.exc_info[1]
            record.msg = "undecodable request refused: %s: %.200s"
            record.args = (type(exc).__name__, exc)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_decode_errors() -> None:
    grpc_log = logging.getLogger("grpc._common")
    if not any(isinstance(f, _OneLineDecodeErrors) for f in grpc_log.filters):
        grpc_log.addFilter(_OneLineDecodeErrors())


def _credentials(opts: ServerOptions) -> grpc.ServerCredentials | None:
    if not opts.tls_cert and not opts.tls_key:
        return None
    if not (opts.tls_cert and opts.tls_key):
        raise InvalidArgumentError("TLS needs both --tls-cert and --tls-key")
    cert = Path(opts.tls_cert).read_bytes()
    key = Path(opts.tls_key).read_bytes()
    return grpc.ssl_server_credentials([(key, cert)])


def start_server(data_dir: str, opts: ServerOptions | None = None, **client_kw: Any) -> Server:
    """Open the engine on ``data_dir`` and start serving; returns once the port is bound."""
    from gpuvec import MilvusClient, __version__
    from gpuvec.server.auth import AuthInterceptor, Credentials
    from gpuvec.server.rbac import Rbac
    from gpuvec.server.servicer import MilvusServicer

    opts = opts or ServerOptions()
    if not 1 <= opts.max_recv_size <= _MAX_GRPC_SIZE:
        raise InvalidArgumentError(
            f"max_recv_size must be 1..{_MAX_GRPC_SIZE} bytes, got {opts.max_recv_size}"
        )
    creds = _credentials(opts)  # fail on bad TLS files and options before opening anything
    _quiet_decode_errors()
    client = MilvusClient(data_dir, **client_kw)
    try:
        credentials = Credentials(client.meta_store(), opts.root_password, client.meta_guard())
        interceptors = [AuthInterceptor(credentials)] if opts.auth else []
        send_limit = min(opts.max_message_mb * MB, _MAX_GRPC_SIZE)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=opts.max_workers, thread_name_prefix="rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", opts.max_recv_size),
                ("grpc.max_send_message_length", send_limit),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        servicer = MilvusServicer(client, version=f"v2.6.0-gpuvec-{__version__}")
        servicer.credentials = credentials
        if opts.auth:  # roles and privileges are enforced where users are authenticated
            servicer.rbac = Rbac(client.meta_store(), client.meta_guard(), credentials.users)
        milvus_pb2_grpc.add_MilvusServiceServicer_to_server(servicer, server)
        target = f"{opts.host}:{opts.port}"
        port = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
        if port == 0:
            raise InvalidArgumentError(f"cannot bind {target} (in use?)")
        server.start()
    except BaseException:
        client.close()
        raise
    log.info("gpuvec serving Milvus gRPC on %s:%d (data %s)", opts.host, port, data_dir)
    srv = Server(server, client, port, opts.host, opts.flush_on_stop)
    srv.metrics = start_metrics_server(opts.metrics_port, opts.host)  # None: off or port taken
    return srv


def serve_forever(data_dir: str, opts: ServerOptions, **client_kw: Any) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully (the ``gpuvec serve`` and
    ``gpuvec proxy`` commands)."""
    srv = start_server(data_dir, opts, **client_kw)
    scheme = "https" if opts.tls_cert else "http"
    print(f"gpuvec: Milvus endpoint {scheme}://{srv.address}  (data: {data_dir})", flush=True)
    if srv.metrics is not None:
        print(f"gpuvec: metrics {srv.metrics.url}", flush=True)
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    done.wait()
    print("gpuvec: shutting down (flushing)", flush=True)
    srv.stop(opts.grace_s)
    return 0
