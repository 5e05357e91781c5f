"""Leader election on any ``MetaStore``: campaign / observe / resign, with a fencing token.

The leader key ``<root>election/<name>`` is created under the candidate's lease by a
transaction that succeeds only while the key is absent. The leader's *fencing token* is the
key's ``create_revision``: store revisions only grow, so every later leader holds a larger
token. Work committed by a leader goes through :meth:`Election.guarded_txn`, which adds the
compare ``create_revision(leader key) == token`` — a deposed leader's writes fail with
:class:`~gpuvec.errors.NotLeaderError` instead of overwriting its successor's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
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
from gpuvec.storage.meta.lease import LeaseKeeper


@dataclass(frozen=True, slots=True)
class Leader:
    value: bytes
    token: int


class Election:
    def __init__(self, meta: MetaStore, name: str, *, ttl: int = 5, root: str = "") -> None:
        self.meta = meta
        self.key = f"{root}election/{name}"
        check_key(self.key)
        self.ttl = ttl
        self.token = 0
        self._keeper: LeaseKeeper | None = None

    def leader(self) -> Leader | None:
        kv = self.meta.get(self.key)
        return Leader(kv.value, kv.create_revision) if kv else None

    def campaign(self, value: bytes, timeout: float | None = None) -> int:
        """Block until this candidate leads (or ``timeout`` s pass); return the token."""
        deadline = None if timeout is None else time.monotonic() + timeout
        keeper = LeaseKeeper(self.meta, self.ttl)
        try:
            while True:
                res = self.meta.txn(
                    [Compare(self.key, "version", "==", 0)],
                    [Put(self.key, value, keeper.id)],
                    [Get(self.key)],
                )
                if res.succeeded:
                    self._keeper, self.token = keeper, res.revision
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
        the caller's own compares (``succeeded`` False if they failed)."""
        if self._keeper is None or self._keeper.lost:
            raise NotLeaderError(f"not the leader of {self.key!r}")
        fence = Compare(self.key, "create_revision", "==", self.token)
        res = self.meta.txn([fence, *compare], success, [Get(self.key), *failure])
        if res.succeeded:
            return res
        holder = res.responses[0]
        if holder is None or holder.create_revision != self.token:
            raise NotLeaderError(f"leadership of {self.key!r} with token {self.token} was lost")
        return TxnResult(False, res.revision, res.responses[1:])

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
        if keeper is None:
            return
        if not keeper.lost:
            self.meta.txn(
                [Compare(self.key, "create_revision", "==", self.token)], [Delete(self.key)]
            )
        keeper.close()
        self.token = 0
