"""IVF-PQ: gpuvec's own product-quantised inverted lists, their exact twin search and
their move into faiss-cpu.

Owns :class:`IvfPq`. Layout (CSR, as :mod:`gpuvec.index.ivf_lists`):

    centroids  float32 [nlist, dim]          coarse quantizer (gpuvec.ops.kmeans)
    codebooks  float32 [m, 2**nbits, dsub]   one per sub-space (dsub = dim / m)
    offsets    int64   [nlist + 1]
    ids        int64   [n]                   row numbers, by list then increasing
    codes      uint8   [n, m]                code j of a row = its sub-space j centroid

Rows are encoded *by residual* (as faiss's IndexIVFPQ): sub-vector j of ``x − c_list`` is
replaced by its nearest codebook entry (L2, ties to the lower entry). Scores use faiss's
conventions: L2 ``‖q − c − r̂‖²`` (smaller nearer); IP ``q·c + q·r̂`` (larger nearer;
COSINE arrives as IP over normalised rows).

:meth:`IvfPq.search` is the NumPy twin of a GPU look-up-table scan: for each probed list
one table ``[m, 2**nbits]`` of sub-space scores (``‖q_j − (c_j + b)‖²`` or ``q_j·b``),
each row's score the sum of its ``m`` table entries; ``refine_ratio > 1`` re-scores the
``ceil(k · ratio)`` best by PQ exactly on the raw rows. :meth:`IvfPq.to_faiss` moves the
centroids, codebooks, lists and codes (bit-packed as faiss packs them) into a
``faiss.IndexIVFPQ`` unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.ivf_lists import CoarseLists, csr_order
from gpuvec.ops.backend import array_module, to_host
from gpuvec.ops.kmeans import assign, kmeans

__all__ = ["IvfPq", "pack_codes"]


def pack_codes(codes: np.ndarray, nbits: int) -> np.ndarray:
    """``[n, m]`` codes of ``nbits`` bits → faiss's byte layout: code j at bits
    ``[j·nbits, (j+1)·nbits)`` of the row's bit string, least significant bit first."""
    n, m = codes.shape
    if nbits == 8:
        return np.ascontiguousarray(codes, np.uint8)
    bits = ((codes[:, :, None].astype(np.uint16) >> np.arange(nbits)) & 1).astype(np.uint8)
    flat = bits.reshape(n, m * nbits)
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = np.concatenate([flat, np.zeros((n, pad), np.uint8)], axis=1)
    return np.packbits(flat, axis=1, bitorder="little")


def _sub_l2(a: Any, b: Any) -> Any:
    """``[len(a), len(b)]`` squared L2 distances (float32 GEMM form), on ``a``'s module."""
    return (a * a).sum(1)[:, None] - 2.0 * (a @ b.T) + (b * b).sum(1)[None, :]


@dataclass
class IvfPq(CoarseLists):
    """Product-quantised inverted lists (module docstring)."""

    metric: str
    nbits: int
    centroids: np.ndarray
    codebooks: np.ndarray
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    codes: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.uint8))

    @property
    def m(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def dsub(self) -> int:
        return int(self.codebooks.shape[2])

    # --- build -----------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        x: np.ndarray,
        nlist: int,
        m: int,
        nbits: int,
        metric: str,
        *,
        iters: int = 20,
        seed: int = 0,
        centroids: np.ndarray | None = None,
    ) -> IvfPq:
        """Coarse centroids (k-means, or ``centroids`` given) and one codebook per
        sub-space trained on the training rows' residuals. ``x`` may be a CuPy array:
        every k-means then runs on the device; the trained arrays come back to the host."""
        metric = str(metric).upper()
        if metric not in ("L2", "IP"):
            raise InvalidArgumentError(f"IVF-PQ: metric {metric!r} is not L2 or IP")
        xp = array_module(x)
        x = xp.ascontiguousarray(xp.asarray(x, dtype=xp.float32))
        n, dim = x.shape
        if m < 1 or dim % m:
            raise InvalidArgumentError(f"IVF-PQ: m = {m} must divide dim = {dim}")
        if not 1 <= nbits <= 8:
            raise InvalidArgumentError(f"IVF-PQ: nbits = {nbits} must be in [1, 8]")
        ksub, dsub = 1 << nbits, dim // m
        if n < ksub:
            raise InvalidArgumentError(
                f"IVF-PQ: {n} training rows cannot train {ksub} codes (nbits = {nbits})"
            )
        if centroids is None:
            centroids = kmeans(x, nlist, metric=metric, iters=iters, seed=seed).centroids
        cent = xp.ascontiguousarray(xp.asarray(centroids, dtype=xp.float32))
        res = x - cent[assign(x, cent, metric)]
        books = np.empty((m, ksub, dsub), np.float32)
        for j in range(m):
            sub = xp.ascontiguousarray(res[:, j * dsub : (j + 1) * dsub])
            books[j] = to_host(kmeans(sub, ksub, iters=iters, seed=seed + 1 + j).centroids)
        return cls(metric, nbits, to_host(cent), books)

    def encode(self, residuals: Any) -> np.ndarray:
        """``[n, m]`` uint8 codes of residual rows (nearest entry per sub-space; NumPy or
        CuPy rows, host codes)."""
        xp = array_module(residuals)
        r = xp.asarray(residuals, dtype=xp.float32)
        books = xp.asarray(self.codebooks)
        out = np.empty((len(r), self.m), np.uint8)
        for j in range(self.m):
            sub = r[:, j * self.dsub : (j + 1) * self.dsub]
            out[:, j] = to_host(xp.argmin(_sub_l2(sub, books[j]), axis=1))
        return out

    def fill(self, x: Any, labels: np.ndarray | None = None) -> IvfPq:
        """Assign (or take ``labels``), encode and pack every row of ``x`` (NumPy, or CuPy:
        assigned and encoded on the device); returns self."""
        xp = array_module(x)
        x = xp.ascontiguousarray(xp.asarray(x, dtype=xp.float32))
        cent = xp.asarray(self.centroids)
        if labels is None:
            labels = to_host(assign(x, cent, self.metric))
        labels = np.asarray(labels, np.int64)
        bad = len(labels) and not 0 <= labels.min() <= labels.max() < self.nlist
        if labels.shape != (len(x),) or bad:
            raise InvalidArgumentError(
                f"IVF-PQ: labels must be {len(x)} list numbers below {self.nlist}"
            )
        order, self.offsets = csr_order(labels, self.nlist)
        self.ids = order
        self.codes = np.empty((len(order), self.m), np.uint8)
        step = 1 << 16  # rows encoded at a time: bounded [step, 2**nbits] score blocks
        for a in range(0, len(order), step):
            rows = order[a : a + step]
            sel = xp.asarray(rows)
            lab = xp.asarray(labels[rows])
            self.codes[a : a + step] = self.encode(x[sel] - cent[lab])
        return self

    # --- the twin ---------------------------------------------------------------------------
    def _table(self, q: np.ndarray, lst: int) -> np.ndarray:
        """``[m, ksub]`` sub-space scores of one query for one list."""
        t = np.empty((self.m, self.codebooks.shape[1]), np.float32)
        base = q - self.centroids[lst] if self.metric == "L2" else q
        for j in range(self.m):
            qj = base[j * self.dsub : (j + 1) * self.dsub]
            if self.metric == "L2":
                diff = self.codebooks[j] - qj
                t[j] = np.einsum("ij,ij->i", diff, diff)
            else:
                t[j] = self.codebooks[j] @ qj
        return t

    def search(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int,
        valid: np.ndarray | None = None,
        *,
        refine_ratio: float = 1.0,
        base: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, row numbers)`` ``[nq, k]`` in faiss's conventions, padded with
        (±inf, -1); with ``refine_ratio > 1`` and ``base`` (the raw rows by row number)
        the scores of the returned rows are exact."""
        q = np.asarray(queries, np.float32)
        nq, larger = q.shape[0], self.metric == "IP"
        want = max(k, math.ceil(k * refine_ratio)) if base is not None else k
        pad = -np.inf if larger else np.inf
        out_s = np.full((nq, k), pad, np.float32)
        out_i = np.full((nq, k), -1, np.int64)
        lists = self.probe(q, nprobe)
        cols = np.arange(self.m)
        for r in range(nq):
            got_s, got_i = [], []
            for lst in lists[r]:
                a, b = int(self.offsets[lst]), int(self.offsets[lst + 1])
                ids = self.ids[a:b]
                codes = self.codes[a:b]
                if valid is not None:
                    keep = valid[ids]
                    ids, codes = ids[keep], codes[keep]
                if not len(ids):
                    continue
                s = self._table(q[r], int(lst))[cols[None, :], codes].sum(axis=1)
                if larger:
                    s = s + float(q[r] @ self.centroids[lst])
                got_s.append(s.astype(np.float32))
                got_i.append(ids)
            if not got_s:
                continue
            s, ids = np.concatenate(got_s), np.concatenate(got_i)
            best = np.lexsort((ids, -s if larger else s))[:want]
            s, ids = s[best], ids[best]
            if want > k:  # refine: exact scores of the PQ candidates on the raw rows
                raw = np.asarray(base, np.float32)[ids]
                s = raw @ q[r] if larger else np.einsum("ij,ij->i", raw - q[r], raw - q[r])
                s = s.astype(np.float32)
                keep = np.lexsort((ids, -s if larger else s))[:k]
                s, ids = s[keep], ids[keep]
            out_s[r, : len(ids)] = s
            out_i[r, : len(ids)] = ids
        return out_s, out_i

    # --- faiss -----------------------------------------------------------------------------
    def to_faiss(self) -> Any:
        """A ``faiss.IndexIVFPQ`` holding these centroids, codebooks, lists and codes."""
        from gpuvec.index.threads import faiss_module

        faiss = faiss_module()
        metric = faiss.METRIC_L2 if self.metric == "L2" else faiss.METRIC_INNER_PRODUCT
        spec = f"IVF{self.nlist},PQ{self.m}x{self.nbits}np"
        index = faiss.index_factory(self.dim, spec, metric)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.quantizer.add(self.centroids)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.codebooks).ravel(), ivf.pq.centroids)
        ivf.is_trained = True
        if self.metric == "L2":  # as faiss's own training does: the per-list term tables
            ivf.precompute_table()
        packed = pack_codes(self.codes, self.nbits)
        ids = np.ascontiguousarray(self.ids, np.int64)
        for lst in np.flatnonzero(np.diff(self.offsets)):
            a, b = int(self.offsets[lst]), int(self.offsets[lst + 1])
            ivf.invlists.add_entries(int(lst), b - a, faiss.swig_ptr(ids[a:b]),
                                     faiss.swig_ptr(np.ascontiguousarray(packed[a:b])))  # fmt: skip
        ivf.ntotal = self.ntotal
        index.ntotal = self.ntotal
        return index
