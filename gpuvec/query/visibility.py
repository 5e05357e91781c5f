"""MVCC visibility of a segment's rows, kept incrementally (DESIGN §3, §9).

A row is visible at read timestamp R when ``ins_ts ≤ R`` and it has no delete with
``del_ts ≤ R``. A delete at T applies to rows of its primary key inserted *before* T
(``ins_ts < T``), so an upsert (delete + insert at one T) hides the old row and keeps the
new one.

The common read is at or after everything the segment has seen; for it the answer is the
``alive`` bitmap, kept up to date by appends and deletes — no per-search O(N) work. Older
read timestamps compute the mask from the two timestamp columns (vectorised).

Concurrency (one writer, lock-free readers): a reader reads ``n`` first and the arrays
after it, so they hold at least ``n`` rows. The writer raises ``max_ins`` / ``max_del``
*before* it changes rows, so a reader that sees the old maximum sees the old rows and one
that sees the new maximum takes the exact timestamp path. ``alive`` is copy-on-write under
deletes: the view a reader holds never changes under it (a delete costs one O(n) copy, a
read none).
"""

from __future__ import annotations

import numpy as np

NEVER = np.iinfo(np.uint64).max


class Visibility:
    def __init__(self, ins_ts: np.ndarray | None = None, capacity: int = 1024) -> None:
        n = 0 if ins_ts is None else len(ins_ts)
        cap = max(capacity, n)
        self._ins = np.empty(cap, np.uint64)
        self._del = np.empty(cap, np.uint64)  # set to NEVER as rows arrive (pages stay lazy)
        self._alive = np.zeros(cap, bool)
        self.n = 0
        self.max_ins = 0
        self.max_del = 0
        self.version = 0  # bumped whenever a delete hides rows (keys caches of the alive set)
        if ins_ts is not None and n:
            self.append(np.asarray(ins_ts, np.uint64))

    def _grow(self, need: int) -> None:
        cap = len(self._ins)
        if need <= cap:
            return
        new = max(need, cap * 2)
        for name, fill in (("_ins", 0), ("_del", NEVER), ("_alive", False)):
            old = getattr(self, name)
            arr = np.full(new, fill, old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def append(self, ins_ts: np.ndarray) -> None:
        m = len(ins_ts)
        self._grow(self.n + m)
        if m:  # before the rows: a current-read check must not pass for them
            self.max_ins = max(self.max_ins, int(ins_ts.max()))
        self._ins[self.n : self.n + m] = ins_ts
        self._del[self.n : self.n + m] = NEVER
        self._alive[self.n : self.n + m] = True
        self.n += m  # last: publishes the rows

    def delete_rows(self, rows: np.ndarray, ts: int) -> int:
        """Apply a delete at ``ts`` to candidate rows (same pk); return rows newly hidden."""
        rows = rows[(self._ins[rows] < ts) & (self._del[rows] > ts)]
        if len(rows):
            self.max_del = max(self.max_del, ts)  # first: older reads leave the alive path
            self._del[rows] = ts
            alive = self._alive.copy()  # copy-on-write: readers' views stay as they were
            alive[rows] = False
            self._alive = alive
            self.version += 1
        return len(rows)

    @property
    def ins_ts(self) -> np.ndarray:
        n = self.n
        return self._ins[:n]

    @property
    def del_ts(self) -> np.ndarray:
        n = self.n
        return self._del[:n]

    def live_count(self) -> int:
        n = self.n
        return int(self._alive[:n].sum())

    def mask(self, read_ts: int) -> np.ndarray:
        """Boolean mask of rows visible at ``read_ts`` (a view: do not modify)."""
        n = self.n  # once, and first: the arrays read after it hold at least n rows
        alive = self._alive  # before the check: a delete replaces it after raising max_del
        if read_ts >= self.max_ins and read_ts >= self.max_del:
            return alive[:n]
        return (self._ins[:n] <= read_ts) & (self._del[:n] > read_ts)
