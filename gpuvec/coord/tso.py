"""Timestamp oracle: hybrid timestamps ``physical_ms << 18 | logical`` (DESIGN §3).

The TSO persists a *window* in meta storage: an upper bound on the physical part of every
timestamp it may hand out. It writes a new window (now + ``window_ms``) only when the
current one is about to run out, so steady allocation costs one meta write every few
seconds, and a restarted or newly elected TSO starts above the saved window: timestamps
stay strictly increasing across restarts and failovers. Window writes go through an
optional ``guard`` (the coordinator's leader-guarded transaction) so a deposed
coordinator cannot move the window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from gpuvec.errors import InvalidArgumentError
from gpuvec.storage.meta.base import Compare, MetaStore, Op, Put, TxnResult
from gpuvec.storage.meta.keys import TSO_WINDOW

LOGICAL_BITS = 18
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
KEY = TSO_WINDOW

Guard = Callable[[Sequence[Compare], Sequence[Op]], TxnResult]


def compose(physical_ms: int, logical: int = 0) -> int:
    return (physical_ms << LOGICAL_BITS) | logical


def physical_ms(ts: int) -> int:
    return ts >> LOGICAL_BITS


def now_ts() -> int:
    """A timestamp for the wall clock now (not allocated: for Bounded staleness maths)."""
    return compose(int(time.time() * 1000))


class TSO:
    def __init__(self, meta: MetaStore, *, window_ms: int = 3000, guard: Guard | None = None):
        self.meta = meta
        self.window_ms = window_ms
        self._guard = guard
        self._lock = threading.Lock()
        kv = meta.get(KEY)
        self._window = int(kv.value) if kv else 0
        self._window_rev = kv.mod_revision if kv else 0
        self._physical = self._window  # start above anything handed out before
        self._logical = 0

    def _extend(self, need_ms: int) -> None:
        new = need_ms + self.window_ms
        compare = [Compare(KEY, "mod_revision", "==", self._window_rev)]
        ops = [Put(KEY, str(new).encode())]
        res = self._guard(compare, ops) if self._guard else self.meta.txn(compare, ops)
        if not res.succeeded:  # someone else moved it: a stale TSO must not go on
            raise InvalidArgumentError(
                "TSO window was moved by another coordinator; this TSO is stale"
            )
        self._window, self._window_rev = new, res.revision

    def allocate(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive timestamps; return the first."""
        if count < 1 or count > LOGICAL_MASK:
            raise InvalidArgumentError(f"TSO allocation count must be 1..{LOGICAL_MASK}: {count}")
        with self._lock:
            now = int(time.time() * 1000)
            if now > self._physical:
                self._physical, self._logical = now, 0
            if self._logical + count > LOGICAL_MASK:
                self._physical, self._logical = self._physical + 1, 0
            if self._physical >= self._window:
                self._extend(self._physical)
            first = compose(self._physical, self._logical)
            self._logical += count
            return first

    def last(self) -> int:
        """The most recent timestamp handed out (0 before any)."""
        with self._lock:
            return compose(self._physical, self._logical - 1) if self._logical else 0
