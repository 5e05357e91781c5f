"""RPC between cluster roles over Arrow Flight (DESIGN §6).

A call is a Flight action: its type names the method, its body carries JSON arguments and
any number of named Arrow tables (query vectors, rows, hits travel as Arrow IPC, never as
JSON). The reply has the same shape. A :class:`~gpuvec.errors.GpuvecError` raised by a
handler reaches the caller as the same class with the same message and code; a node that
cannot be reached raises :class:`~gpuvec.errors.UnavailableError` naming its address.

Frame: ``u32 len | JSON {"args": …, "tables": [names]} | (u64 len | IPC stream)*``; a
reply's JSON also has ``server_s``, the seconds the node spent on the call.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from gpuvec import errors
from gpuvec.errors import GpuvecError, UnavailableError

log = logging.getLogger(__name__)

Tables = dict[str, pa.Table]
Handler = Callable[[dict[str, Any], Tables], tuple[dict[str, Any], Tables]]


_LOCAL = threading.local()


def last_server_seconds() -> float:
    """Seconds the last call made from this thread spent in its node (decode + handler),
    as the node reported it (0.0 before any call): benchmarks set it against the round
    trip."""
    return float(getattr(_LOCAL, "server_s", 0.0))


def encode(
    args: dict[str, Any], tables: Tables | None = None, server_s: float | None = None
) -> bytes:
    tables = tables or {}
    frame: dict[str, Any] = {"args": args, "tables": list(tables)}
    if server_s is not None:  # a reply: the time the node spent on it
        frame["server_s"] = server_s
    head = json.dumps(frame, separators=(",", ":")).encode()
    parts = [struct.pack("<I", len(head)), head]
    for table in tables.values():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        buf = sink.getvalue()
        parts += [struct.pack("<Q", buf.size), buf.to_pybytes()]
    return b"".join(parts)


def decode(body: bytes | pa.Buffer) -> tuple[dict[str, Any], Tables]:
    buf = pa.py_buffer(body) if isinstance(body, bytes) else body
    (n,) = struct.unpack_from("<I", buf, 0)
    head = json.loads(buf.slice(4, n).to_pybytes())
    _LOCAL.server_s = head.get("server_s", 0.0)
    pos, tables = 4 + n, {}
    for name in head["tables"]:
        (size,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        tables[name] = pa.ipc.open_stream(buf.slice(pos, size)).read_all()
        pos += size
    return head["args"], tables


def _error_payload(e: GpuvecError) -> str:
    return json.dumps({"type": type(e).__name__, "code": e.code, "message": e.message})


def _raise_remote(e: flight.FlightError, address: str, method: str) -> None:
    text = str(e)
    start = text.find('{"type"')
    if start >= 0:
        try:
            info = json.JSONDecoder().raw_decode(text, start)[0]
        except ValueError:
            info = None
        if info:
            cls = getattr(errors, info["type"], GpuvecError)
            if not (isinstance(cls, type) and issubclass(cls, GpuvecError)):
                cls = GpuvecError
            raise cls(info["message"], code=info["code"]) from None
    if isinstance(e, flight.FlightUnavailableError | flight.FlightTimedOutError):
        raise UnavailableError(f"node {address} unreachable ({method}): {text[:200]}") from None
    raise GpuvecError(f"node {address} failed in {method}: {text[:500]}") from None


class RpcServer(flight.FlightServerBase):
    """Serves ``handlers`` (method name → handler) on ``host:port`` (0: any free port)
    in a background thread."""

    def __init__(self, handlers: dict[str, Handler], host: str = "127.0.0.1", port: int = 0):
        super().__init__(f"grpc+tcp://{host}:{port}")
        self.handlers = dict(handlers)
        self.host = host
        self._thread = threading.Thread(target=self.serve, name="gpuvec-flight", daemon=True)
        self._thread.start()

    def address(self, advertise: str | None = None) -> str:
        return f"{advertise or self.host}:{self.port}"

    def do_action(self, context: Any, action: flight.Action) -> Any:
        """Run the handler; the reply's frame carries the seconds spent here (decode +
        handler): :func:`last_server_seconds` on the caller's side."""
        method = action.type
        handler = self.handlers.get(method)
        if handler is None:
            raise flight.FlightServerError(
                _error_payload(GpuvecError(f"unknown cluster RPC method {method!r}"))
            )
        start = time.perf_counter()
        try:
            args, tables = decode(action.body)
            out_args, out_tables = handler(args, tables)
            server_s = time.perf_counter() - start
        except GpuvecError as e:
            raise flight.FlightServerError(_error_payload(e)) from None
        except Exception as e:
            log.exception("RPC %s failed", method)
            err = GpuvecError(f"{method} failed on the node: {type(e).__name__}: {e}")
            raise flight.FlightServerError(_error_payload(err)) from None
        return [flight.Result(pa.py_buffer(encode(out_args, out_tables, server_s)))]

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [(name, "") for name in sorted(self.handlers)]

    def stop(self) -> None:
        self.shutdown()
        self._thread.join(timeout=5)


class RpcClient:
    """Calls one node; thread-safe (Flight clients multiplex calls on one channel)."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        self._client = flight.FlightClient(f"grpc+tcp://{address}")

    def call(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        tables: Tables | None = None,
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], Tables]:
        opts = flight.FlightCallOptions(timeout=timeout or self.timeout)
        action = flight.Action(method, encode(args or {}, tables))
        try:
            results = list(self._client.do_action(action, options=opts))
        except flight.FlightError as e:
            _raise_remote(e, self.address, method)
        except OSError as e:
            raise UnavailableError(f"node {self.address} unreachable ({method}): {e}") from None
        if not results:
            raise GpuvecError(f"node {self.address} returned nothing for {method}")
        return decode(results[0].body)

    def close(self) -> None:
        self._client.close()


class ClientPool:
    """One :class:`RpcClient` per address, created on first use."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._clients: dict[str, RpcClient] = {}

    def get(self, address: str) -> RpcClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = self._clients[address] = RpcClient(address, self.timeout)
            return client

    def drop(self, address: str) -> None:
        with self._lock:
            client = self._clients.pop(address, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()
