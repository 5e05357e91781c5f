"""The SPARSE_FLOAT_VECTOR part of a segment's data (a base class of
:class:`gpuvec.query.segdata.SegmentData`): a sparse field's rows in CSR form (kept as a
prefix extended as rows arrive), its search — the built index of a sealed segment, else
the exact scan — with IP or BM25 and range search, and the segment's part of BM25's
statistics (:mod:`gpuvec.query.bm25`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.index import sparse as sparse_index
from gpuvec.records import Hits
from gpuvec.sparse import SparseRows

__all__ = ["SparseSegment"]


class SparseSegment:
    """Mixed into SegmentData, whose ``n``, ``vis``, ``sealed``, ``indexes``, ``table()``
    and ``_sparse`` it uses."""

    n: int
    vis: Any
    sealed: bool
    indexes: dict[str, tuple[str, Any]]
    _sparse: dict[str, SparseRows]

    def table(self) -> pa.Table: ...

    def sparse_rows(self, field: str, n: int) -> SparseRows:
        """The first ``n`` rows of a SPARSE_FLOAT_VECTOR field in CSR form, kept as a prefix
        that later reads extend by the rows it lacks (rows never change once appended)."""
        got = self._sparse.get(field)
        have = 0 if got is None else len(got)
        if got is None or have < n:
            column = self.table().column(field).slice(have, n - have)
            tail = SparseRows.from_cells(column)
            got = tail if got is None else got.extended(tail)
            self._sparse[field] = got
        return got if len(got) == n else got.head(n)

    def _sparse_search(
        self, field: str, queries: SparseRows, k: int, metric: str, read_ts: int,
        extra_mask: np.ndarray | None, sp: dict[str, Any], n: int,
    ) -> Hits:  # fmt: skip
        """Top-k by inner product over the visible rows: the built index of a sealed
        segment, else the exact scan of the rows (growing segments)."""
        valid = self.vis.mask(read_ts)[:n]
        if extra_mask is not None:
            valid = valid & extra_mask
        if sp.get("radius") is not None:
            return self._sparse_range(field, queries, k, valid, sp, n)
        ratio = float(sp.get("drop_ratio_search", 0) or 0)
        bm25 = None
        if metric == "BM25":  # the runtime put the collection's statistics in (text.bm25)
            bm25 = (float(sp["bm25_k1"]), float(sp["bm25_b"]), float(sp["bm25_avgdl"]))
        if self.sealed and field in self.indexes and self.indexes[field][1].ntotal == n:
            index = self.indexes[field][1]
            knobs = {"drop_ratio_search": ratio}
            if bm25 is not None:
                knobs["bm25_avgdl"] = bm25[2]
            dist, rows = index.search(queries, k, knobs, valid=None if valid.all() else valid)
            return Hits(dist, rows)
        return Hits(*sparse_index.exact_search(self.sparse_rows(field, n), queries, k, valid,
                                               ratio, bm25))  # fmt: skip

    def bm25_stats(self, field: str, dims: np.ndarray, read_ts: int) -> tuple[int, float, Any]:
        """This segment's part of BM25's statistics over its rows visible at ``read_ts``:
        (rows, their total length, how many hold each of ``dims`` — sorted term ids).
        A sealed segment whose every row is visible answers from its index: the posting
        lists' lengths and the rows' lengths it keeps."""
        n = self.n
        index = self.indexes.get(field, (None, None))[1] if self.sealed else None
        vis = self.vis
        if (index is not None and getattr(index, "lengths", None) is not None
                and index.ntotal == n and vis.max_del == 0 and read_ts >= vis.max_ins
                and not float(index.params.get("drop_ratio_build", 0) or 0)):  # fmt: skip
            pos = np.searchsorted(index.dims, dims)
            pos[pos >= len(index.dims)] = 0
            found = index.dims[pos] == dims if len(index.dims) else np.zeros(len(dims), bool)
            df = np.where(found, index.offsets[pos + 1] - index.offsets[pos], 0).astype(np.int64)
            return n, float(index.lengths.sum()), df
        rows = self.sparse_rows(field, n)
        visible = self.vis.mask(read_ts)[:n]
        nnz = rows.nnz
        row_ids = rows.row_ids()
        keep = visible[row_ids]
        idx, val = rows.indices[:nnz][keep], rows.values[:nnz][keep]
        total = float(val.astype(np.float64).sum())
        df = np.zeros(len(dims), np.int64)
        if len(dims) and len(idx):
            pos = np.searchsorted(dims, idx)
            pos[pos >= len(dims)] = 0
            hit = dims[pos] == idx
            df = np.bincount(pos[hit], minlength=len(dims)).astype(np.int64)
        return int(visible.sum()), total, df

    def _sparse_range(self, field: str, queries: SparseRows, k: int, valid: np.ndarray,
                      sp: dict[str, Any], n: int) -> Hits:  # fmt: skip
        """IP range search: ``radius < score <= range_filter``, the best ``k``."""
        radius, top = float(sp["radius"]), sp.get("range_filter")
        base = self.sparse_rows(field, n)
        dist, rows = sparse_index.exact_search(base, queries, n or 1, valid,
                                               float(sp.get("drop_ratio_search", 0) or 0))
        keep = (dist > radius) & (rows >= 0)
        if top is not None:
            keep &= dist <= float(top)
        out_d = np.full((len(queries), k), -np.inf, np.float32)
        out_r = np.full((len(queries), k), -1, np.int64)
        for q in range(len(queries)):
            sel = np.flatnonzero(keep[q])[:k]
            out_d[q, : len(sel)], out_r[q, : len(sel)] = dist[q, sel], rows[q, sel]
        return Hits(out_d, out_r)

