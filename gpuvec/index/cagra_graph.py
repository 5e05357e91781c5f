"""The NumPy twin of Milvus's GPU_CAGRA graph build (CAGRA, arXiv 2308.15136).

Owns the two build steps of a CAGRA index (its search is :mod:`gpuvec.index.cagra_walk`,
its export into faiss :func:`gpuvec.index.cagra.to_faiss`), and the candidate keys both
share:

* :func:`knn_graph` — the initial k-nearest-neighbour graph (int32 ``[n, k]``, best first,
  never the row itself, no duplicates). Up to :data:`EXACT_MAX_ROWS` rows it is an exact
  blocked brute force. Above, ``algo="IVF_PQ"`` (Milvus's name; the twin searches exactly
  within the probed lists) clusters the rows with :func:`gpuvec.ops.kmeans.kmeans` into about
  ``4·√n`` lists (at least :data:`ROWS_PER_LIST` rows each) and searches every row over its
  nearest lists with a faiss ``IndexIVFFlat`` built on those centroids; the probe count
  scans about :data:`PROBE_ROWS` rows per wanted neighbour (at least :data:`MIN_PROBES`
  lists). ``algo="NN_DESCENT"`` refines that graph by NN-descent local joins: each row
  scores the forward and reverse neighbours of its forward and reverse neighbours (the first
  :data:`NND_SAMPLE` of each, a pair only when one of its edges is new) and keeps the best
  ``k``, for up to :data:`NND_ROUNDS` rounds (fewer once a round changes
  under 0.1 % of the edges); an exact graph (small ``n``) is not refined. When the array
  backend is CuPy (a CUDA device), the graph is exact for any ``n``, computed on the device
  by :func:`gpuvec.ops.knn` block by block (GEMM + the top-k kernel).
* :func:`optimize` — CAGRA's graph optimisation: rank-based reordering by detour counts,
  pruning to ``graph_degree / 2`` forward edges, at most ``graph_degree / 2`` reverse edges
  per node (chosen by the forward edge's rank, then the source id), merged and filled from the
  reordered list up to ``graph_degree``.
Distances inside are "smaller is better": squared L2, or the negated inner product for IP
(COSINE is IP on rows the caller has normalised). Candidates are ordered by a uint64 key
(the float32 distance's order-preserving bits, then the row id), so ties always go to the
lower row and every result is deterministic under ``seed``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.threads import faiss_module
from gpuvec.ops.kmeans import kmeans

__all__ = ["knn_graph", "optimize"]

EXACT_MAX_ROWS = 20_000  # knn_graph: exact brute force up to this many rows
ROWS_PER_LIST = 40  # IVF: at least this many rows per coarse list
PROBE_ROWS = 16  # IVF: rows scanned per wanted neighbour (sets nprobe)
MIN_PROBES = 8  # IVF: lists probed at least
NND_ROUNDS = 6  # NN-descent: local-join rounds at most
NND_SAMPLE = 16  # NN-descent: forward / reverse neighbours joined per row
NND_STOP = 1e-3  # NN-descent: stop once a round changes under this share of the edges
KMEANS_ITERS = 10
KMEANS_POINTS_PER_LIST = 32
BLOCK_ELEMS = 1 << 22  # elements of the largest temporary per block
TABLE_BYTES = 1 << 26  # optimize: bytes of the rank tables per block of rows

_EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_LOW = np.uint64(0xFFFF_FFFF)
_SHIFT = np.uint64(32)


# --------------------------------------------------------------------------- helpers


def _metric(metric: str) -> str:
    m = str(metric).upper()
    if m not in ("L2", "IP", "COSINE"):
        raise InvalidArgumentError(f"CAGRA: metric {metric!r} is not L2, IP or COSINE")
    return "L2" if m == "L2" else "IP"


def _vectors(x: np.ndarray, what: str = "vectors") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InvalidArgumentError(f"CAGRA: {what} must be a non-empty 2-D array, got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _graph(graph: np.ndarray, n: int) -> np.ndarray:
    g = np.asarray(graph)
    if g.ndim != 2 or g.shape[0] != n or g.shape[1] < 1:
        raise InvalidArgumentError(f"CAGRA: graph must be [{n}, degree], got {g.shape}")
    if not np.issubdtype(g.dtype, np.integer):
        raise InvalidArgumentError(f"CAGRA: graph must hold integer row ids, got {g.dtype}")
    if g.size and (int(g.min()) < -1 or int(g.max()) >= n):
        raise InvalidArgumentError(f"CAGRA: graph ids must lie in [-1, {n})")
    return g.astype(np.int32, copy=False)


def _keys(dist: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """uint64 sort keys: the order-preserving bits of float32 ``dist``, then ``ids``."""
    b = np.ascontiguousarray(dist, dtype=np.float32).view(np.uint32)
    b = np.where(b & np.uint32(0x8000_0000), ~b, b | np.uint32(0x8000_0000))
    return (b.astype(np.uint64) << _SHIFT) | (ids.astype(np.int64).astype(np.uint64) & _LOW)


def _key_ids(keys: np.ndarray) -> np.ndarray:
    """Row ids (int64) of keys; -1 for empty slots."""
    return np.where(keys == _EMPTY, -1, (keys & _LOW).astype(np.int64))


def _key_dist(keys: np.ndarray) -> np.ndarray:
    """float32 distances of keys (empty slots: +inf)."""
    b = (keys >> _SHIFT).astype(np.uint32)
    b = np.where(b & np.uint32(0x8000_0000), b & np.uint32(0x7FFF_FFFF), ~b)
    d = b.view(np.float32)
    return np.where(keys == _EMPTY, np.float32(np.inf), d).astype(np.float32)


def _pair_dist(x: np.ndarray, q: np.ndarray, qi: np.ndarray, rows: np.ndarray, metric: str):
    """Distance (smaller is better) of ``q[qi[j]]`` to ``x[rows[j]]`` for every ``j``."""
    out = np.empty(len(rows), np.float32)
    step = max(1, BLOCK_ELEMS // x.shape[1])
    for a in range(0, len(rows), step):
        xr = x[rows[a : a + step]]
        qr = q[qi[a : a + step]]
        if metric == "L2":
            xr -= qr
            out[a : a + step] = np.einsum("ij,ij->i", xr, xr)
        else:
            out[a : a + step] = -np.einsum("ij,ij->i", xr, qr)
    return out


def _block_rows(per_row: int, cap: int | None = None) -> int:
    b = max(1, BLOCK_ELEMS // max(1, per_row))
    return b if cap is None else max(1, min(b, cap))


def _reverse(fwd: np.ndarray, n: int, cap: int, *, with_cols: bool = False) -> Any:
    """Reverse edges of ``fwd`` (``[n, h]``, ``n`` = no edge): node ``y`` gets ``i`` for each
    ``i→y``, at most ``cap`` per node chosen by the edge's column, then the source id;
    ``[n, cap]`` int32 with ``n`` for empty slots (and, ``with_cols``, each reverse edge's
    column in ``fwd``)."""
    h = fwd.shape[1]
    rev = np.full((n, cap), n, np.int32)
    cols = np.zeros((n, cap), np.int32)
    if cap == 0 or h == 0:
        return (rev, cols) if with_cols else rev
    dst = fwd.reshape(-1).astype(np.int64)
    keep = np.flatnonzero(dst < n)
    src = keep // h  # ascending; a stable sort keeps ties by source id
    col = keep % h
    dst = dst[keep]
    order = np.argsort(dst * h + col, kind="stable")
    dst, src, col = dst[order], src[order], col[order]
    starts = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]])
    counts = np.diff(np.r_[starts, len(dst)])
    slot = np.arange(len(dst)) - np.repeat(starts, counts)
    ok = slot < cap
    rev[dst[ok], slot[ok]] = src[ok]
    cols[dst[ok], slot[ok]] = col[ok]
    return (rev, cols) if with_cols else rev


def _first_unique(cand: np.ndarray, none: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``cand``, the entries in their original order with duplicates (all but
    the first) and ``none`` entries moved to the end; returns (compacted ids, count)."""
    order = np.argsort(cand, axis=1, kind="stable")
    s = np.take_along_axis(cand, order, axis=1)
    bad = s == none
    bad[:, 1:] |= s[:, 1:] == s[:, :-1]
    bad_orig = np.empty_like(bad)
    np.put_along_axis(bad_orig, order, bad, axis=1)
    pos = np.argsort(bad_orig, axis=1, kind="stable")
    out = np.take_along_axis(cand, pos, axis=1)
    count = (~bad_orig).sum(axis=1)
    out[np.arange(cand.shape[1])[None, :] >= count[:, None]] = none
    return out, count


# --------------------------------------------------------------------------- knn_graph


DEVICE_BLOCK_ROWS = 8192  # query rows per device kNN call of the graph build


def _exact_knn(
    x: np.ndarray, k: int, metric: str, progress: Callable[[int, int], None] | None, total: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    norms = np.einsum("ij,ij->i", x, x) if metric == "L2" else None
    ids = np.empty((n, k), np.int32)
    keys = np.empty((n, k), np.uint64)
    step = _block_rows(n)
    for a in range(0, n, step):
        blk = x[a : a + step]
        b = len(blk)
        s = blk @ x.T
        if norms is not None:  # ‖x‖² − 2·x·y + ‖y‖²
            s *= -2.0
            s += norms[None, :]
            s += norms[a : a + b, None]
        else:
            np.negative(s, out=s)
        s[np.arange(b), np.arange(a, a + b)] = np.inf
        part = np.argpartition(s, k - 1, axis=1)[:, :k]
        kk = _keys(np.take_along_axis(s, part, axis=1), part)
        kk.sort(axis=1)
        keys[a : a + b] = kk
        ids[a : a + b] = _key_ids(kk)
        if progress is not None:
            progress(a + b, total)
    return ids, keys


def _ivf_knn(
    x: np.ndarray,
    k: int,
    metric: str,
    seed: int,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> tuple[np.ndarray, np.ndarray]:
    faiss = faiss_module()
    n, dim = x.shape
    nlist = int(min(max(1, round(4 * math.sqrt(n))), max(1, n // ROWS_PER_LIST)))
    km = kmeans(
        x,
        nlist,
        metric=metric,
        iters=KMEANS_ITERS,
        seed=seed,
        max_points_per_centroid=KMEANS_POINTS_PER_LIST,
    )
    fm = faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT
    quantizer = faiss.IndexFlat(dim, fm)
    quantizer.add(np.ascontiguousarray(km.centroids, dtype=np.float32))
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, fm)
    index.is_trained = True
    index.add(x)
    per_list = n / nlist
    nprobe = max(MIN_PROBES, math.ceil(PROBE_ROWS * (k + 1) / per_list))
    params = faiss.SearchParametersIVF(nprobe=min(nlist, nprobe))
    ids = np.empty((n, k), np.int32)
    keys = np.empty((n, k), np.uint64)
    step = _block_rows(4 * (k + 1), 8192)
    short: list[np.ndarray] = []
    for a in range(0, n, step):
        b = min(step, n - a)
        d, r = index.search(x[a : a + b], k + 1, params=params)
        if metric != "L2":
            d = -d
        d = np.where(r < 0, np.inf, d).astype(np.float32)
        r = np.where(r < 0, n, r)
        me = r == np.arange(a, a + b)[:, None]
        kk = _keys(d, r)
        kk[me | (r >= n)] = _EMPTY
        kk.sort(axis=1)
        kk = kk[:, :k]
        keys[a : a + b] = kk
        ids[a : a + b] = _key_ids(kk)
        lacking = np.flatnonzero(kk[:, -1] == _EMPTY)
        if lacking.size:
            short.append(lacking + a)
        if progress is not None:
            progress(a + b, total)
    if short:  # rows whose probed lists held too few rows: search them over all rows
        rows = np.concatenate(short)
        for a in range(0, len(rows), _block_rows(n)):
            sub = rows[a : a + _block_rows(n)]
            d = _pair_dist(x, x, np.repeat(sub, n), np.tile(np.arange(n), len(sub)), metric)
            d = d.reshape(len(sub), n)
            d[np.arange(len(sub)), sub] = np.inf
            part = np.argsort(d, axis=1, kind="stable")[:, :k]
            kk = np.sort(_keys(np.take_along_axis(d, part, axis=1), part), axis=1)
            keys[sub] = kk
            ids[sub] = _key_ids(kk)
    return ids, keys


def _nn_descent(
    x: np.ndarray,
    ids: np.ndarray,
    keys: np.ndarray,
    metric: str,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> np.ndarray:
    """Refine a kNN graph by local joins (module docstring); returns the new ids.

    Row ``i``'s candidates are ``N(N(i))``, ``N(R(i))``, ``R(N(i))`` and ``R(i)`` (``N``:
    the first :data:`NND_SAMPLE` neighbours, ``R``: as many reverse ones). As in NN-descent,
    a pair is joined only when one of its two edges is new (entered its list in the last
    round)."""
    n, k = ids.shape
    s = min(k, NND_SAMPLE)
    new = np.ones((n, k), bool)
    step = _block_rows(4 * (3 * s * s + k + s))
    for _ in range(NND_ROUNDS):
        fwd = ids[:, :s]
        rev, rcol = _reverse(fwd, n, s, with_cols=True)
        fnew = np.vstack([new[:, :s], np.zeros((1, s), bool)])
        rnew = np.zeros((n, s), bool)
        has = rev < n
        rnew[has] = new[rev[has], rcol[has]]
        ext = np.vstack([fwd, np.full((1, s), n, np.int32)])
        rext = np.vstack([rev, np.full((1, s), n, np.int32)])
        rnewx = np.vstack([rnew, np.zeros((1, s), bool)])
        changed = 0
        new_ids = ids.copy()
        new_keys = keys.copy()
        new_new = np.zeros_like(new)
        for a in range(0, n, step):
            b = min(step, n - a)
            f, r = fwd[a : a + b], rev[a : a + b]
            nn = np.where(fnew[f] | fnew[a : a + b, :, None], ext[f], n)  # N(N(i))
            nr = np.where(fnew[r] | rnew[a : a + b, :, None], ext[r], n)  # N(R(i))
            rr = np.where(rnew[a : a + b], r, n)  # R(i)
            rn = np.where(rnewx[f] | fnew[a : a + b, :, None], rext[f], n)  # R(N(i))
            cand = np.concatenate(
                [nn.reshape(b, -1), nr.reshape(b, -1), rr, rn.reshape(b, -1)], axis=1
            )
            m = cand.shape[1]
            # current entries first (flag 0) so a candidate equal to one sorts after it
            both = np.concatenate([ids[a : a + b], cand], axis=1).astype(np.int64)
            order = np.argsort(both * 2 + (np.arange(k + m) >= k), axis=1)
            sb = np.take_along_axis(both, order, axis=1)
            fresh = order >= k
            fresh[:, 1:] &= sb[:, 1:] != sb[:, :-1]
            fresh &= (sb < n) & (sb != np.arange(a, a + b)[:, None])
            qi, ji = np.nonzero(fresh)
            if qi.size:
                rows = sb[qi, ji]
                ck = np.full(sb.shape, _EMPTY, np.uint64)
                ck[qi, ji] = _keys(_pair_dist(x, x, qi + a, rows, metric), rows)
                ck.sort(axis=1)
                ck = ck[:, : int(fresh.sum(axis=1).max())]
                both_k = np.concatenate([keys[a : a + b], ck], axis=1)
                pick = np.argsort(both_k, axis=1)[:, :k]
                merged = np.take_along_axis(both_k, pick, axis=1)
                came = pick >= k
                changed += int(came.sum())
                new_keys[a : a + b] = merged
                new_ids[a : a + b] = _key_ids(merged)
                new_new[a : a + b] = came
            if progress is not None:
                progress(done + a + b, total)
        ids, keys, new = new_ids, new_keys, new_new
        done += n
        if changed < NND_STOP * n * k:
            break
    return ids


def _on_device() -> bool:
    from gpuvec import ops

    return ops.is_gpu()


def _device_knn(x: np.ndarray, k: int, metric: str,
                progress: Callable[[int, int], None] | None) -> np.ndarray:  # fmt: skip
    """The exact kNN graph on the CUDA device (:func:`gpuvec.ops.knn`, CuPy: a cuBLAS GEMM
    and the top-k kernel per block of rows), each row's own id dropped; the same graph as
    the exact twin (ties by lower row)."""
    from gpuvec import ops

    n = len(x)
    base = ops.to_device(x)
    norms = ops.sq_norms(base)
    out = np.empty((n, k), np.int32)
    step = DEVICE_BLOCK_ROWS
    for a in range(0, n, step):
        blk = base[a : a + step]
        _, rows = ops.knn(base, blk, k + 1, metric, base_sq_norms=norms)
        own = rows == np.arange(a, a + len(rows))[:, None]
        keep = ~own
        keep[~own.any(axis=1), k] = False  # the row itself not among the k + 1: drop the last
        out[a : a + len(rows)] = rows[keep].reshape(len(rows), k)
        if progress is not None:
            progress(min(a + step, n), n)
    return out


def knn_graph(
    x: np.ndarray,
    k: int,
    metric: str,
    *,
    algo: str = "IVF_PQ",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The (approximate) ``k`` nearest other rows of every row of ``x``: int32 ``[n, k]``,
    best first (ties by lower row), never the row itself, no duplicates (module docstring).
    ``progress(done, total)`` is called after each block of rows."""
    x = _vectors(x)
    metric = _metric(metric)
    n = len(x)
    algo = str(algo).upper()
    if algo not in ("IVF_PQ", "NN_DESCENT"):
        raise InvalidArgumentError(f"CAGRA: graph build algo {algo!r} is not IVF_PQ or NN_DESCENT")
    if not 1 <= k < n:
        raise InvalidArgumentError(f"CAGRA: k = {k} must be in [1, {n - 1}] for {n} rows")
    if _on_device():  # the device computes the exact graph: GEMM + top-k per block
        return _device_knn(x, k, metric, progress)
    refine = algo == "NN_DESCENT" and n > EXACT_MAX_ROWS  # an exact graph needs no refining
    total = n * (1 + (NND_ROUNDS if refine else 0))
    if n <= EXACT_MAX_ROWS:
        ids, keys = _exact_knn(x, k, metric, progress, total)
    else:
        ids, keys = _ivf_knn(x, k, metric, seed, progress, total)
    if refine:
        ids = _nn_descent(x, ids, keys, metric, progress, n, total)
    if progress is not None:
        progress(total, total)
    return ids


# --------------------------------------------------------------------------- optimize


def _detour_order(ids: np.ndarray, n: int) -> np.ndarray:
    """Each row's edges sorted by (detour count, rank), stably; ``n`` (no edge) last."""
    m, kk = ids.shape
    ext = np.vstack([ids, np.full((1, kk), n, np.int32)])
    dt = np.uint8 if kk <= 255 else np.uint16
    ranks = np.arange(kk, dtype=dt)
    mx = np.maximum.outer(ranks, ranks)  # [a, c]: the detour i→z_a→w beats rank b > max(a, c)
    step = _block_rows(kk * kk, max(1, TABLE_BYTES // (n + 1)))
    table = np.zeros(step * (n + 1), dt)  # per block row: the rank of each id in its list
    det = np.empty((m, kk), np.int64)
    for a in range(0, m, step):
        blk = ids[a : a + step]
        b = len(blk)
        base = (np.arange(b, dtype=np.int32) * (n + 1))[:, None]  # n < 2**31 - 1
        pos = base + blk
        table[pos] = ranks[None, :]
        table[base[:, 0] + n] = 0  # "no edge" never counts
        two = np.take(ext, blk, axis=0)  # two[r, a, c] = w = knn[knn[i, a], c]
        two += base[:, :, None]
        rk = table[two]  # the rank of w in i's list (0: absent)
        rk *= rk > mx[None, :, :]  # a miss reads rank 0, and rank 0 has no detours
        hits = np.flatnonzero(rk)  # a small share of the K² paths
        flat = (hits // (kk * kk)) * kk + rk.reshape(-1)[hits]
        det[a : a + b] = np.bincount(flat, minlength=b * kk).reshape(b, kk)
        table[pos] = 0
    det[ids >= n] = np.iinfo(np.int64).max
    order = np.argsort(det, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1)


def optimize(knn: np.ndarray, graph_degree: int) -> np.ndarray:
    """CAGRA's optimisation of an initial kNN graph (int32 ``[n, K]``, best first; -1 = no
    edge) into int32 ``[n, graph_degree]`` (module docstring). Rows are padded with other ids
    (from ``i + 1`` upward, cyclically) if they lack entries; -1 only where
    ``n <= graph_degree``."""
    g = np.asarray(knn)
    if g.ndim != 2:
        raise InvalidArgumentError(f"CAGRA: knn graph must be 2-D, got {g.shape}")
    n, kk = g.shape
    g = _graph(g, n)
    if not 1 <= graph_degree <= kk:
        raise InvalidArgumentError(
            f"CAGRA: graph_degree = {graph_degree} must be in [1, {kk}] (the kNN degree)"
        )
    ids = g.copy()
    ids[(ids < 0) | (ids == np.arange(n, dtype=np.int32)[:, None])] = n
    reordered = _detour_order(ids, n)
    h = graph_degree // 2
    rev = _reverse(reordered[:, :h], n, h)
    out = np.empty((n, graph_degree), np.int32)
    width = h + h + (kk - h)
    step = _block_rows(4 * width)
    lacking = []
    for a in range(0, n, step):
        r = reordered[a : a + step]
        cand = np.concatenate([r[:, :h], rev[a : a + step], r[:, h:]], axis=1)
        cand[cand == np.arange(a, a + len(r))[:, None]] = n
        merged, count = _first_unique(cand, n)
        out[a : a + len(r)] = merged[:, :graph_degree]
        lacking.extend((np.flatnonzero(count < graph_degree) + a).tolist())
    for i in lacking:  # tiny graphs or -1 in the input: other ids from i + 1, cyclically
        row = out[i]
        have = set(row[row < n].tolist())
        others = (j for j in ((i + t) % n for t in range(1, n)) if j not in have)
        fill = list(itertools.islice(others, graph_degree - len(have)))
        row[len(have) : len(have) + len(fill)] = fill
    out[out >= n] = -1
    return out
