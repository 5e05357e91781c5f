"""Contract suite for the ``MetaStore`` Protocol and the election helper built on it.

Subclass :class:`MetaStoreContract` in a test module and provide a ``meta`` fixture that
yields a fresh, empty store (for shared servers: a fresh key namespace). Assertions use
only relative revisions, so the suite also holds on a server shared with other tests.
"""

from __future__ import annotations

import threading
import time

import pytest

from gpuvec.errors import (
    CompactedError,
    InvalidArgumentError,
    InvalidKeyError,
    LeaseExpiredError,
    NotLeaderError,
)
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    EventType,
    Get,
    MetaStore,
    Put,
)
from gpuvec.storage.meta.election import Election


def _wait_for(pred, timeout: float = 8.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _collect(watch, n: int, timeout: float = 8.0) -> list:  # type: ignore[no-untyped-def]
    out: list = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        out.extend(watch.get(timeout=0.2))
    return out


class MetaStoreContract:
    # --- key/value --------------------------------------------------------------------------
    def test_is_a_metastore(self, meta: MetaStore) -> None:
        assert isinstance(meta, MetaStore)

    def test_put_get_revisions(self, meta: MetaStore) -> None:
        assert meta.get("k") is None
        r1 = meta.put("k", b"v1")
        kv = meta.get("k")
        assert kv is not None and kv.value == b"v1"
        assert kv.create_revision == kv.mod_revision == r1 and kv.version == 1
        r2 = meta.put("k", b"v2")
        assert r2 > r1
        kv2 = meta.get("k")
        assert kv2 is not None
        assert (kv2.value, kv2.version, kv2.create_revision, kv2.mod_revision) == (
            b"v2",
            2,
            r1,
            r2,
        )
        assert meta.revision() >= r2

    def test_unicode_keys_and_binary_values(self, meta: MetaStore) -> None:
        meta.put("collections/Ünïcode/名前", b"\x00\xff\x01")
        kv = meta.get("collections/Ünïcode/名前")
        assert kv is not None and kv.value == b"\x00\xff\x01"

    def test_delete(self, meta: MetaStore) -> None:
        meta.put("d", b"1")
        assert meta.delete("d") is True
        assert meta.get("d") is None
        assert meta.delete("d") is False

    def test_range_prefix_sorted(self, meta: MetaStore) -> None:
        for k in ["p/b", "p/a", "p/c/1", "q/a", "p"]:
            meta.put(k, k.encode())
        kvs, rev = meta.range("p/")
        assert [kv.key for kv in kvs] == ["p/a", "p/b", "p/c/1"]
        assert [kv.value for kv in kvs] == [b"p/a", b"p/b", b"p/c/1"]
        assert rev >= max(kv.mod_revision for kv in kvs)
        assert meta.range("nothing/")[0] == []

    def test_delete_prefix(self, meta: MetaStore) -> None:
        for k in ["x/1", "x/2", "x/3/4", "xy"]:
            meta.put(k, b"v")
        assert meta.delete_prefix("x/") == 3
        assert meta.range("x/")[0] == []
        assert meta.get("xy") is not None

    # --- transactions -----------------------------------------------------------------------
    def test_txn_create_if_absent(self, meta: MetaStore) -> None:
        create = ([Compare("lock", "version", "==", 0)], [Put("lock", b"a")], [Get("lock")])
        first = meta.txn(*create)
        assert first.succeeded and first.responses == []
        second = meta.txn([Compare("lock", "version", "==", 0)], [Put("lock", b"b")], [Get("lock")])
        assert not second.succeeded
        assert second.responses[0] is not None and second.responses[0].value == b"a"
        kv = meta.get("lock")
        assert kv is not None and kv.value == b"a"

    def test_txn_compare_and_swap(self, meta: MetaStore) -> None:
        meta.put("cas", b"1")
        kv = meta.get("cas")
        assert kv is not None
        ok = meta.txn([Compare("cas", "mod_revision", "==", kv.mod_revision)], [Put("cas", b"2")])
        assert ok.succeeded
        stale = meta.txn(
            [Compare("cas", "mod_revision", "==", kv.mod_revision)], [Put("cas", b"3")]
        )
        assert not stale.succeeded
        assert meta.get("cas").value == b"2"  # type: ignore[union-attr]
        assert meta.txn([Compare("cas", "value", "==", b"2")], [Delete("cas")]).succeeded
        assert meta.get("cas") is None
        # a value compare against a missing key is false, as in etcd
        assert not meta.txn([Compare("cas", "value", "!=", b"x")], [Put("cas", b"y")]).succeeded

    def test_txn_is_one_revision(self, meta: MetaStore) -> None:
        meta.put("t/old", b"x")
        res = meta.txn([], [Put("t/a", b"1"), Put("t/b", b"2"), DeletePrefix("t/old")])
        assert res.succeeded
        kvs, _ = meta.range("t/")
        assert [kv.key for kv in kvs] == ["t/a", "t/b"]
        assert {kv.mod_revision for kv in kvs} == {res.revision}

    # --- bad input --------------------------------------------------------------------------
    @pytest.mark.parametrize("key", ["", "a\nb", "tab\there", "x" * 2000])
    def test_bad_keys_are_refused(self, meta: MetaStore, key: str) -> None:
        with pytest.raises(InvalidKeyError, match="meta key"):
            meta.put(key, b"v")

    def test_bad_values_are_refused(self, meta: MetaStore) -> None:
        with pytest.raises(InvalidArgumentError, match="'k'"):
            meta.put("k", "not bytes")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="limit"):
            meta.put("k", b"x" * (2 << 20))
        assert meta.get("k") is None

    def test_bad_txn_applies_nothing(self, meta: MetaStore) -> None:
        with pytest.raises(InvalidArgumentError, match=r"success\[1\]|meta key"):
            meta.txn([], [Put("ok", b"1"), Put("", b"2")])
        with pytest.raises(InvalidArgumentError, match=r"compare\[0\]"):
            meta.txn([Compare("ok", "version", "==", b"bytes")], [Put("ok", b"1")])
        assert meta.get("ok") is None

    # --- leases -----------------------------------------------------------------------------
    def test_lease_revoke_deletes_keys(self, meta: MetaStore) -> None:
        lease = meta.grant_lease(30)
        meta.put("s/1", b"a", lease=lease.id)
        kv = meta.get("s/1")
        assert kv is not None and kv.lease == lease.id
        assert 0 < meta.lease_ttl(lease.id) <= 30
        meta.revoke_lease(lease.id)
        assert meta.get("s/1") is None
        assert meta.lease_ttl(lease.id) == -1
        with pytest.raises(LeaseExpiredError):
            meta.keepalive(lease.id)
        with pytest.raises(LeaseExpiredError):
            meta.put("s/2", b"b", lease=lease.id)

    def test_lease_expiry_and_keepalive(self, meta: MetaStore) -> None:
        short = meta.grant_lease(2)
        kept = meta.grant_lease(2)
        meta.put("e/short", b"1", lease=short.id)
        meta.put("e/kept", b"1", lease=kept.id)
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            meta.keepalive(kept.id)
            time.sleep(0.5)
        assert _wait_for(lambda: meta.get("e/short") is None)
        assert meta.get("e/kept") is not None
        meta.revoke_lease(kept.id)

    # --- watch ------------------------------------------------------------------------------
    def test_watch_sees_changes_in_order(self, meta: MetaStore) -> None:
        w = meta.watch("w/")
        try:
            r1 = meta.put("w/a", b"1")
            meta.put("other", b"x")
            r2 = meta.put("w/b", b"2")
            r3 = meta.txn([], [Delete("w/a")]).revision
            evs = _collect(w, 3)
            assert [(e.type, e.key, e.value, e.revision) for e in evs] == [
                (EventType.PUT, "w/a", b"1", r1),
                (EventType.PUT, "w/b", b"2", r2),
                (EventType.DELETE, "w/a", b"", r3),
            ]
            assert w.last_revision == r3
        finally:
            w.cancel()

    def test_watch_from_past_revision_replays(self, meta: MetaStore) -> None:
        r1 = meta.put("h/1", b"a")
        meta.put("h/2", b"b")
        meta.delete("h/1")
        w = meta.watch("h/", start_revision=r1)
        try:
            evs = _collect(w, 3)
            assert [(e.type, e.key) for e in evs] == [
                (EventType.PUT, "h/1"),
                (EventType.PUT, "h/2"),
                (EventType.DELETE, "h/1"),
            ]
            assert [e.revision for e in evs] == sorted(e.revision for e in evs)
        finally:
            w.cancel()

    def test_watch_sees_lease_expiry(self, meta: MetaStore) -> None:
        lease = meta.grant_lease(2)
        meta.put("le/node", b"up", lease=lease.id)
        w = meta.watch("le/")
        try:
            evs = _collect(w, 1, timeout=10)
            assert [(e.type, e.key) for e in evs] == [(EventType.DELETE, "le/node")]
        finally:
            w.cancel()

    def test_watch_cancel_ends_iteration(self, meta: MetaStore) -> None:
        w = meta.watch("c/")
        got: list = []
        t = threading.Thread(target=lambda: got.extend(iter(w)), daemon=True)
        t.start()
        meta.put("c/1", b"1")
        assert _wait_for(lambda: len(got) == 1)
        w.cancel()
        t.join(timeout=5)
        assert not t.is_alive()

    def test_watch_after_compaction_relists(self, meta: MetaStore) -> None:
        r1 = meta.put("cp/a", b"1")
        meta.put("cp/b", b"2")
        meta.delete("cp/a")
        meta.put("cp/c", b"3")
        meta.compact(meta.revision())
        w = meta.watch("cp/", start_revision=r1)
        try:
            evs = _collect(w, 3)
            assert evs[0].type == EventType.RESET
            assert [(e.type, e.key, e.value) for e in evs[1:3]] == [
                (EventType.PUT, "cp/b", b"2"),
                (EventType.PUT, "cp/c", b"3"),
            ]
            r = meta.put("cp/d", b"4")
            more = _collect(w, 1)
            assert [(e.key, e.revision) for e in more] == [("cp/d", r)]
        finally:
            w.cancel()

    def test_compact_in_the_future_is_refused(self, meta: MetaStore) -> None:
        with pytest.raises(CompactedError):
            meta.compact(meta.revision() + 1000)

    # --- election ---------------------------------------------------------------------------
    def test_election_single_leader_and_fencing(self, meta: MetaStore) -> None:
        a = Election(meta, "coord", ttl=2)
        b = Election(meta, "coord", ttl=2)
        ta = a.campaign(b"node-a", timeout=5)
        assert a.is_leader and a.leader() == a.leader() and a.leader().value == b"node-a"  # type: ignore[union-attr]
        won: list[int] = []
        t = threading.Thread(target=lambda: won.append(b.campaign(b"node-b", timeout=15)))
        t.start()
        time.sleep(0.5)
        assert not won, "a second candidate must wait while the first leads"
        assert a.guarded_txn([], [Put("coord/state", b"from-a")]).succeeded
        a.resign()
        t.join(timeout=15)
        assert won and won[0] > ta, "the next leader's fencing token is larger"
        assert b.is_leader and b.leader().value == b"node-b"  # type: ignore[union-attr]
        with pytest.raises(NotLeaderError):
            a.guarded_txn([], [Put("coord/state", b"stale")])
        assert meta.get("coord/state").value == b"from-a"  # type: ignore[union-attr]
        b.resign()
        assert b.leader() is None

    def test_election_deposed_leader_is_fenced(self, meta: MetaStore) -> None:
        a = Election(meta, "fence", ttl=2)
        a.campaign(b"a", timeout=5)
        # simulate a partition: a's lease goes away behind its back
        meta.revoke_lease(a._keeper.id)  # type: ignore[union-attr]
        b = Election(meta, "fence", ttl=2)
        b.campaign(b"b", timeout=10)
        with pytest.raises(NotLeaderError):
            a.guarded_txn([], [Put("fence/state", b"stale")])
        assert meta.get("fence/state") is None
        assert b.guarded_txn([], [Put("fence/state", b"fresh")]).succeeded
        b.resign()

    def test_election_reclaims_a_lapsed_lease_when_nobody_else_led(self, meta: MetaStore) -> None:
        lapsed = threading.Event()
        a = Election(meta, "reclaim", ttl=1, on_lost=lapsed.set, wait_s=10)
        first = a.campaign(b"a", timeout=5)
        meta.revoke_lease(a._keeper.id)  # type: ignore[union-attr]  # a stall past the TTL
        done: list = []
        writer = threading.Thread(
            target=lambda: done.append(a.guarded_txn([], [Put("reclaim/state", b"after")]))
        )
        writer.start()  # waits for the reclaim instead of failing
        assert lapsed.wait(5), "the lease thread must notice the lapse and say so"
        second = a.reclaim(timeout=10)
        writer.join(timeout=10)
        assert second > first and a.is_leader
        assert done and done[0].succeeded
        assert meta.get("reclaim/state").value == b"after"  # type: ignore[union-attr]
        a.resign()

    def test_election_refuses_to_reclaim_after_another_led(self, meta: MetaStore) -> None:
        a = Election(meta, "refuse", ttl=1, wait_s=10)
        a.campaign(b"node-a", timeout=5)
        meta.revoke_lease(a._keeper.id)  # type: ignore[union-attr]
        b = Election(meta, "refuse", ttl=1)
        b.campaign(b"node-b", timeout=10)
        b.resign()  # vacant again, but b led in between: a's memory may be stale
        with pytest.raises(NotLeaderError, match="node-b"):
            a.reclaim(timeout=5)
        started = time.monotonic()
        with pytest.raises(NotLeaderError, match="node-b"):
            a.guarded_txn([], [Put("refuse/state", b"stale")])
        assert time.monotonic() - started < 2, "a deposed candidate fails at once"
        assert meta.get("refuse/state") is None and not a.is_leader

    def test_election_observe(self, meta: MetaStore) -> None:
        e = Election(meta, "obs", ttl=2)
        seen: list = []

        def watch() -> None:
            for leader in Election(meta, "obs").observe(timeout=10):
                seen.append(leader)
                if len(seen) == 3:
                    return

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        assert _wait_for(lambda: len(seen) == 1)
        token = e.campaign(b"x", timeout=5)
        e.resign()
        t.join(timeout=12)
        assert seen[0] is None
        assert seen[1] is not None and (seen[1].value, seen[1].token) == (b"x", token)
        assert seen[2] is None
