"""Fault tests for :class:`~gpuvec.storage.meta.etcd.EtcdMetaStore` against real etcd.

* a watch survives a hard kill (or a clean stop) and restart of its etcd (its own, started
  with ``deploy/local/etcd.sh`` on port 23890) without losing or repeating an event;
* an unreachable or hung server is an ``UnavailableError`` naming the endpoint, quickly;
* a watch from a compacted revision yields ``RESET`` and a re-list, then live events;
* leases expire without keepalive and live on with it.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpuvec.errors import LeaseExpiredError, UnavailableError
from gpuvec.storage.meta.base import Compare, Delete, EventType, Get, Put, Watch, WatchEvent
from gpuvec.storage.meta.etcd import EtcdMetaStore
from gpuvec.testing.services import private_service

pytestmark = pytest.mark.etcd

OWN_PORT = 23890


def _collect(w: Watch, n: int, timeout: float = 15.0) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        out.extend(w.get(timeout=0.2))
    return out


def _settle(w: Watch, quiet: float = 1.0) -> list[WatchEvent]:
    """Whatever else the watch delivers within ``quiet`` seconds (should be nothing)."""
    out: list[WatchEvent] = []
    end = time.monotonic() + quiet
    while time.monotonic() < end:
        out.extend(w.get(timeout=0.1))
    return out


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """A private etcd on 127.0.0.1:23890 with its data in ``tmp_path``; yields ``ctl(*args)``
    which runs ``etcd.sh *args`` against it. Stopped (hard) at teardown."""
    if shutil.which("etcd") is None and os.environ.get("GPUVEC_REQUIRE_SERVICES") != "1":
        pytest.skip("no etcd binary; install it with deploy/local/etcd.sh install")
    with private_service("etcd.sh", "GPUVEC_ETCD_PORT", OWN_PORT, tmp_path / "run", 90) as ctl:
        yield ctl


# --- (a) watch across a hard restart -----------------------------------------------------
@pytest.mark.parametrize("stop", [("stop", "--hard"), ("stop",)], ids=["kill", "term"])
def test_watch_survives_etcd_kill_and_restart(
    own_etcd: Callable[..., None], stop: tuple[str, ...]
) -> None:
    store = EtcdMetaStore(f"127.0.0.1:{OWN_PORT}", root="/faults/", timeout=3)
    expected: list[tuple[EventType, str, bytes, int]] = []

    def put(key: str, value: bytes) -> None:
        expected.append((EventType.PUT, key, value, store.put(key, value)))

    try:
        w = store.watch("w/")
        for i in range(5):
            put(f"w/{i}", b"before-%d" % i)
        store.put("elsewhere", b"not watched")
        first = _collect(w, 5)
        assert len(first) == 5
        for i in range(3):  # written just before the kill: maybe not delivered yet
            put(f"w/late{i}", b"late")

        own_etcd(*stop)
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match=f"127.0.0.1:{OWN_PORT}"):
            store.put("w/never", b"x")
        assert time.monotonic() - t0 < 6
        # a second watch opened while etcd is down, from a past revision
        w2 = store.watch("w/", start_revision=expected[0][3])
        time.sleep(1.5)  # let both watch loops fail and back off a few times

        own_etcd("start")  # keeps the data
        for i in range(5):  # likely written before the watches reconnect
            put(f"w/after{i}", b"after-%d" % i)
        rev = store.txn([Compare("w/0", "version", "==", 1)], [Delete("w/0")]).revision
        expected.append((EventType.DELETE, "w/0", b"", rev))

        for watch, got in ((w, first), (w2, [])):
            got = got + _collect(watch, len(expected) - len(got))
            got += _settle(watch)
            assert [(e.type, e.key, e.value, e.revision) for e in got] == expected
            assert watch.last_revision == rev
            watch.cancel()
    finally:
        store.close()


# --- (b) unreachable and hung servers ----------------------------------------------------
def _all_ops(store: EtcdMetaStore) -> dict[str, Callable[[], object]]:
    return {
        "get": lambda: store.get("k"),
        "put": lambda: store.put("k", b"v"),
        "delete": lambda: store.delete("k"),
        "delete_prefix": lambda: store.delete_prefix("k/"),
        "range": lambda: store.range("k/"),
        "txn": lambda: store.txn([Compare("k", "version", "==", 0)], [Put("k", b"v")], [Get("k")]),
        "revision": store.revision,
        "grant_lease": lambda: store.grant_lease(5),
        "keepalive": lambda: store.keepalive(1234),
        "revoke_lease": lambda: store.revoke_lease(1234),
        "lease_ttl": lambda: store.lease_ttl(1234),
        "watch": lambda: store.watch("k/"),
        "compact": lambda: store.compact(5),
    }


OPS = "get put delete delete_prefix range txn revision grant_lease keepalive revoke_lease"
OPS += " lease_ttl watch compact"


@pytest.mark.parametrize("op", OPS.split())
def test_unreachable_server_is_unavailable(op: str) -> None:
    store = EtcdMetaStore("127.0.0.1:1", timeout=1)
    try:
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match=r"127\.0\.0\.1:1\b"):
            _all_ops(store)[op]()
        assert time.monotonic() - t0 < 3
    finally:
        store.close()


def test_hung_server_times_out() -> None:
    """A server that accepts TCP but never answers: the deadline applies."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        endpoint = f"127.0.0.1:{srv.getsockname()[1]}"
        store = EtcdMetaStore(endpoint, timeout=1)
        try:
            for name in ("get", "put", "keepalive"):
                t0 = time.monotonic()
                with pytest.raises(UnavailableError, match=endpoint):
                    _all_ops(store)[name]()
                assert time.monotonic() - t0 < 3
        finally:
            store.close()


def test_watch_on_unreachable_server_cancels_promptly() -> None:
    store = EtcdMetaStore("127.0.0.1:1", timeout=1)
    try:
        w = store.watch("k/", start_revision=1)  # no server call needed to open it
        assert w.get(timeout=0.5) == []
        t0 = time.monotonic()
        w.cancel()
        assert time.monotonic() - t0 < 1
    finally:
        store.close()


# --- (c) compaction ----------------------------------------------------------------------
def test_watch_from_compacted_revision_relists(etcd_endpoint: str, unique: str) -> None:
    store = EtcdMetaStore(etcd_endpoint, root=f"/{unique}/")
    try:
        r1 = store.put("cp/a", b"1")
        store.put("cp/b", b"2")
        store.put("cp/a", b"1bis")
        store.delete("cp/b")
        store.put("cp/c", b"3")
        store.put("zz", b"outside the prefix")
        store.compact(store.revision())
        store.compact(r1)  # compacting at an already compacted revision is a no-op
        w = store.watch("cp/", start_revision=r1)
        try:
            evs = _collect(w, 3)
            reset = evs[0]
            assert (reset.type, reset.key) == (EventType.RESET, "cp/")
            assert [(e.type, e.key, e.value) for e in evs[1:]] == [
                (EventType.PUT, "cp/a", b"1bis"),
                (EventType.PUT, "cp/c", b"3"),
            ]
            assert {e.revision for e in evs} == {reset.revision}
            assert reset.revision >= store.get("zz").mod_revision  # type: ignore[union-attr]
            r_put = store.put("cp/d", b"4")
            r_del = store.txn([], [Delete("cp/a")]).revision
            more = _collect(w, 2) + _settle(w, 0.5)
            assert [(e.type, e.key, e.revision) for e in more] == [
                (EventType.PUT, "cp/d", r_put),
                (EventType.DELETE, "cp/a", r_del),
            ]
            assert w.last_revision == r_del
        finally:
            w.cancel()
    finally:
        store.close()


# --- (d) leases --------------------------------------------------------------------------
def test_lease_expires_without_keepalive(etcd_endpoint: str, unique: str) -> None:
    store = EtcdMetaStore(etcd_endpoint, root=f"/{unique}/")
    try:
        lease = store.grant_lease(2)
        store.put("l/gone", b"x", lease=lease.id)
        assert store.get("l/gone").lease == lease.id  # type: ignore[union-attr]
        end = time.monotonic() + 10
        while store.get("l/gone") is not None and time.monotonic() < end:
            time.sleep(0.2)
        assert store.get("l/gone") is None
        assert store.lease_ttl(lease.id) == -1
        with pytest.raises(LeaseExpiredError, match=str(lease.id)):
            store.keepalive(lease.id)
    finally:
        store.close()


def test_lease_lives_with_background_keepalive(etcd_endpoint: str, unique: str) -> None:
    store = EtcdMetaStore(etcd_endpoint, root=f"/{unique}/")
    stop = threading.Event()
    errors: list[BaseException] = []
    try:
        lease = store.grant_lease(2)
        store.put("l/kept", b"x", lease=lease.id)
        # lease ids compare like the other int targets
        ok = store.txn([Compare("l/kept", "lease", "==", lease.id)], [Put("l/seen", b"1")])
        assert ok.succeeded

        def keep() -> None:
            while not stop.wait(0.5):
                try:
                    assert store.keepalive(lease.id) >= 1
                except BaseException as exc:
                    errors.append(exc)
                    return

        t = threading.Thread(target=keep, daemon=True)
        t.start()
        time.sleep(5)  # 2.5 TTLs
        assert store.get("l/kept") is not None
        assert not errors
        stop.set()
        t.join(timeout=5)
        store.revoke_lease(lease.id)
        assert store.get("l/kept") is None
        store.revoke_lease(lease.id)  # revoking again is a no-op
    finally:
        stop.set()
        store.close()
