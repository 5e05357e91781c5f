"""In-process hand-off of sealed segments just written, to a loader in the same process.

A bulk import in the embedded runtime writes its segments on Dask worker *threads* of the
same process whose query side then loads them: reading half a gigabyte back from files it
has just written (and checking every chunk's CRC32C again) is most of an import's serving
time. A writer that knows such a loader exists (``write_segment(..., handoff=True)``)
leaves the columns it wrote here, keyed by the store and the segment's path; the loader
(:func:`gpuvec.query.node.load_segment`) takes them — once — instead of reading the files.

What is handed over is exactly what was written (the writer never changes the arrays after
the commit), so a taker sees what a reader of the files would. Entries are a cache, never
a source of truth: they expire after :data:`TTL_S` seconds, the oldest go first once
:data:`MAX_BYTES` is held, and a process that never loads the segment (a cluster data
node) never leaves any (the import job asks for hand-off only with in-process workers).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.storage.objects.stores import describe

TTL_S = 120.0
MAX_BYTES = 4 << 30
_clock = time.monotonic


@dataclass(frozen=True)
class Parts:
    """A committed segment's columns as written: primary keys (int64 array, or a string
    Arrow array), timestamps, each vector field, the scalar columns (without the key)."""

    pk: np.ndarray | pa.Array
    ts: np.ndarray
    vectors: dict[str, np.ndarray]
    scalars: pa.Table

    @property
    def nbytes(self) -> int:
        return (
            int(self.pk.nbytes)
            + int(self.ts.nbytes)
            + sum(int(v.nbytes) for v in self.vectors.values())
            + int(self.scalars.nbytes)
        )


_lock = threading.Lock()
_entries: OrderedDict[tuple[str, str], tuple[float, int, Parts]] = OrderedDict()
_held = 0


def _key(store: Any, path: str) -> tuple[str, str]:
    return describe(store), path.strip("/")


def _expire(now: float) -> None:
    global _held
    while _entries:
        key, (deadline, size, _) = next(iter(_entries.items()))
        if deadline > now and _held <= MAX_BYTES:
            return
        del _entries[key]
        _held -= size


def leave(store: Any, path: str, parts: Parts) -> None:
    """Leave a just-committed segment's columns for a loader in this process."""
    global _held
    size = parts.nbytes
    if size > MAX_BYTES:
        return
    with _lock:
        old = _entries.pop(_key(store, path), None)
        _held += size - (old[1] if old else 0)
        _entries[_key(store, path)] = (_clock() + TTL_S, size, parts)
        _expire(_clock())


def take(store: Any, path: str) -> Parts | None:
    """The columns left for this segment (removed from here), or None."""
    global _held
    with _lock:
        _expire(_clock())
        got = _entries.pop(_key(store, path), None)
        if got is None:
            return None
        _held -= got[1]
        return got[2]


def held_bytes() -> int:
    """Bytes held now (for tests and the curious)."""
    with _lock:
        _expire(_clock())
        return _held
