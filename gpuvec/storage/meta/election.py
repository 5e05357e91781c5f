"""Leader election on any ``MetaStore``: campaign / observe / resign, with a fencing token.

The leader key ``<root>election/<name>`` is created under the candidate's lease by a
transaction that succeeds only while the key is absent. The leader's *fencing token* is the
key's ``create_revision``: store revisions only grow, so every later leader holds a larger
token. Work committed by a leader goes through :meth:`Election.guarded_txn`, which adds the
compare ``create_revision(leader key) == token`` — a deposed leader's writes fail with
:class:`~gpuvec.errors.NotLeaderError` instead of overwriting its successor's.

A lease can lapse without anyone else wanting it: the process stalled past the TTL (a long
GIL-holding call, a paused VM). Every winning campaign also records the winner's candidate
id under ``<root>election-terms/<name>``, so :meth:`Election.reclaim` can lead again — with a
new, larger token — exactly when no other candidate has led since; when one has, the
leader's in-memory state may be stale and reclaiming is refused. ``on_lost`` is called
(from the lease thread) when the lease lapses; ``wait_s`` lets guarded transactions wait that
long for a reclaim in progress instead of failing at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gpuvec.errors import DeadlineExceededError, NotLeaderError
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    EventType,
    Get,
    MetaStore,
    Op,
    Put,
    TxnResult,
    check_key,
)
from gpuvec.storage.meta.keys import ELECTION, ELECTION_TERMS
from gpuvec.storage.meta.lease import LeaseKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Leader:
    value: bytes
    token: int


class Election:
    def __init__(
        self,
        meta: MetaStore,
        name: str,
        *,
        ttl: int = 5,
        root: str = "",
        on_lost: Callable[[], None] | None = None,
        wait_s: float = 0.0,
    ) -> None:
        self.meta = meta
        self.key = f"{root}{ELECTION}{name}"
        self.term_key = f"{root}{ELECTION_TERMS}{name}"
        check_key(self.key)
        self.ttl = ttl
        self.token = 0
        self.on_lost = on_lost
        self.wait_s = wait_s
        self.lost_reason = ""  # why this candidate does not lead (after it had led)
        self._id = os.urandom(12).hex().encode()  # this candidate, across reclaims
        self._value = b""
        self._deposed = False  # another candidate led after this one's lease lapsed
        self._keeper: LeaseKeeper | None = None
        self._leading = threading.Event()

    def leader(self) -> Leader | None:
        kv = self.meta.get(self.key)
        return Leader(kv.value, kv.create_revision) if kv else None

    def campaign(self, value: bytes, timeout: float | None = None) -> int:
        """Block until this candidate leads (or ``timeout`` s pass); return the token."""
        deadline = None if timeout is None else time.monotonic() + timeout
        keeper = LeaseKeeper(self.meta, self.ttl, on_lost=self._lapsed)
        try:
            while True:
                res = self.meta.txn(
                    [Compare(self.key, "version", "==", 0)],
                    [Put(self.key, value, keeper.id), Put(self.term_key, self._term(value))],
                    [Get(self.key)],
                )
                if res.succeeded:
                    self._won(keeper, value, res.revision)
                    return self.token
                current = res.responses[0]
                start = current.mod_revision + 1 if current else res.revision + 1
                self._wait_vacant(start, deadline)
        except BaseException:
            keeper.close()
            raise

    def _wait_vacant(self, start: int, deadline: float | None) -> None:
        watch = self.meta.watch(self.key, start_revision=start)
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DeadlineExceededError(f"campaign for {self.key!r} timed out")
                for ev in watch.get(timeout=min(left or 1.0, 1.0)):
                    if ev.key == self.key and ev.type in (EventType.DELETE, EventType.RESET):
                        return
                if self.meta.get(self.key) is None:
                    return
        finally:
            watch.cancel()

    def _term(self, value: bytes) -> bytes:
        """What a winner records under ``term_key``: its candidate id and its value."""
        return self._id + b" " + value

    def _won(self, keeper: LeaseKeeper, value: bytes, token: int) -> None:
        self._keeper, self._value, self.token = keeper, value, token
        self.lost_reason = ""
        self._deposed = False
        self._leading.set()

    def _lapsed(self) -> None:
        """The lease thread found the lease gone (called once per lease)."""
        self._leading.clear()
        self.lost_reason = (
            f"the lease of {self.key!r} lapsed (no keepalive within its {self.ttl} s TTL: "
            "the process stalled or meta storage was unreachable)"
        )
        log.warning("%s; leadership with token %d is lost", self.lost_reason, self.token)
        if self.on_lost is not None:
            self.on_lost()

    def reclaim(self, timeout: float = 10.0) -> int:
        """Lead again after the lease lapsed — only if no other candidate has led since
        (then nothing this candidate remembers can be stale). Returns the new token; raises
        ``NotLeaderError`` naming the other leader otherwise, ``DeadlineExceededError`` when
        the old key outlives ``timeout``."""
        deadline = time.monotonic() + timeout
        keeper = LeaseKeeper(self.meta, self.ttl, on_lost=self._lapsed)
        try:
            while True:
                res = self.meta.txn(
                    [
                        Compare(self.key, "version", "==", 0),
                        Compare(self.term_key, "value", "==", self._term(self._value)),
                    ],
                    [
                        Put(self.key, self._value, keeper.id),
                        Put(self.term_key, self._term(self._value)),
                    ],
                    [Get(self.key), Get(self.term_key)],
                )
                if res.succeeded:
                    old, self._keeper = self._keeper, None
                    if old is not None:
                        old.close(revoke=False)
                    self._won(keeper, self._value, res.revision)
                    log.warning("re-elected to %r with token %d", self.key, self.token)
                    return self.token
                _, term = res.responses
                if term is None or term.value != self._term(self._value):
                    who = term.value.partition(b" ")[2] if term is not None else b"?"
                    self.lost_reason = (
                        f"leadership of {self.key!r} passed to "
                        f"{who.decode(errors='replace')!r} while this process's lease had "
                        "lapsed; restart this process to serve again"
                    )
                    self._deposed = True
                    log.error("%s", self.lost_reason)
                    raise NotLeaderError(self.lost_reason)
                if time.monotonic() >= deadline:  # our own old key has not expired yet
                    raise DeadlineExceededError(f"reclaiming {self.key!r} timed out")
                time.sleep(0.2)
        except BaseException:
            keeper.close()
            raise

    @property
    def is_leader(self) -> bool:
        """True while the lease lives and the key still carries this candidate's token."""
        if self._keeper is None or self._keeper.lost:
            return False
        kv = self.meta.get(self.key)
        return kv is not None and kv.create_revision == self.token

    def guarded_txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """A transaction that only commits while this candidate still leads.

        Raises ``NotLeaderError`` when leadership is gone; otherwise returns the result of
        the caller's own compares (``succeeded`` False if they failed). With ``wait_s``, a
        transaction that finds the lease lapsed waits that long for :meth:`reclaim` and runs
        once more under the new token (the failed attempt changed nothing)."""
        deadline = time.monotonic() + (0.0 if self._deposed else self.wait_s)
        while True:
            if not self._leading.wait(max(0.0, deadline - time.monotonic())):
                raise NotLeaderError(self.lost_reason or f"not the leader of {self.key!r}")
            token = self.token
            fence = Compare(self.key, "create_revision", "==", token)
            res = self.meta.txn([fence, *compare], success, [Get(self.key), *failure])
            if res.succeeded:
                return res
            holder = res.responses[0]
            if holder is not None and holder.create_revision == token:
                return TxnResult(False, res.revision, res.responses[1:])
            # the key is gone or another's: wait for the lease thread to notice and reclaim
            while self.token == token and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.token == token:
                raise NotLeaderError(
                    self.lost_reason or f"leadership of {self.key!r} with token {token} was lost"
                )

    def observe(self, timeout: float | None = None) -> Iterator[Leader | None]:
        """Yield the current leader, then every change (None when vacant)."""
        kvs, rev = self.meta.range(self.key)
        current = next((kv for kv in kvs if kv.key == self.key), None)
        yield Leader(current.value, current.create_revision) if current else None
        watch = self.meta.watch(self.key, start_revision=rev + 1)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while deadline is None or time.monotonic() < deadline:
                for ev in watch.get(timeout=0.5):
                    if ev.key != self.key:
                        continue
                    if ev.type == EventType.PUT:
                        kv = self.meta.get(self.key)
                        yield Leader(ev.value, kv.create_revision if kv else ev.revision)
                    elif ev.type == EventType.DELETE:
                        yield None
        finally:
            watch.cancel()

    def resign(self) -> None:
        """Give up leadership (no-op when not leading)."""
        keeper, self._keeper = self._keeper, None
        self._leading.clear()
        if keeper is None:
            return
        if not keeper.lost:
            self.meta.txn(
                [Compare(self.key, "create_revision", "==", self.token)], [Delete(self.key)]
            )
        keeper.close()
        self.token = 0
