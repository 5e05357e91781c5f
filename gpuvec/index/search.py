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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.index.base import SearchResult, finish
from gpuvec.ops import knn, pad_value, to_host
from gpuvec.ops.backend import is_cupy_array

__all__ = [
    "FALLBACK_FRACTION",
    "FALLBACK_K_FACTOR",
    "FALLBACK_MIN_ROWS",
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


def _gather(base: Any, rows: np.ndarray) -> Any:
    """``base[rows]`` on the base's own device (NumPy fancy indexing or CuPy take)."""
    if is_cupy_array(base):
        import cupy

        return cupy.take(base, cupy.asarray(rows), axis=0)
    return np.ascontiguousarray(np.asarray(base)[rows], dtype=np.float32)


def exact_subset_knn(
    base: Any, queries: np.ndarray, k: int, metric: str, valid: np.ndarray
) -> SearchResult:
    """Exact top-k over the rows where ``valid`` is True, as rows of ``base``: gathers the
    passing rows (``O(passing·dim)`` memory) and runs ``gpuvec.ops.knn`` on them."""
    rows = np.flatnonzero(valid)
    nq = queries.shape[0]
    if rows.size == 0:
        return (
            np.full((nq, k), pad_value(metric), np.float32),
            np.full((nq, k), -1, np.int64),
        )
    dist, idx = knn(_gather(base, rows), queries, k, metric)
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
