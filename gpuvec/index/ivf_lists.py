"""IVF-Flat inverted lists in CSR form: gpuvec's own IVF layout, its exact twin search and
its move into faiss-cpu.

Owns :class:`IvfLists`. The layout is what a device list-scan reads in one pass:

    centroids  float32 [nlist, dim]     the coarse quantizer (trained by gpuvec.ops.kmeans)
    offsets    int64   [nlist + 1]      list l holds rows offsets[l] .. offsets[l+1]
    ids        int64   [n]              each stored row's number in the segment
    vectors    float32|float16 [n, dim] the rows, packed list after list

Rows are stored by list, and within a list in increasing row number. ``metric`` is "L2"
(squared distances, smaller is nearer) or "IP" (inner products, larger is nearer;
COSINE arrives here as IP over normalised rows).

:meth:`IvfLists.search` is the NumPy twin of the GPU list scan and the reference its tests
compare against: probe the ``nprobe`` nearest centroids (ties: lower list number), score
every row of those lists that ``valid`` lets through, keep the ``k`` best ordered by
(score, row number). :meth:`IvfLists.to_faiss` moves the same centroids and lists into a
``faiss.IndexIVFFlat`` — no retraining, no reassignment — so a CPU node serves a
GPU-built index at faiss speed with the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.ops.kmeans import assign

__all__ = ["IvfLists"]


def _nearest_first(scores: np.ndarray, count: int, larger: bool) -> np.ndarray:
    """Column numbers of each row's ``count`` best scores, best first; ties by column."""
    cols = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((cols, -scores if larger else scores), axis=-1)[:, :count]


def csr_order(labels: np.ndarray, nlist: int) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers by list then increasing, ``[nlist + 1]`` offsets) of list ``labels``."""
    order = np.argsort(labels, kind="stable").astype(np.int64)
    offsets = np.zeros(nlist + 1, np.int64)
    np.cumsum(np.bincount(labels, minlength=nlist), out=offsets[1:])
    return order, offsets


class CoarseLists:
    """What every IVF layout here shares: centroids, CSR offsets and ids, the probe."""

    metric: str
    centroids: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def ntotal(self) -> int:
        return int(self.ids.shape[0])

    def list_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def probe(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """The ``nprobe`` lists each query scans (``[nq, nprobe]``, nearest first; ties to
        the lower list)."""
        q = np.asarray(queries, np.float32)
        c = self.centroids
        scores = q @ c.T
        if self.metric == "L2":
            scores = (c * c).sum(axis=1)[None, :] - 2.0 * scores
        return _nearest_first(scores, min(nprobe, self.nlist), self.metric == "IP")


@dataclass
class IvfLists(CoarseLists):
    """Inverted lists in CSR form (module docstring)."""

    metric: str
    centroids: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray

    @classmethod
    def fill(
        cls,
        x: np.ndarray,
        centroids: np.ndarray,
        metric: str,
        dtype: Any = np.float32,
        labels: np.ndarray | None = None,
    ) -> IvfLists:
        """Assign every row of ``x`` to its nearest centroid (or take ``labels``, computed
        elsewhere — on the device) and pack the lists; ``dtype`` float16 halves the stored
        bytes."""
        metric = str(metric).upper()
        if metric not in ("L2", "IP"):
            raise InvalidArgumentError(f"IVF lists: metric {metric!r} is not L2 or IP")
        if np.dtype(dtype) not in (np.float32, np.float16):
            raise InvalidArgumentError(f"IVF lists store float32 or float16, not {dtype}")
        x = np.asarray(x, np.float32)
        cent = np.ascontiguousarray(centroids, np.float32)
        if x.ndim != 2 or x.shape[1] != cent.shape[1]:
            raise InvalidArgumentError(
                f"IVF lists: vectors {x.shape} do not match centroids {cent.shape}"
            )
        if labels is None:
            labels = np.asarray(assign(x, cent, metric))
        labels = np.asarray(labels, np.int64)
        if labels.shape != (x.shape[0],) or (
            len(labels) and not 0 <= labels.min() <= labels.max() < len(cent)
        ):
            raise InvalidArgumentError(
                f"IVF lists: labels must be {x.shape[0]} list numbers below {len(cent)}"
            )
        order, offsets = csr_order(labels, len(cent))
        return cls(metric, cent, offsets, order, np.ascontiguousarray(x[order], dtype=dtype))

    # --- the twin ---------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, nprobe: int, valid: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, row numbers)`` ``[nq, k]``: faiss's conventions (L2: squared
        distances ascending; IP: inner products descending), padded with (+inf / -inf, -1).
        ``valid``: a bool mask over row numbers (alive and passing the filter)."""
        q = np.asarray(queries, np.float32)
        nq = q.shape[0]
        larger = self.metric == "IP"
        pad = -np.inf if larger else np.inf
        out_s = np.full((nq, k), pad, np.float32)
        out_i = np.full((nq, k), -1, np.int64)
        lists = self.probe(q, nprobe)
        for r in range(nq):
            rows = np.concatenate(
                [np.arange(self.offsets[lst], self.offsets[lst + 1]) for lst in lists[r]]
            ) if len(lists[r]) else np.empty(0, np.int64)  # fmt: skip
            ids = self.ids[rows]
            if valid is not None:
                keep = valid[ids]
                rows, ids = rows[keep], ids[keep]
            if not len(rows):
                continue
            v = self.vectors[rows].astype(np.float32)
            if larger:
                s = v @ q[r]
            else:
                diff = v - q[r]
                s = np.einsum("ij,ij->i", diff, diff)
            best = np.lexsort((ids, -s if larger else s))[:k]
            out_s[r, : len(best)] = s[best]
            out_i[r, : len(best)] = ids[best]
        return out_s, out_i

    # --- faiss -----------------------------------------------------------------------------
    def to_faiss(self) -> Any:
        """A ``faiss.IndexIVFFlat`` holding these centroids and lists (float32 rows)."""
        from gpuvec.index.threads import faiss_module

        faiss = faiss_module()
        metric = faiss.METRIC_L2 if self.metric == "L2" else faiss.METRIC_INNER_PRODUCT
        index = faiss.index_factory(self.dim, f"IVF{self.nlist},Flat", metric)
        ivf = faiss.extract_index_ivf(index)
        ivf.quantizer.add(self.centroids)
        ivf.is_trained = True
        vec = np.ascontiguousarray(self.vectors, np.float32)
        ids = np.ascontiguousarray(self.ids, np.int64)
        invlists = ivf.invlists
        for lst in np.flatnonzero(self.list_sizes()):
            a, b = int(self.offsets[lst]), int(self.offsets[lst + 1])
            codes = vec[a:b].view(np.uint8)
            invlists.add_entries(int(lst), b - a, faiss.swig_ptr(ids[a:b]),
                                 faiss.swig_ptr(codes))  # fmt: skip
        ivf.ntotal = self.ntotal
        index.ntotal = self.ntotal
        return index
