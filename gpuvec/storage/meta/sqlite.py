"""SQLite implementation of the ``MetaStore`` Protocol: the embedded default.

One SQLite file in WAL journal mode holds:

* ``kv``      — current keys with etcd-style create/mod revision, version and lease;
* ``history`` — one row per change (the watch log), pruned by :meth:`compact`;
* ``leases``  — lease id, ttl and wall-clock expiry;
* ``state``   — the store revision and the compaction revision.

Every mutation runs in one ``BEGIN IMMEDIATE`` transaction, which serialises writers across
threads and processes, bumps the revision once, and records its events. Expired leases are
reaped (their keys deleted, with DELETE events) at the start of every transaction and by a
background reaper while leases exist. Watches poll ``history`` (woken at once by local
commits, every ``poll_interval`` otherwise, which covers writes from other processes).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from gpuvec.errors import CompactedError, InvalidArgumentError, LeaseExpiredError, StorageError
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
    WatchEvent,
    check_key,
    check_prefix,
    check_value,
    prefix_end,
)
from gpuvec.storage.meta.txn import compare_holds, validate_ops
from gpuvec.storage.meta.watchqueue import QueueWatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,
    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS history (rev INTEGER NOT NULL, seq INTEGER NOT NULL,
    type INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (rev, seq));
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL,
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('revision', 1), ('compact', 0);
"""
_PUT, _DEL = 0, 1
_KV_COLS = "key, value, create_rev, mod_rev, version, lease"


def _kv(row: tuple) -> KeyValue:
    return KeyValue(bytes(row[0]).decode(), bytes(row[1]), row[2], row[3], row[4], row[5])


class _Tx:
    """The body of one write transaction: collects events, bumps the revision once."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.rev = con.execute("SELECT value FROM state WHERE name='revision'").fetchone()[0]
        self.events: list[tuple[int, bytes, bytes]] = []

    @property
    def next_rev(self) -> int:
        return self.rev + 1

    def get(self, key: bytes) -> KeyValue | None:
        row = self.con.execute(f"SELECT {_KV_COLS} FROM kv WHERE key=?", (key,)).fetchone()
        return _kv(row) if row else None

    def put(self, key: bytes, value: bytes, lease: int) -> None:
        if lease and not self.con.execute("SELECT 1 FROM leases WHERE id=?", (lease,)).fetchone():
            raise LeaseExpiredError(f"lease {lease} does not exist (expired or revoked)")
        self.con.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value, mod_rev=excluded.mod_rev, version=version+1, "
            "lease=excluded.lease",
            (key, value, self.next_rev, self.next_rev, lease),
        )
        self.events.append((_PUT, key, value))

    def delete_keys(self, keys: list[bytes]) -> int:
        for key in keys:
            self.con.execute("DELETE FROM kv WHERE key=?", (key,))
            self.events.append((_DEL, key, b""))
        return len(keys)

    def keys_in(self, lo: bytes, hi: bytes) -> list[bytes]:
        if not lo:
            return [bytes(r[0]) for r in self.con.execute("SELECT key FROM kv ORDER BY key")]
        rows = self.con.execute("SELECT key FROM kv WHERE key>=? AND key<? ORDER BY key", (lo, hi))
        return [bytes(r[0]) for r in rows]

    def finish(self) -> int:
        if not self.events:
            return self.rev
        rev = self.next_rev
        self.con.executemany(
            "INSERT INTO history VALUES (?, ?, ?, ?, ?)",
            [(rev, i, t, k, v) for i, (t, k, v) in enumerate(self.events)],
        )
        self.con.execute("UPDATE state SET value=? WHERE name='revision'", (rev,))
        return rev


class SqliteMetaStore:
    """Embedded meta storage in one SQLite file (see module docstring)."""

    def __init__(
        self, path: str | os.PathLike[str], *, durable: bool = True, poll_interval: float = 0.1
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        try:
            self._con = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StorageError(f"cannot open meta store {str(self.path)!r}: {e}") from e
        self._lock = threading.RLock()
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._watches: list[QueueWatch] = []
        self._reaper: threading.Thread | None = None

    # --- transactions ----------------------------------------------------------------------
    def _write(self, body):  # type: ignore[no-untyped-def]
        """Run ``body(tx)`` in one immediate transaction; return (body result, revision)."""
        if self._closed.is_set():
            raise StorageError(f"meta store {str(self.path)!r} is closed")
        with self._lock:
            try:
                self._con.execute("BEGIN IMMEDIATE")
                try:
                    tx = _Tx(self._con)
                    self._reap(tx)
                    out = body(tx)
                    rev = tx.finish()
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as e:
                raise StorageError(f"meta store {str(self.path)!r}: {e}") from e
        if tx.events:
            with self._changed:
                self._changed.notify_all()
        return out, rev

    def _reap(self, tx: _Tx) -> None:
        now = time.time()
        expired = [r[0] for r in tx.con.execute("SELECT id FROM leases WHERE expires<?", (now,))]
        for lease in expired:
            keys = tx.con.execute("SELECT key FROM kv WHERE lease=? ORDER BY key", (lease,))
            tx.delete_keys([bytes(r[0]) for r in keys])
            tx.con.execute("DELETE FROM leases WHERE id=?", (lease,))

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        if self._has_expired():
            self._write(lambda tx: None)
        with self._lock:
            return self._con.execute(sql, args).fetchall()

    def _has_expired(self) -> bool:
        with self._lock:
            return bool(
                self._con.execute(
                    "SELECT 1 FROM leases WHERE expires<? LIMIT 1", (time.time(),)
                ).fetchone()
            )

    # --- key/value -------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        rows = self._read(f"SELECT {_KV_COLS} FROM kv WHERE key=?", (check_key(key),))
        return _kv(rows[0]) if rows else None

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        k, v = check_key(key), check_value(key, value)
        return self._write(lambda tx: tx.put(k, v, lease))[1]

    def delete(self, key: str) -> bool:
        k = check_key(key)
        n, _ = self._write(lambda tx: tx.delete_keys(tx.keys_in(k, k + b"\0")))
        return n > 0

    def delete_prefix(self, prefix: str) -> int:
        p = check_prefix(prefix)
        return self._write(lambda tx: tx.delete_keys(tx.keys_in(p, prefix_end(p))))[0]

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        p = check_prefix(prefix)
        if self._has_expired():
            self._write(lambda tx: None)
        with self._lock:
            self._con.execute("BEGIN")
            try:
                if p:
                    rows = self._con.execute(
                        f"SELECT {_KV_COLS} FROM kv WHERE key>=? AND key<? ORDER BY key",
                        (p, prefix_end(p)),
                    ).fetchall()
                else:
                    rows = self._con.execute(f"SELECT {_KV_COLS} FROM kv ORDER BY key").fetchall()
                rev = self._con.execute("SELECT value FROM state WHERE name='revision'").fetchone()
            finally:
                self._con.execute("COMMIT")
        return [_kv(r) for r in rows], rev[0]

    def revision(self) -> int:
        return self._read("SELECT value FROM state WHERE name='revision'")[0][0]

    def txn(
        self, compare: Sequence[Compare], success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        validate_ops(compare, success, failure)

        def body(tx: _Tx) -> tuple[bool, list[KeyValue | None]]:
            ok = all(compare_holds(c, tx.get(check_key(c.key))) for c in compare)
            responses: list[KeyValue | None] = []
            for op in success if ok else failure:
                if isinstance(op, Put):
                    tx.put(check_key(op.key), check_value(op.key, op.value), op.lease)
                elif isinstance(op, Delete):
                    k = check_key(op.key)
                    tx.delete_keys(tx.keys_in(k, k + b"\0"))
                elif isinstance(op, DeletePrefix):
                    p = check_prefix(op.prefix)
                    tx.delete_keys(tx.keys_in(p, prefix_end(p)))
                elif isinstance(op, Get):
                    responses.append(tx.get(check_key(op.key)))
            return ok, responses

        (ok, responses), rev = self._write(body)
        return TxnResult(ok, rev, responses)

    # --- leases ----------------------------------------------------------------------------
    def grant_lease(self, ttl: int) -> Lease:
        if not isinstance(ttl, int) or ttl < 1:
            raise InvalidArgumentError(f"lease ttl must be a positive int of seconds, got {ttl!r}")

        def body(tx: _Tx) -> int:
            lease_id = int.from_bytes(os.urandom(7), "big") or 1
            tx.con.execute(
                "INSERT INTO leases VALUES (?, ?, ?)", (lease_id, ttl, time.time() + ttl)
            )
            return lease_id

        lease_id, _ = self._write(body)
        self._start_reaper()
        return Lease(lease_id, ttl)

    def keepalive(self, lease_id: int) -> int:
        def body(tx: _Tx) -> int:
            row = tx.con.execute("SELECT ttl FROM leases WHERE id=?", (lease_id,)).fetchone()
            if row is None:
                raise LeaseExpiredError(f"lease {lease_id} does not exist (expired or revoked)")
            tx.con.execute(
                "UPDATE leases SET expires=? WHERE id=?", (time.time() + row[0], lease_id)
            )
            return row[0]

        return self._write(body)[0]

    def revoke_lease(self, lease_id: int) -> None:
        def body(tx: _Tx) -> None:
            keys = tx.con.execute("SELECT key FROM kv WHERE lease=? ORDER BY key", (lease_id,))
            tx.delete_keys([bytes(r[0]) for r in keys])
            tx.con.execute("DELETE FROM leases WHERE id=?", (lease_id,))

        self._write(body)

    def lease_ttl(self, lease_id: int) -> int:
        rows = self._read("SELECT expires FROM leases WHERE id=?", (lease_id,))
        if not rows:
            return -1
        return max(0, round(rows[0][0] - time.time()))

    def _start_reaper(self) -> None:
        if self._reaper is not None and self._reaper.is_alive():
            return

        def loop() -> None:
            while not self._closed.wait(0.25):
                with self._lock:
                    if self._closed.is_set():
                        return
                    left = self._con.execute("SELECT count(*) FROM leases").fetchone()[0]
                if not left:
                    return
                if self._has_expired():
                    self._write(lambda tx: None)

        self._reaper = threading.Thread(target=loop, name="gpuvec-meta-reaper", daemon=True)
        self._reaper.start()

    # --- watch and compaction --------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> QueueWatch:
        p = check_prefix(prefix)
        w = QueueWatch()
        start = self.revision() + 1 if start_revision is None else start_revision
        t = threading.Thread(
            target=self._watch_loop,
            args=(w, prefix, p, start),
            name="gpuvec-meta-watch",
            daemon=True,
        )
        self._watches.append(w)
        t.start()
        return w

    def _watch_loop(self, w: QueueWatch, prefix: str, p: bytes, nxt: int) -> None:
        hi = prefix_end(p) if p else None
        while not w.cancelled and not self._closed.is_set():
            try:
                with self._lock:
                    if self._closed.is_set():
                        return
                    compact = self._con.execute(
                        "SELECT value FROM state WHERE name='compact'"
                    ).fetchone()[0]
                    if nxt < compact:
                        kvs, rev = self.range(prefix)
                        w.push([WatchEvent(EventType.RESET, prefix, b"", rev)])
                        w.push([WatchEvent(EventType.PUT, kv.key, kv.value, rev) for kv in kvs])
                        nxt = rev + 1
                        continue
                    sql = "SELECT rev, type, key, value FROM history WHERE rev>=?"
                    args: tuple = (nxt,)
                    if hi is not None:
                        sql += " AND key>=? AND key<?"
                        args += (p, hi)
                    rows = self._con.execute(sql + " ORDER BY rev, seq", args).fetchall()
                if rows:
                    w.push(
                        [
                            WatchEvent(
                                EventType.PUT if t == _PUT else EventType.DELETE,
                                bytes(k).decode(),
                                bytes(v),
                                r,
                            )
                            for r, t, k, v in rows
                        ]
                    )
                    nxt = rows[-1][0] + 1
            except (sqlite3.Error, StorageError) as e:
                if self._closed.is_set():
                    return
                w.fail(StorageError(f"watch on {prefix!r} failed: {e}"))
                return
            if self._has_expired():
                self._write(lambda tx: None)
            with self._changed:
                self._changed.wait(self.poll_interval)

    def compact(self, revision: int) -> None:
        def body(tx: _Tx) -> None:
            if revision > tx.rev:
                raise CompactedError(
                    f"cannot compact at revision {revision}: the store is at {tx.rev}"
                )
            tx.con.execute("DELETE FROM history WHERE rev<?", (revision,))
            tx.con.execute("UPDATE state SET value=max(value, ?) WHERE name='compact'", (revision,))

        self._write(body)

    def close(self) -> None:
        if self._closed.is_set():
            return
        for w in self._watches:
            w.cancel()
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
        with self._lock:
            self._con.close()
