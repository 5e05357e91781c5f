"""Sparse-vector search: the exact scan of a segment's rows and SPARSE_INVERTED_INDEX /
SPARSE_WAND (and AUTOINDEX) on SPARSE_FLOAT_VECTOR fields, metric IP.

Both compute the same scores: the inner product of the query with each row, over the
dimensions they share. A row that shares no dimension with the query is no candidate (it
is never returned, as in Milvus, whose sparse search only visits the posting lists of the
query's dimensions). Ties go to the lower row, empty slots are ``row = -1`` with
``dist = -inf`` (:mod:`gpuvec.index.base`).

The index is the segment's rows transposed: for each dimension, the rows holding it and
their values (CSC). A search reads only the posting lists of the query's dimensions and
accumulates them; ``drop_ratio_build`` leaves the smallest fraction of the segment's values
out of the lists, ``drop_ratio_search`` the smallest fraction of each query's values out of
the search. ``inverted_index_algo`` (TAAT_NAIVE, DAAT_WAND, DAAT_MAXSCORE) names Milvus's
traversal orders: all of them give these exact scores here (the accumulation is vectorised
over whole lists), and ``describe`` says so. Sparse search runs on the host: posting-list
accumulation is memory-bound scatter work that a GPU does not win at segment sizes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.sparse import SparseRows

__all__ = ["SparseIndex", "drop_small", "exact_search", "top_k"]

SPARSE_INDEX_TYPES = ("SPARSE_INVERTED_INDEX", "SPARSE_WAND")


def drop_small(idx: np.ndarray, val: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """One query without the smallest ``ratio`` of its values (by magnitude)."""
    if ratio <= 0 or len(val) < 2:
        return idx, val
    cut = int(len(val) * ratio)
    if cut <= 0:
        return idx, val
    keep = np.sort(np.argsort(np.abs(val), kind="stable")[cut:])
    return idx[keep], val[keep]


def top_k(scores: np.ndarray, touched: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of ``scores`` among the ``touched`` rows (descending, ties by the
    lower row), padded with ``-inf`` / -1."""
    dist = np.full(k, -np.inf, np.float32)
    rows = np.full(k, -1, np.int64)
    cand = np.flatnonzero(touched)
    if len(cand):
        s = scores[cand]
        if len(cand) > k:  # the k best, and among rows tied with the k-th the lowest
            kth = s[np.argpartition(-s, k - 1)[k - 1]]
            pick = np.flatnonzero(s > kth)
            tied = np.flatnonzero(s == kth)[: k - len(pick)]  # cand is increasing
            sel = np.concatenate([pick, tied])
            cand, s = cand[sel], s[sel]
        order = np.lexsort((cand, -s))[:k]
        dist[: len(order)], rows[: len(order)] = s[order], cand[order]
    return dist, rows


def bm25_tf(tf: np.ndarray, lengths: np.ndarray, bm25: tuple[float, float, float]) -> np.ndarray:
    """BM25's saturated term frequency of postings ``tf`` in rows of ``lengths`` tokens
    (``bm25`` = k1, b, avgdl; :mod:`gpuvec.text.bm25`)."""
    k1, b, avgdl = bm25
    tf = tf.astype(np.float64)
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / max(avgdl, 1.0)))  # as knowhere


def exact_search(
    base: SparseRows, queries: SparseRows, k: int, valid: np.ndarray | None = None,
    drop_ratio: float = 0.0, bm25: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-``k`` rows of ``base`` per query (the reference scan): by inner product, or with
    ``bm25`` (k1, b, avgdl) by BM25 — the query's values then being its terms' weights."""
    n, nnz = len(base), base.nnz
    dist = np.full((len(queries), k), -np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    if not n or not nnz:
        return dist, rows
    idx_all, val_all, row_ids = base.indices[:nnz], base.values[:nnz], base.row_ids()
    if bm25 is not None:  # each posting's saturated tf, once for every query
        lengths = np.bincount(row_ids, weights=val_all, minlength=n)
        val_all = bm25_tf(val_all, lengths[row_ids], bm25)
    for qi in range(len(queries)):
        q_idx, q_val = drop_small(*queries.row(qi), drop_ratio)
        if not len(q_idx):
            continue
        pos = np.searchsorted(q_idx, idx_all)
        pos[pos >= len(q_idx)] = 0
        hit = q_idx[pos] == idx_all
        scores = np.bincount(row_ids[hit], weights=val_all[hit].astype(np.float64)
                             * q_val[pos[hit]], minlength=n)  # fmt: skip
        touched = np.bincount(row_ids[hit], minlength=n) > 0
        if valid is not None:
            touched &= valid[:n]
        dist[qi], rows[qi] = top_k(scores.astype(np.float32), touched, k)
    return dist, rows


class SparseIndex:
    """A segment's sparse rows as posting lists per dimension (module docstring)."""

    impl = "sparse"

    def __init__(self, index_type: str, metric: str, dims: np.ndarray, offsets: np.ndarray,
                 rows: np.ndarray, values: np.ndarray, n: int,
                 params: dict[str, Any] | None = None,
                 lengths: np.ndarray | None = None) -> None:  # fmt: skip
        self.index_type, self.metric = index_type, metric
        self.dims, self.offsets, self.rows, self.values = dims, offsets, rows, values
        self.ntotal, self.dim = int(n), 0
        self.params = dict(params or {})
        # each row's length (the sum of its values, before drop_ratio_build): BM25's len(d)
        self.lengths = np.zeros(n) if lengths is None else np.asarray(lengths, np.float64)

    @classmethod
    def build(cls, index_type: str, base: SparseRows, metric: str,
              params: dict[str, Any] | None = None) -> SparseIndex:  # fmt: skip
        params = dict(params or {})
        metric = str(metric).upper()
        if metric not in ("IP", "BM25"):
            raise InvalidArgumentError(
                f"sparse index {index_type}: metric {metric} is not supported; sparse float "
                "vectors take IP or BM25"
            )
        nnz = base.nnz
        idx, val, row = base.indices[:nnz], base.values[:nnz], base.row_ids()
        lengths = np.bincount(row, weights=val, minlength=len(base))
        ratio = float(params.get("drop_ratio_build", 0) or 0)
        if ratio > 0 and nnz:
            cut = np.quantile(np.abs(val), ratio)
            keep = np.abs(val) >= cut
            idx, val, row = idx[keep], val[keep], row[keep]
        order = np.argsort(idx, kind="stable")  # by dimension, rows increasing within one
        idx, val, row = idx[order], val[order], row[order]
        dims, starts = np.unique(idx, return_index=True)
        offsets = np.append(starts, len(idx)).astype(np.int64)
        return cls(index_type, metric, dims.astype(np.uint32), offsets, row.astype(np.int64),
                   val.astype(np.float32), len(base), params, lengths)  # fmt: skip

    def search(
        self, queries: SparseRows, k: int, search_params: dict[str, Any] | None = None, *,
        valid: np.ndarray | None = None, **_: Any,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Top-``k`` rows per query among ``valid`` rows: by inner product, or by BM25 when
        ``search_params`` carry ``bm25_avgdl`` (the query's values then being its terms'
        weights; ``bm25_k1`` / ``bm25_b`` from the build params)."""
        sp = search_params or {}
        ratio = float(sp.get("drop_ratio_search", 0) or 0)
        bm25 = None
        if sp.get("bm25_avgdl") is not None:
            bm25 = (float(self.params.get("bm25_k1", 1.2)), float(self.params.get("bm25_b", 0.75)),
                    float(sp["bm25_avgdl"]))  # fmt: skip
        n = self.ntotal
        dist = np.full((len(queries), k), -np.inf, np.float32)
        out = np.full((len(queries), k), -1, np.int64)
        for qi in range(len(queries)):
            q_idx, q_val = drop_small(*queries.row(qi), ratio)
            pos = np.searchsorted(self.dims, q_idx)
            pos[pos >= len(self.dims)] = 0
            found = self.dims[pos] == q_idx if len(self.dims) else np.zeros(len(q_idx), bool)
            if not found.any():
                continue
            spans = [(int(self.offsets[p]), int(self.offsets[p + 1])) for p in pos[found]]
            rows = np.concatenate([self.rows[a:b] for a, b in spans])
            lens = np.array([b - a for a, b in spans])
            weights = np.concatenate([self.values[a:b] for a, b in spans]).astype(np.float64)
            if bm25 is not None:
                weights = bm25_tf(weights, self.lengths[rows], bm25)
            weights *= np.repeat(q_val[found].astype(np.float64), lens)
            scores = np.bincount(rows, weights=weights, minlength=n).astype(np.float32)
            touched = np.zeros(n, bool)
            touched[rows] = True
            if valid is not None:
                touched &= valid[:n]
            dist[qi], out[qi] = top_k(scores, touched, k)
        return dist, out

    @property
    def nbytes(self) -> int:
        return int(self.dims.nbytes + self.offsets.nbytes + self.rows.nbytes
                   + self.values.nbytes)  # fmt: skip

    def describe(self) -> dict[str, Any]:
        algo = str(self.params.get("inverted_index_algo", "DAAT_MAXSCORE"))
        return {
            "index_type": self.index_type,
            "metric_type": self.metric,
            "rows": self.ntotal,
            "dimensions": len(self.dims),
            "postings": len(self.rows),
            "nbytes": self.nbytes,
            "backend": f"gpuvec posting lists, CPU (exact scores; {algo} traversal order "
                       "gives the same results)",
        }  # fmt: skip

    def header_extra(self) -> dict[str, Any]:
        return {}

    def payload(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, dims=self.dims, offsets=self.offsets, rows=self.rows, values=self.values,
                 lengths=self.lengths)
        return buf.getvalue()

    @classmethod
    def from_payload(cls, header: dict[str, Any], payload: bytes) -> SparseIndex:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = (z["dims"], z["offsets"], z["rows"], z["values"])
            lengths = z["lengths"] if "lengths" in z.files else None
        return cls(header["index_type"], header["metric_type"], *arrays, int(header["rows"]),
                   header.get("params"), lengths)
