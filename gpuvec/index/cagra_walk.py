"""CAGRA's search, the NumPy twin (arXiv 2308.15136 §4; the device kernel is
``kernels/cagra_search.cu``): batched over queries, each query walks a CAGRA graph
(:mod:`gpuvec.index.cagra_graph`) from pseudo-random start rows (:func:`start_rows`, the
rows the device search is given too) with an internal top-``itopk`` buffer: each iteration
expands the ``search_width`` best not-yet-expanded entries, scores their unvisited graph
neighbours and merges them in; it stops when no entry is left to expand (after
``min_iterations``) or after ``max_iterations``. Rows outside ``valid`` are walked
through but never returned. Results: Milvus's conventions (L2 squared distances
ascending, IP descending; padding (±inf, -1); ties by the lower row).
"""

from __future__ import annotations

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.cagra_graph import (
    _EMPTY,
    _LOW,
    _graph,
    _key_dist,
    _key_ids,
    _keys,
    _metric,
    _pair_dist,
    _vectors,
)

__all__ = ["VISITED_BYTES", "search", "start_rows"]

VISITED_BYTES = 1 << 26  # bytes of the per-query visited table per query block


def _sample_rows(seed: int, qids: np.ndarray, m: int, n: int) -> np.ndarray:
    """``m`` pseudo-random rows per query (splitmix64 of seed, query id, sample number)."""
    z = np.full((len(qids), m), seed & 0xFFFF_FFFF_FFFF_FFFF, np.uint64)
    z *= np.uint64(0x9E37_79B9_7F4A_7C15)
    z += (qids.astype(np.uint64) << np.uint64(20))[:, None]
    z += np.arange(m, dtype=np.uint64)[None, :]
    z += np.uint64(0x9E37_79B9_7F4A_7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58_476D_1CE4_E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D0_49BB_1331_11EB)
    z ^= z >> np.uint64(31)
    return (z % np.uint64(n)).astype(np.int64)


def start_rows(seed: int, nq: int, m: int, n: int) -> np.ndarray:
    """The ``m`` rows (int64 ``[nq, m]``) each of ``nq`` queries' walks starts from, as
    :func:`search` draws them — what the device search is given, so both walk alike."""
    return _sample_rows(seed, np.arange(nq), m, n)


class _Walk:
    """The state of one block of queries (the module docstring's search)."""

    def __init__(self, x, q, metric, itopk, k, valid):
        self.x, self.q, self.metric, self.valid = x, q, metric, valid
        nq, n = len(q), len(x)
        self.vis = np.zeros((nq, n), np.uint8)  # 0 unseen, 1 scored, 2 expanded
        self.buf = np.full((nq, itopk), _EMPTY, np.uint64)
        self.res = None if valid is None else np.full((nq, k), _EMPTY, np.uint64)

    def admit(self, act: np.ndarray, cand: np.ndarray) -> None:
        """Score the unvisited candidates (``[len(act), m]``, -1 = none) of queries ``act``
        and merge them into their buffers."""
        c = np.sort(cand, axis=1)
        ok = c >= 0
        ok[:, 1:] &= c[:, 1:] != c[:, :-1]
        ok &= self.vis[act[:, None], np.maximum(c, 0)] == 0
        qi, ji = np.nonzero(ok)
        rows = c[qi, ji]
        self.vis[act[qi], rows] = 1
        d = _pair_dist(self.x, self.q, act[qi], rows, self.metric)
        keys = np.full(c.shape, _EMPTY, np.uint64)
        keys[qi, ji] = _keys(d, rows)
        keys.sort(axis=1)
        width = int(ok.sum(axis=1).max()) if qi.size else 0
        if width == 0:
            return
        keys = keys[:, :width]
        t = self.buf.shape[1]
        self.buf[act] = np.sort(np.concatenate([self.buf[act], keys], axis=1), axis=1)[:, :t]
        if self.res is not None:
            ids = np.where(keys == _EMPTY, 0, keys & _LOW).astype(np.int64)
            keys = np.where(self.valid[ids], keys, _EMPTY)
            kk = self.res.shape[1]
            self.res[act] = np.sort(np.concatenate([self.res[act], keys], axis=1), axis=1)[:, :kk]

    def parents(self, act: np.ndarray, width: int) -> np.ndarray:
        """The ``width`` best unexpanded buffer entries of queries ``act`` (``[len(act),
        width]``, -1 = none), marked expanded."""
        buf = self.buf[act]
        ids = np.where(buf == _EMPTY, 0, buf & _LOW).astype(np.int64)
        cand = (self.vis[act[:, None], ids] == 1) & (buf != _EMPTY)
        cs = np.cumsum(cand, axis=1)
        sel = cand & (cs <= width)
        qi, ji = np.nonzero(sel)
        out = np.full((len(act), width), -1, np.int64)
        out[qi, cs[qi, ji] - 1] = ids[qi, ji]
        self.vis[act[qi], ids[qi, ji]] = 2
        return out


def search(
    x: np.ndarray,
    graph: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    itopk_size: int = 64,
    search_width: int = 1,
    min_iterations: int = 0,
    max_iterations: int = 0,
    valid: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """CAGRA's search of ``graph`` over rows ``x`` for ``queries`` (module docstring).

    The buffer holds ``max(itopk_size, k)`` entries, seeded with ``max(itopk,
    search_width · degree)`` hashed random rows per query (every row when that is at least
    ``n``). A query stops when no unexpanded buffer entry is left (once ``min_iterations``
    have run) or after ``max_iterations`` (0: ``itopk / search_width + 32``). ``valid``
    (bool ``[n]``): invalid rows are walked through but never returned. Returns
    ``(dist float32 [nq, k], rows int64 [nq, k])``: L2 squared distance ascending, IP/COSINE
    the inner product descending; empty slots are row -1 with +inf (L2) / -inf (IP)."""
    x = _vectors(x)
    n, dim = x.shape
    metric = _metric(metric)
    g = _graph(graph, n)
    q = _vectors(queries, "queries")
    if q.shape[1] != dim:
        raise InvalidArgumentError(f"CAGRA: queries have dim {q.shape[1]}, the rows {dim}")
    if k < 1:
        raise InvalidArgumentError(f"CAGRA: k = {k} must be at least 1")
    if search_width < 1 or min_iterations < 0 or max_iterations < 0:
        raise InvalidArgumentError("CAGRA: search_width >= 1, iterations >= 0 required")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool).reshape(-1)
        if len(valid) != n:
            raise InvalidArgumentError(f"CAGRA: valid has {len(valid)} entries, not {n}")
    itopk = max(int(itopk_size), k)
    deg = g.shape[1]
    max_it = max_iterations or itopk // search_width + 32
    max_it = max(max_it, min_iterations)
    ext = np.vstack([g, np.full((1, deg), -1, np.int32)])
    nq = len(q)
    out_keys = np.empty((nq, k), np.uint64)
    step = max(1, min(4096, VISITED_BYTES // n))
    m0 = max(itopk, search_width * deg)
    for a in range(0, nq, step):
        qb = q[a : a + step]
        w = _Walk(x, qb, metric, itopk, k, valid)
        act = np.arange(len(qb))
        if m0 >= n:
            init = np.broadcast_to(np.arange(n, dtype=np.int64), (len(qb), n))
        else:
            init = _sample_rows(seed, np.arange(a, a + len(qb)), m0, n)
        w.admit(act, init)
        for it in range(max_it):
            par = w.parents(act, search_width)
            if it >= min_iterations:
                live = (par >= 0).any(axis=1)
                act, par = act[live], par[live]
            if not act.size:
                break
            w.admit(act, ext[par].reshape(len(act), -1))
        out_keys[a : a + len(qb)] = w.buf[:, :k] if w.res is None else w.res
    rows = _key_ids(out_keys)
    dist = _key_dist(out_keys)
    if metric != "L2":
        dist = np.where(rows < 0, -np.inf, -dist).astype(np.float32)
    return dist, rows
