"""``EtcdMetaStore``: the distributed :class:`~gpuvec.storage.meta.base.MetaStore` (DESIGN §2).

This module owns everything gpuvec says to etcd: key namespacing under ``root``, the
translation of the Protocol's value types to etcd's gRPC messages, the mapping of gRPC
failures onto :mod:`gpuvec.errors` (an unreachable server is an ``UnavailableError`` that
names the endpoint, never a hang or a raw gRPC exception) and the watch loop.

It talks to etcd through the generated stubs of ``pyetcd.etcdrpc`` on its own gRPC channel
rather than through ``pyetcd``'s client object, because that client marks its only endpoint
failed for 300 s after one transient error, cannot return ``Get`` results with lease ids
from a transaction, raises on compacted watches instead of letting the caller re-list, and
silently drops every watch when its stream breaks.

Watches run in one daemon thread each: the thread opens a watch stream from the revision
after the last event it pushed, and on any stream error or end (an etcd restart included)
reopens it with a bounded backoff, so no event is lost or repeated. When the revision it
needs was compacted it pushes one ``RESET`` event and a ``PUT`` per current key (all at the
re-list revision), then goes on from the revision after that.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from pyetcd import etcdrpc as rpc
from pyetcd.etcdrpc import kv_pb2

from gpuvec.errors import (
    ClosedError,
    CompactedError,
    GpuvecError,
    InvalidArgumentError,
    LeaseExpiredError,
    StorageError,
    UnavailableError,
)
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    EventType,
    Get,
    KeyValue,
    Lease,
    Op,
    Put,
    TxnResult,
    Watch,
    WatchEvent,
    check_key,
    check_prefix,
    check_value,
    prefix_end,
)
from gpuvec.storage.meta.txn import validate_ops
from gpuvec.storage.meta.watchqueue import QueueWatch

log = logging.getLogger(__name__)
T = TypeVar("T")

_PAGE = 500  # keys per Range page
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 2.0  # watch reconnect backoff, seconds
_TARGETS = {
    "value": rpc.Compare.VALUE,
    "version": rpc.Compare.VERSION,
    "create_revision": rpc.Compare.CREATE,
    "mod_revision": rpc.Compare.MOD,
    "lease": rpc.Compare.LEASE,
}
_OPS = {
    "==": rpc.Compare.EQUAL,
    "!=": rpc.Compare.NOT_EQUAL,
    "<": rpc.Compare.LESS,
    ">": rpc.Compare.GREATER,
}
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]
# asks etcd to end a watch stream whose member lost its leader, rather than go quiet
_HAS_LEADER = (("hasleader", "true"),)
_TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


class EtcdMetaStore:
    """A :class:`~gpuvec.storage.meta.base.MetaStore` on an etcd v3 server.

    ``root`` is prepended to every key sent and stripped from every key returned, so
    several stores (tests, clusters) can share one server. Every call is bounded by
    ``timeout`` seconds.
    """

    def __init__(
        self, endpoint: str = "127.0.0.1:2379", *, root: str = "", timeout: float = 5.0
    ) -> None:
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError(f"etcd timeout must be > 0 seconds, got {timeout!r}")
        self.endpoint = endpoint.removeprefix("http://")
        self.root = root
        self.timeout = float(timeout)
        self._root = check_prefix(root)
        self._channel = grpc.insecure_channel(self.endpoint, options=_CHANNEL_OPTIONS)
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._closed = False
        self._lock = threading.Lock()
        self._watches: set[_WatchLoop] = set()

    # --- plumbing ------------------------------------------------------------------------
    def _error(self, exc: grpc.RpcError, what: str) -> GpuvecError:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
        msg = f"etcd {what} failed: {details}"
        if self._closed:
            return self._closed_error(what)
        if code in _TRANSIENT:
            return UnavailableError(
                f"etcd at {self.endpoint} is unavailable ({what}: {code.name}, {details})"
            )
        if "lease not found" in details:
            return LeaseExpiredError(msg)
        if "has been compacted" in details:
            return CompactedError(msg)
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
            return InvalidArgumentError(msg)
        return StorageError(f"{msg} ({code.name})")

    def _call(self, what: str, method: Callable[..., T], request: Any) -> T:
        if self._closed:
            raise self._closed_error(what)
        try:
            return method(request, timeout=self.timeout, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise self._error(exc, what) from None
        except ValueError as exc:  # grpc: "Cannot invoke RPC on closed channel!"
            raise self._closed_error(what) from exc

    @staticmethod
    def _id(value: object, what: str = "lease id") -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise InvalidArgumentError(f"{what} must be a 64-bit int, got {value!r}")
        return value

    def _closed_error(self, what: str) -> ClosedError:
        return ClosedError(f"etcd meta store for {self.endpoint} is closed ({what})")

    def _key(self, key: str) -> bytes:
        return self._root + check_key(key)

    def _prefix(self, prefix: str) -> bytes:
        return self._root + check_prefix(prefix)

    @staticmethod
    def _span(raw_prefix: bytes) -> tuple[bytes, bytes]:
        """(key, range_end) covering every key that starts with ``raw_prefix``."""
        return (raw_prefix or b"\0"), prefix_end(raw_prefix)

    def _out(self, kv: kv_pb2.KeyValue) -> KeyValue:
        return KeyValue(
            key=kv.key[len(self._root) :].decode("utf-8"),
            value=bytes(kv.value),
            create_revision=kv.create_revision,
            mod_revision=kv.mod_revision,
            version=kv.version,
            lease=kv.lease,
        )

    # --- key/value -----------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        resp = self._call(f"get {key!r}", self._kv.Range, rpc.RangeRequest(key=self._key(key)))
        return self._out(resp.kvs[0]) if resp.kvs else None

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        value = check_value(key, value)
        req = rpc.PutRequest(key=self._key(key), value=value, lease=self._id(lease))
        return int(self._call(f"put {key!r}", self._kv.Put, req).header.revision)

    def delete(self, key: str) -> bool:
        req = rpc.DeleteRangeRequest(key=self._key(key))
        return self._call(f"delete {key!r}", self._kv.DeleteRange, req).deleted > 0

    def delete_prefix(self, prefix: str) -> int:
        key, end = self._span(self._prefix(prefix))
        req = rpc.DeleteRangeRequest(key=key, range_end=end)
        return int(self._call(f"delete_prefix {prefix!r}", self._kv.DeleteRange, req).deleted)

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        return self._range_raw(self._prefix(prefix), prefix)

    def _range_raw(self, raw_prefix: bytes, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under ``raw_prefix``, paged, every page read at the first page's
        revision; restarts when that revision is compacted between pages."""
        attempts = 3
        while True:
            (key, end), rev = self._span(raw_prefix), 0
            out: list[KeyValue] = []
            try:
                while True:
                    req = rpc.RangeRequest(key=key, range_end=end, limit=_PAGE, revision=rev)
                    resp = self._call(f"range {prefix!r}", self._kv.Range, req)
                    rev = rev or int(resp.header.revision)
                    out.extend(self._out(kv) for kv in resp.kvs)
                    if not resp.more or not resp.kvs:
                        return out, rev
                    key = resp.kvs[-1].key + b"\0"
            except CompactedError:
                attempts -= 1
                if not attempts:
                    raise

    def revision(self) -> int:
        req = rpc.RangeRequest(key=self._root or b"\0", count_only=True)
        return int(self._call("revision", self._kv.Range, req).header.revision)

    # --- transactions --------------------------------------------------------------------
    def _compare(self, c: Compare) -> rpc.Compare:
        msg = rpc.Compare(key=self._key(c.key), target=_TARGETS[c.target], result=_OPS[c.op])
        if c.target == "value":
            msg.value = check_value(c.key, c.value)  # type: ignore[arg-type]
        else:
            setattr(msg, c.target, self._id(c.value, f"txn compare on {c.target}"))
        return msg

    def _op(self, op: Op) -> rpc.RequestOp:
        if isinstance(op, Put):
            value = check_value(op.key, op.value)
            put = rpc.PutRequest(key=self._key(op.key), value=value, lease=self._id(op.lease))
            return rpc.RequestOp(request_put=put)
        if isinstance(op, Delete):
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._key(op.key)))
        if isinstance(op, DeletePrefix):
            key, end = self._span(self._prefix(op.prefix))
            dr = rpc.DeleteRangeRequest(key=key, range_end=end)
            return rpc.RequestOp(request_delete_range=dr)
        if isinstance(op, Get):
            return rpc.RequestOp(request_range=rpc.RangeRequest(key=self._key(op.key)))
        raise InvalidArgumentError(f"txn op must be Put, Delete, DeletePrefix or Get: {op!r}")

    def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        validate_ops(compare, success, failure)  # names the first bad compare/op
        req = rpc.TxnRequest(
            compare=[self._compare(c) for c in compare],
            success=[self._op(op) for op in success],
            failure=[self._op(op) for op in failure],
        )
        resp = self._call("txn", self._kv.Txn, req)
        ops = success if resp.succeeded else failure
        got: list[KeyValue | None] = []
        for op, r in zip(ops, resp.responses, strict=True):
            if isinstance(op, Get):
                kvs = r.response_range.kvs
                got.append(self._out(kvs[0]) if kvs else None)
        return TxnResult(bool(resp.succeeded), int(resp.header.revision), got)

    # --- leases --------------------------------------------------------------------------
    def grant_lease(self, ttl: int) -> Lease:
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 1:
            raise InvalidArgumentError(f"lease ttl must be an int >= 1 second, got {ttl!r}")
        resp = self._call(
            f"grant_lease ttl={ttl}", self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl)
        )
        if resp.error:
            raise StorageError(f"etcd refused a lease of ttl={ttl}: {resp.error}")
        return Lease(id=int(resp.ID), ttl=int(resp.TTL))

    def keepalive(self, lease_id: int) -> int:
        what = f"keepalive lease {lease_id}"
        req = rpc.LeaseKeepAliveRequest(ID=self._id(lease_id))

        def once(request: Any, **kw: Any) -> Any:  # one request, one reply on a stream
            call = self._lease.LeaseKeepAlive(iter([request]), **kw)
            try:
                return next(call, None)
            finally:
                call.cancel()

        resp = self._call(what, once, req)
        if resp is None:
            raise UnavailableError(f"etcd at {self.endpoint} closed the stream ({what})")
        if resp.TTL <= 0:
            raise LeaseExpiredError(f"lease {lease_id} is gone (expired or revoked)")
        return int(resp.TTL)

    def revoke_lease(self, lease_id: int) -> None:
        req = rpc.LeaseRevokeRequest(ID=self._id(lease_id))
        with contextlib.suppress(LeaseExpiredError):  # already gone: revoking is idempotent
            self._call(f"revoke lease {lease_id}", self._lease.LeaseRevoke, req)

    def lease_ttl(self, lease_id: int) -> int:
        req = rpc.LeaseTimeToLiveRequest(ID=self._id(lease_id))
        ttl = int(self._call(f"lease_ttl {lease_id}", self._lease.LeaseTimeToLive, req).TTL)
        return ttl if ttl >= 0 else -1

    # --- watch, compaction, lifecycle ----------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        raw = self._prefix(prefix)
        if start_revision is None:
            start_revision = self.revision() + 1
        elif not isinstance(start_revision, int) or start_revision < 1:
            raise InvalidArgumentError(f"watch start_revision must be >= 1: {start_revision!r}")
        if self._closed:
            raise self._closed_error("watch")
        loop = _WatchLoop(self, raw, prefix, start_revision)
        with self._lock:
            self._watches.add(loop)
        loop.start()
        return loop.queue

    def compact(self, revision: int) -> None:
        req = rpc.CompactionRequest(revision=self._id(revision, "revision"), physical=True)
        try:
            self._call(f"compact at revision {revision}", self._kv.Compact, req)
        except CompactedError:
            pass  # history already compacted at or past ``revision``
        except InvalidArgumentError as exc:
            if "future revision" not in exc.message:
                raise
            raise CompactedError(
                f"cannot compact at revision {revision}: it is past the store's revision"
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loops, self._watches = list(self._watches), set()
        for loop in loops:
            loop.queue.cancel()
        self._channel.close()

    def __enter__(self) -> EtcdMetaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdMetaStore({self.endpoint!r}, root={self.root!r})"


class _WatchLoop:
    """The producer side of one watch: a daemon thread streaming etcd events into a
    :class:`QueueWatch`, reconnecting from the revision after the last pushed event."""

    def __init__(self, store: EtcdMetaStore, raw_prefix: bytes, prefix: str, start: int) -> None:
        self.store = store
        self.raw_prefix = raw_prefix
        self.prefix = prefix
        self.next_rev = start  # first revision not yet pushed
        self.queue = QueueWatch(on_cancel=self._stop)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None  # the live grpc stream, cancelled by _stop
        self._backoff = _BACKOFF_MIN
        self._thread = threading.Thread(
            target=self._run, name=f"etcd-watch{store.root}{prefix}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _stop(self) -> None:
        with self._lock:
            self._stopped.set()
            call = self._call
        if call is not None:
            call.cancel()
        with self.store._lock:
            self.store._watches.discard(self)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self._stream():
                    continue  # re-listed: reopen from the new revision at once
            except UnavailableError as exc:  # a re-list could not reach etcd
                log.debug("etcd watch %r: %s", self.prefix, exc)
            except GpuvecError as exc:
                if not self._stopped.is_set():
                    self.queue.fail(exc)
                return
            except Exception as exc:  # a bug or an unexpected reply: end the watch loudly
                log.exception("etcd watch %r failed", self.prefix)
                self.queue.fail(StorageError(f"etcd watch on {self.prefix!r} failed: {exc!r}"))
                return
            if self._stopped.wait(self._backoff):
                return
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    def _stream(self) -> bool:
        """One watch stream from ``next_rev``; returns when it ends or breaks, True when
        it ended because of a re-list."""
        key, end = EtcdMetaStore._span(self.raw_prefix)
        create = rpc.WatchCreateRequest(key=key, range_end=end, start_revision=self.next_rev)
        done = threading.Event()

        def requests() -> Iterator[rpc.WatchRequest]:
            yield rpc.WatchRequest(create_request=create)
            done.wait()  # keep the stream half-open until it ends

        with self._lock:
            if self._stopped.is_set():
                return False
            call = self._call = self.store._watch.Watch(requests(), metadata=_HAS_LEADER)
        try:
            for resp in call:
                if self._stopped.is_set():
                    return False
                if resp.compact_revision:
                    self._relist()
                    return True
                if resp.created:
                    self._backoff = _BACKOFF_MIN
                if resp.canceled:
                    log.warning("etcd canceled watch %r: %s", self.prefix, resp.cancel_reason)
                    return False
                events = [self._event(e) for e in resp.events if e.kv.mod_revision >= self.next_rev]
                if events:
                    self.queue.push(events)
                    self.next_rev = events[-1].revision + 1
        except grpc.RpcError as exc:
            if not self._stopped.is_set():  # say it once per outage, not per retry
                log.log(
                    logging.INFO if self._backoff == _BACKOFF_MIN else logging.DEBUG,
                    "etcd watch %r: stream broke (%s); resuming at revision %d",
                    self.prefix,
                    exc.code() if isinstance(exc, grpc.Call) else exc,
                    self.next_rev,
                )
        finally:
            done.set()
            with self._lock:
                self._call = None
            call.cancel()
        return False

    def _event(self, e: kv_pb2.Event) -> WatchEvent:
        kv = e.kv
        key = kv.key[len(self.store._root) :].decode("utf-8")
        if e.type == kv_pb2.Event.DELETE:
            return WatchEvent(EventType.DELETE, key, b"", kv.mod_revision)
        return WatchEvent(EventType.PUT, key, bytes(kv.value), kv.mod_revision)

    def _relist(self) -> None:
        """History before ``next_rev`` is gone: push RESET + the current keys, all at the
        range revision, and go on from the revision after it."""
        kvs, rev = self.store._range_raw(self.raw_prefix, self.prefix)
        if self._stopped.is_set():
            return
        events = [WatchEvent(EventType.RESET, self.prefix, b"", rev)]
        events += [WatchEvent(EventType.PUT, kv.key, kv.value, rev) for kv in kvs]
        self.queue.push(events)
        self.next_rev = rev + 1
        self._backoff = _BACKOFF_MIN
