"""The primary keys a shard's channel holds, for "a key written twice is one entity".

An insert whose key already exists is applied as an upsert: the shard writes a delete of
those keys at the insert's timestamp before the rows (:meth:`Shard.write`), so every read
path — query, get, search, ``count(*)``, iterators, on growing and sealed segments, after
a restart (the delete is in the WAL) — sees only the newest version. Deciding which keys
exist is this module's job, and only it: it must never miss a key that exists (a key it
reports that no longer exists costs a no-op delete).

:class:`KeySet` holds keys as sorted runs merged like an LSM tree (a new batch is one run;
two runs of similar size merge), so adding is O(m log m) and a lookup O(m log n) per run,
O(log n) runs; a range test skips the common case of new, increasing keys at once.

:class:`ChannelKeys` is the channel's set: every key applied through the shard (replayed
or written), plus the keys of the channel's sealed segments in the catalog — read from
their Zarr ``pk`` arrays the first time a write needs them, and again for any segment that
appears later (an import's, a compaction's) — so segments written by others count too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The union of two sorted, duplicate-free runs, sorted and duplicate-free."""
    if a[-1] < b[0]:  # keys that only grow: no sort at all
        return np.concatenate([a, b])
    m = np.concatenate([a, b])
    m.sort(kind="stable")  # timsort: two sorted runs merge in linear time
    keep = np.empty(len(m), bool)
    keep[0] = True
    np.not_equal(m[1:], m[:-1], out=keep[1:])
    return m[keep]


class KeySet:
    """A growing set of int64 or string keys (see the module docstring)."""

    def __init__(self, is_int: bool) -> None:
        self.is_int = is_int
        self._runs: list[np.ndarray] = []
        self._lo: Any = None
        self._hi: Any = None

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def add(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        run = np.unique(np.asarray(keys, np.int64 if self.is_int else object))
        lo, hi = run[0], run[-1]
        self._lo = lo if self._lo is None or lo < self._lo else self._lo
        self._hi = hi if self._hi is None or hi > self._hi else self._hi
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = _merge(self._runs[-1], last)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A bool mask: which of ``keys`` are in the set."""
        keys = np.asarray(keys, np.int64 if self.is_int else object)
        found = np.zeros(len(keys), bool)
        if self._lo is None or not len(keys):
            return found
        cand = np.flatnonzero((keys >= self._lo) & (keys <= self._hi))
        for run in self._runs:
            if not len(cand):
                break
            sub = keys[cand]
            at = np.searchsorted(run, sub)
            hit = (at < len(run)) & (run[np.minimum(at, len(run) - 1)] == sub)
            found[cand[hit]] = True
            cand = cand[~hit]
        return found


class ChannelKeys:
    """Every key of one WAL channel: applied rows plus its sealed segments' keys."""

    def __init__(self, is_int: bool, segments: Callable[[], Iterable[Any]],
                 read_keys: Callable[[Any], np.ndarray]) -> None:  # fmt: skip
        """``segments()``: the channel's sealed segment records now (``.id``);
        ``read_keys(segment)``: a sealed segment's primary keys."""
        self.keys = KeySet(is_int)
        self._segments, self._read = segments, read_keys
        self._seen: set[int] = set()

    def add(self, keys: np.ndarray) -> None:
        self.keys.add(keys)

    def mark_known(self, segment_ids: Iterable[int]) -> None:
        """Segments whose keys already went through :meth:`add` (this shard's seals)."""
        self._seen.update(segment_ids)

    def existing(self, keys: np.ndarray) -> np.ndarray:
        """The keys (of ``keys``) the channel already holds."""
        for seg in self._segments():  # at first every sealed one; then an import's, ...
            if seg.id not in self._seen:
                self.keys.add(self._read(seg))
                self._seen.add(seg.id)
        keys = np.asarray(keys)
        return keys[self.keys.contains(keys)]
