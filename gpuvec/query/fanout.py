"""Searching a read's segments side by side: one small batch over several large segments.

A small-batch search over a collection of many sealed segments used to walk them one
after another in the request thread, each walk single-threaded (DESIGN §9: a batch below
``MT_MIN_BATCH`` runs with one OpenMP thread). faiss and NumPy release the GIL while they
search, so the segments can run on other cores at once: :func:`map_segments` runs the
segments with enough work on a shared thread pool (one thread per core) and the rest in
the caller's thread, and returns the answers in the segments' order.

A segment's work is the rows its search touches (:func:`search_work`): every row per query
for an exact scan, about :data:`INDEXED_QUERY_ROWS` per query through an index (a graph
walk or a few probed lists). Threads pay only past :data:`PARALLEL_MIN_WORK` (a hand-off
costs tens of µs, about what scanning a few thousand rows costs). Measured on 2 cores,
100k×50 rows in 5 HNSW segments (ef 64): batch 8 went from 3.6–4.5 ms to 2.8–3.7 ms, while
batch 1 (about 0.15 ms a segment) got slower, 0.95 → 1.07 ms, which is why one query
through an index stays sequential. It also stays sequential for one segment, one core, or
a batch of ``MT_MIN_BATCH`` queries or more (faiss then spreads it over its own threads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gpuvec.ops.search import MT_MIN_BATCH

__all__ = ["INDEXED_QUERY_ROWS", "PARALLEL_MIN_WORK", "map_segments", "search_work"]

PARALLEL_MIN_WORK = 20_000  # rows touched
INDEXED_QUERY_ROWS = 5_000  # rows one query through an index is worth

_T = TypeVar("_T")
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return None
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(cores, thread_name_prefix="gpuvec-segsearch")
    return _pool


def search_work(rows: int, nq: int, indexed: bool) -> int:
    """Rows a search of ``nq`` queries touches in a segment of ``rows`` rows."""
    return nq * (min(rows, INDEXED_QUERY_ROWS) if indexed else rows)


def map_segments(
    fn: Callable[[int], _T], n: int, work_of: Callable[[int], int], nq: int
) -> list[_T]:
    """``[fn(i) for i in range(n)]``, the calls whose ``work_of(i)`` is at least
    :data:`PARALLEL_MIN_WORK` run side by side when that pays (module docstring; the work
    is not even asked for a lone segment). The first exception raised by any call is
    raised here, after every call has ended."""
    if n < 2 or nq >= MT_MIN_BATCH:
        return [fn(i) for i in range(n)]
    large = [i for i in range(n) if work_of(i) >= PARALLEL_MIN_WORK]
    pool = _executor() if len(large) > 1 else None
    if pool is None:
        return [fn(i) for i in range(n)]
    futures = {i: pool.submit(fn, i) for i in large[1:]}  # the first large one runs here
    out: list[Any] = [None] * n
    error: BaseException | None = None
    for i in range(n):
        if i in futures:
            continue
        try:
            out[i] = fn(i)
        except BaseException as e:  # re-raised once the pool's calls end
            error = error or e
    for i, fut in futures.items():
        try:
            out[i] = fut.result()
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
    return out
