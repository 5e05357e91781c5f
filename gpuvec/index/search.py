"""Exact search over the rows a filter passes: the fallback that keeps filtered recall high.

Owns the *selectivity rule* — when an index search with a filter bitmap is replaced by an
exact scan of just the passing rows — and the exact k-NN / range scans themselves.

Why: graph and IVF indexes lose recall when a filter removes most rows (an HNSW walk runs
through filtered-out nodes and its ``ef`` candidates hold few passing ones; an IVF probe
of ``nprobe`` lists finds few passing rows). An exact scan of ``p`` passing rows costs
``O(p·dim)`` per query and is exact, so below a few percent of the segment it is both
cheaper and better. The rule (:func:`use_exact`) scans exactly when

    passing <= max(FALLBACK_K_FACTOR * k, FALLBACK_FRACTION * n)

``FALLBACK_FRACTION`` = 0.07 is knowhere's HNSW rule (brute force once >= 93 % of the rows
are filtered out, ``kHnswSearchKnnBFFilterThreshold``), confirmed on gpuvec's own
measurement (20k clustered 32-d rows, 100 queries, k=10, L2, random filters, 2 CPUs):

    recall@10 without the fallback   0.5 %   1 %    2 %    5 %    7 %    10 %   50 %
    IVF_FLAT nlist 128 nprobe 16     0.84    0.96   1.00   1.00   1.00   1.00   1.00
    IVF_SQ8  nlist 128 nprobe 16     0.84    0.96   1.00   0.99   0.99   0.99   0.99
    IVF_PQ   nlist 128 m 16 nprobe16 0.84    0.95   0.98   0.96   0.95   0.93   0.91
    HNSW     M 16 efC 100 ef 64      0.84    0.89   0.94   0.99   1.00   1.00   1.00
    AUTOINDEX (ef 16)                0.28    0.38   0.71   0.98   0.99   0.99   0.98

(HNSW rows with ``ef / sqrt(s)``, see :mod:`gpuvec.index.faiss_index`; PQ's ceiling is its
quantisation.) The exact scan of the passing rows took 0.18–0.23 ms per query up to 7 %
(0.26 ms at 10 %, 0.56 ms at 50 %) against 0.15–0.3 ms for the filtered index searches, so
up to 7 % it is as cheap as the index and exact. ``FALLBACK_K_FACTOR`` = 8 covers small
segments and large k (knowhere: ``k >= 0.5 * passing``), where an index cannot fill k
slots from so few rows anyway. ``FALLBACK_MIN_ROWS`` = 2048: a filtered graph walk on a
small segment loses recall (AUTOINDEX, 3000 rows, 10 % passing: 0.93) while an exact scan
of 2048 rows costs about as much as the walk.

Range search uses the same rule (knowhere uses 0.97 for range; gpuvec keeps one rule).

**Cost rule** (:func:`exact_cheaper`), on top of the fixed one: a filter *correlated with
the vectors* (GloVe-50 words filtered by frequency rank) breaks a graph or IVF search far
above 7 %. Measured on 100k GloVe rows, k=10, 2 CPUs, recall of the filtered search at the
operating point where the unfiltered one reaches 0.97 (HNSW M 16 ef 96; IVF nlist 1264
nprobe 128), batch-1 latency in brackets:

    passing                 10 %          20 %          50 %
    HNSW ef/sqrt(s)         0.57          0.74          0.93
    HNSW ef/s               0.78 (1.3ms)  0.87 (0.7ms)  0.96 (0.29ms)
    IVF  nprobe/sqrt(s)     0.86          0.91          0.96
    IVF  nprobe/s           1.0 (0.52ms)  0.98 (0.33ms)  0.97 (0.27ms)
    exact scan (cached)     1.0 (0.25ms)  1.0 (0.31ms)  1.0 (0.6-1.0ms)

Up to about 30 % the exact scan is both exact and cheaper. The rule compares the costs:
HNSW walks about ``ef_eff · 2M`` distances at random addresses, each ``1 + 180 / dim``
times the cost of a row of the scan (fitted: 4.6× at dim 50; 1.5× at dim 384 on
MiniLM-GCIDE, where a walk at 47 % passing took 0.79 ms and a scan of 28k rows 3.3 ms); an
IVF search reads ``nprobe_eff · n / nlist`` list entries (checking each against the filter)
after scoring ``nlist`` centroids, and a scan of up to twice that many passing rows cost no
more (GloVe, 20 % passing, nprobe 64 → 320 lists: IVF 0.17 ms at recall 0.92, the scan of
20k rows 0.3–0.4 ms at 1.0; at 10 % the lists are all probed and the scan is cheaper).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from gpuvec.index.base import SearchResult, finish
from gpuvec.ops import knn, pad_value, sq_norms, to_host
from gpuvec.ops.backend import array_module, is_cupy_array

__all__ = [
    "FALLBACK_FRACTION",
    "FALLBACK_K_FACTOR",
    "FALLBACK_MIN_ROWS",
    "SubsetCache",
    "exact_cheaper",
    "exact_range",
    "exact_subset_knn",
    "in_range",
    "use_exact",
]

FALLBACK_FRACTION = 0.07
FALLBACK_K_FACTOR = 8
FALLBACK_MIN_ROWS = 2048  # an exact scan of this few rows costs microseconds: never worse
_RANGE_BLOCK = 1 << 14  # base rows per block of the exact range scan


def use_exact(n: int, passing: int, k: int) -> bool:
    """True when a filter passing ``passing`` of ``n`` rows should be served by an exact
    scan of those rows rather than the index (module docstring)."""
    return passing <= max(FALLBACK_K_FACTOR * k, FALLBACK_FRACTION * n, FALLBACK_MIN_ROWS)


RANDOM_ACCESS_DIMS = 180  # random-access penalty of a graph distance: 1 + this / dim
IVF_SCAN_FACTOR = 2.0  # passing rows an exact scan handles per list entry an IVF search reads


def exact_cheaper(
    kind: str, n: int, passing: int, dim: int, *, ef: int = 0, M: int = 0,
    nprobe: int = 0, nlist: int = 0,
) -> bool:  # fmt: skip
    """True when an exact scan of the ``passing`` rows costs no more than the index's own
    filtered search (module docstring, *cost rule*): HNSW with candidate list ``ef`` (as
    widened for the filter) and ``M``, or IVF probing ``nprobe`` (as widened) of ``nlist``."""
    if passing <= 0 or passing >= n:
        return passing <= 0
    if kind == "HNSW":
        return passing <= (1.0 + RANDOM_ACCESS_DIMS / dim) * ef * 2 * M
    return passing <= IVF_SCAN_FACTOR * (nprobe * n / max(1, nlist) + nlist)


def _gather(base: Any, rows: np.ndarray) -> Any:
    """``base[rows]`` on the base's own device (NumPy fancy indexing or CuPy take)."""
    if is_cupy_array(base):  # the device's array module, from gpuvec.ops (never CuPy here)
        xp = array_module(base)
        return xp.take(base, xp.asarray(rows), axis=0)
    return np.ascontiguousarray(np.asarray(base)[rows], dtype=np.float32)


class SubsetCache:
    """The passing rows of recent filters and their gathered vectors, prepared for the
    metric, per caller key (an LRU of ``size`` entries): a repeated filter skips the
    ``O(passing·dim)`` gather and norms. The key must name the filter *and* the alive set it
    was combined with (and the metric, when one cache serves several)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, _Subset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable | None, base: Any, valid: np.ndarray, metric: str) -> _Subset:
        """The passing rows of ``valid`` over ``base``, prepared; cached under ``key``."""
        if key is not None:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:
                    self._entries.move_to_end(key)
                    return hit
        entry = _Subset.gather(base, np.flatnonzero(valid), metric)
        if key is not None:
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return entry


class _Subset:
    """Gathered passing rows in the form the scan wants: COSINE rows normalised (scanned
    by inner product), L2 rows with their squared norms."""

    def __init__(self, rows: np.ndarray, vectors: Any, metric: str, sq: Any | None) -> None:
        self.rows, self.vectors, self.metric, self.sq = rows, vectors, metric, sq

    @classmethod
    def gather(cls, base: Any, rows: np.ndarray, metric: str) -> _Subset:
        if rows.size == 0:
            return cls(rows, None, metric, None)
        vec = _gather(base, rows)
        if metric == "L2":
            return cls(rows, vec, "L2", sq_norms(vec))
        if metric == "COSINE":
            xp = array_module(vec)
            norms = xp.sqrt(sq_norms(vec))
            inv = xp.where(norms > 0, 1.0 / xp.maximum(norms, xp.float32(1e-30)), 0.0)
            vec = xp.ascontiguousarray(vec * inv.astype(xp.float32)[:, None])
            return cls(rows, vec, "IP", None)
        return cls(rows, vec, metric, None)


def exact_subset_knn(
    base: Any,
    queries: np.ndarray,
    k: int,
    metric: str,
    valid: np.ndarray,
    cache: SubsetCache | None = None,
    key: Hashable | None = None,
) -> SearchResult:
    """Exact top-k over the rows where ``valid`` is True, as rows of ``base``: gathers the
    passing rows (``O(passing·dim)`` memory; kept in ``cache`` under ``key`` when given)
    and runs ``gpuvec.ops.knn`` on them."""
    sub = (cache or SubsetCache(0)).get(key if cache else None, base, valid, metric)
    nq = queries.shape[0]
    if sub.rows.size == 0:
        return (
            np.full((nq, k), pad_value(metric), np.float32),
            np.full((nq, k), -1, np.int64),
        )
    q = queries
    if metric == "COSINE":  # the rows are normalised: normalise the queries, then IP
        from gpuvec.index.base import normalize_rows

        q = normalize_rows(np.asarray(queries, np.float32))
    dist, idx = knn(sub.vectors, q, k, sub.metric, base_sq_norms=sub.sq)
    rows = sub.rows
    mapped = np.where(idx >= 0, rows[np.maximum(idx, 0)], -1)
    return finish(dist, mapped, metric)


def in_range(
    dist: np.ndarray, metric: str, radius: float, range_filter: float | None
) -> np.ndarray:
    """Mask of reported distances inside Milvus's range (L2: ``range_filter <= d <
    radius``; IP/COSINE: ``radius < s <= range_filter``)."""
    if metric == "L2":
        ok = dist < radius
        if range_filter is not None:
            ok &= dist >= range_filter
    else:
        ok = dist > radius
        if range_filter is not None:
            ok &= dist <= range_filter
    return ok


def _block_scores(blk: np.ndarray, q: np.ndarray, qn2: np.ndarray, metric: str) -> np.ndarray:
    """Reported distances [nq, b] of queries ``q`` against base block ``blk`` (float32)."""
    ip = q @ blk.T
    if metric == "IP":
        return ip
    bn2 = np.einsum("ij,ij->i", blk, blk)
    if metric == "L2":
        return np.maximum(qn2[:, None] - 2.0 * ip + bn2[None, :], 0.0)
    bn = np.sqrt(bn2)
    inv = np.divide(1.0, bn, out=np.zeros_like(bn), where=bn > 0)
    return ip * inv[None, :]  # queries are pre-normalised for COSINE


def exact_range(
    base: Any,
    queries: np.ndarray,
    metric: str,
    radius: float,
    range_filter: float | None,
    limit: int,
    valid: np.ndarray | None = None,
) -> SearchResult:
    """Exact range search: the best ``limit`` rows per query inside the range, blockwise
    over ``base`` (host copies of CuPy blocks); ``valid`` restricts the rows."""
    nq = queries.shape[0]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "COSINE":
        from gpuvec.index.base import normalize_rows

        q = normalize_rows(q)
    qn2 = np.einsum("ij,ij->i", q, q)
    best_key = np.full((nq, limit), np.inf, np.float32)
    best_row = np.full((nq, limit), -1, np.int64)
    rows_all = None if valid is None else np.flatnonzero(valid)
    n = base.shape[0] if rows_all is None else rows_all.size
    for s in range(0, n, _RANGE_BLOCK):
        if rows_all is None:
            ids = np.arange(s, min(n, s + _RANGE_BLOCK), dtype=np.int64)
            blk = base[s : s + _RANGE_BLOCK]
            blk = to_host(blk) if is_cupy_array(blk) else blk
        else:
            ids = rows_all[s : s + _RANGE_BLOCK]
            blk = to_host(_gather(base, ids)) if is_cupy_array(base) else _gather(base, ids)
        blk = np.ascontiguousarray(blk, dtype=np.float32)
        dist = _block_scores(blk, q, qn2, metric)
        key = dist if metric == "L2" else -dist
        key = np.where(in_range(dist, metric, radius, range_filter), key, np.inf)
        cat_k = np.concatenate([best_key, key.astype(np.float32)], axis=1)
        cat_r = np.concatenate([best_row, np.broadcast_to(ids, key.shape)], axis=1)
        if cat_k.shape[1] > limit:
            part = np.argpartition(cat_k, limit - 1, axis=1)[:, :limit]
            cat_k = np.take_along_axis(cat_k, part, 1)
            cat_r = np.take_along_axis(cat_r, part, 1)
        best_key, best_row = cat_k, cat_r
    best_row = np.where(np.isinf(best_key), -1, best_row)
    dist = best_key if metric == "L2" else -best_key
    return finish(dist, best_row, metric)
