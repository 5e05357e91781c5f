"""IVF-Flat search on the device: the CuPy path of
:meth:`gpuvec.index.ivf_lists.IvfLists.search` (its NumPy twin).

Owns :class:`DeviceIvfFlat` — the CSR lists (centroids, offsets, ids, float32 or float16
rows) moved to the device once — and its ``search``:

1. coarse step: one cuBLAS GEMM of the queries against the centroids, then the ``nprobe``
   best lists per query (a stable sort of the ``[nq, nlist]`` scores: ties to the lower
   list, as the twin);
2. ``kernels/ivf_flat.cu``: one CUDA block per (query, probed list segment) scores the
   segment's rows into shared memory and selects its top k (fused: no per-row score
   matrix in device memory), the alive/filter mask applied inside the scan;
3. the ``nprobe · segments · k`` candidates of each query go through the top-k rounds of
   ``kernels/topk.cu`` (:func:`gpuvec.ops.gpu.reduce_topk`) and one final sort by
   (score, position).

Results use the twin's conventions (L2: squared distances ascending; IP: inner products
descending; padding (±inf, -1)) and come back to the host. Queries go in batches that
bound the candidate buffers (:data:`CANDIDATE_BYTES`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.ops import gpu

__all__ = ["DeviceIvfFlat"]

THREADS = 256
SEG_LEN = 8192  # rows scored per block: 32 KiB of shared memory
CANDIDATE_BYTES = 256 << 20  # per query batch: (score, id) candidates
MAX_GRID_Y = 65535


def _kernel(storage: str) -> Any:
    from gpuvec.ops.kernels import get_kernel

    return get_kernel("ivf_flat.cu", f"ivf_flat_scan_{storage}")


class DeviceIvfFlat:
    """IVF-Flat lists on the device (module docstring)."""

    def __init__(self, metric: str, centroids: Any, offsets: Any, ids: Any, vectors: Any) -> None:
        import cupy as cp

        metric = str(metric).upper()
        if metric not in ("L2", "IP"):
            raise InvalidArgumentError(f"IVF lists: metric {metric!r} is not L2 or IP")
        vec = np.asarray(vectors) if not isinstance(vectors, cp.ndarray) else vectors
        if vec.dtype == np.float16:
            self.storage = "f16"
            self.vectors = cp.asarray(vec).view(cp.uint16)
        elif vec.dtype == np.float32:
            self.storage = "f32"
            self.vectors = cp.asarray(vec)
        else:
            raise InvalidArgumentError(f"IVF lists store float32 or float16, not {vec.dtype}")
        self.metric = metric
        self.centroids = cp.ascontiguousarray(cp.asarray(centroids, dtype=cp.float32))
        self.offsets = cp.ascontiguousarray(cp.asarray(offsets, dtype=cp.int64))
        self.ids = cp.ascontiguousarray(cp.asarray(ids, dtype=cp.int64))
        self.vectors = cp.ascontiguousarray(self.vectors)
        self.half_norms = 0.5 * (self.centroids * self.centroids).sum(axis=1)
        sizes = np.diff(cp.asnumpy(self.offsets))
        self.max_list = int(sizes.max()) if len(sizes) else 0
        self.ntotal = int(self.ids.shape[0])

    @classmethod
    def from_lists(cls, lists: Any) -> DeviceIvfFlat:
        """From a host :class:`~gpuvec.index.ivf_lists.IvfLists`."""
        return cls(lists.metric, lists.centroids, lists.offsets, lists.ids, lists.vectors)

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.centroids, self.offsets, self.ids, self.vectors)))

    def probe(self, queries: Any, nprobe: int) -> Any:
        """``[nq, nprobe]`` int32 list numbers on the device, nearest first."""
        import cupy as cp

        scores = queries @ self.centroids.T
        if self.metric == "L2":  # nearest = largest x·c − ‖c‖²/2
            scores -= self.half_norms[None, :]
        order = cp.argsort(-scores, axis=1)  # stable: ties keep the lower list first
        return cp.ascontiguousarray(order[:, : min(nprobe, self.nlist)].astype(cp.int32))

    def search(
        self, queries: Any, k: int, nprobe: int, valid: Any | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, row numbers)`` ``[nq, k]`` on the host (module docstring)."""
        import cupy as cp

        if k < 1 or nprobe < 1:
            raise InvalidArgumentError(f"k = {k} and nprobe = {nprobe} must be at least 1")
        q = cp.ascontiguousarray(cp.asarray(queries, dtype=cp.float32))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise InvalidArgumentError(f"queries {q.shape} do not match dim {self.dim}")
        nq = q.shape[0]
        larger = self.metric == "IP"
        pad = np.float32(-np.inf if larger else np.inf)
        out_s = np.full((nq, k), pad, np.float32)
        out_i = np.full((nq, k), -1, np.int64)
        if nq == 0 or self.ntotal == 0:
            return out_s, out_i
        vmask = None
        if valid is not None:
            vmask = cp.ascontiguousarray(cp.asarray(valid).astype(cp.uint8))
        nprobe = min(nprobe, self.nlist)
        segs = max(1, -(-self.max_list // SEG_LEN))
        seg_len = min(SEG_LEN, max(1, self.max_list))
        width = nprobe * segs * k
        batch = max(1, min(nq, MAX_GRID_Y, CANDIDATE_BYTES // (12 * width)))
        kern = _kernel(self.storage)
        for a in range(0, nq, batch):
            b = min(nq, a + batch)
            qb = q[a:b]
            probes = self.probe(qb, nprobe)
            cand_d = cp.empty((b - a, width), dtype=cp.float32)
            cand_i = cp.empty((b - a, width), dtype=cp.int64)
            args = (
                self.vectors, self.ids, self.offsets, qb, probes,
                gpu.null_or(vmask), np.int32(self.dim), np.int32(nprobe), np.int32(segs),
                np.int32(seg_len), np.int32(k), np.int32(1 if larger else 0), cand_d, cand_i,
            )  # fmt: skip
            kern((nprobe * segs, b - a, 1), (THREADS, 1, 1), args, shared_mem=seg_len * 4)
            top_d, top_i = gpu.reduce_topk(cand_d, cand_i, width, k)
            top_d, top_i = gpu.sort_rows(top_d, top_i)
            d, i = cp.asnumpy(top_d[:, :k]), cp.asnumpy(top_i[:, :k])
            if larger:
                d = -d
            out_s[a:b], out_i[a:b] = d, i
        return out_s, out_i
