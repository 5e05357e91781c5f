"""CAGRA graph search on the device: the CuPy path of
:func:`gpuvec.index.cagra_walk.search` (its NumPy twin).

Owns :class:`DeviceCagra` — the rows (float32) and the graph (int32) moved to the device
once — and its ``search``: ``kernels/cagra_search.cu``, one thread block per query (CAGRA's
single-CTA shape): the walk starts from the given seed rows (the twin's
:func:`~gpuvec.index.cagra_walk.start_rows`, so both walk from the same rows), keeps an
``itopk`` buffer, expands ``search_width`` parents per iteration, skips visited rows through
a hash set in shared memory and merges by a bitonic sort there; rows outside ``valid`` are
walked through but never returned. Results use the twin's conventions (L2: squared
distances ascending; IP: inner products descending; padding (±inf, -1)), on the host.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError

__all__ = ["DeviceCagra"]

THREADS = 256
SHARED_BYTES = 46 << 10  # dynamic shared memory per block: under the 48 KiB default
MAX_SORT = 2048  # itopk + search_width * degree, rounded up to a power of two


class DeviceCagra:
    """A CAGRA graph and its rows on the device (module docstring)."""

    def __init__(self, x: Any, graph: Any, metric: str) -> None:
        import cupy as cp

        metric = str(metric).upper()
        if metric not in ("L2", "IP"):
            raise InvalidArgumentError(f"CAGRA: metric {metric!r} is not L2 or IP")
        self.metric = metric
        self.x = cp.ascontiguousarray(cp.asarray(x, dtype=cp.float32))
        self.graph = cp.ascontiguousarray(cp.asarray(graph, dtype=cp.int32))
        if self.x.ndim != 2 or self.graph.ndim != 2 or len(self.x) != len(self.graph):
            raise InvalidArgumentError(
                f"CAGRA: rows {self.x.shape} and graph {self.graph.shape} do not match"
            )
        self.n, self.dim = (int(v) for v in self.x.shape)
        self.degree = int(self.graph.shape[1])

    def search(
        self, queries: Any, k: int, seeds: np.ndarray, *, itopk_size: int = 64,
        search_width: int = 1, min_iterations: int = 0, max_iterations: int = 0,
        valid: Any | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Top-``k`` per query (module docstring); ``seeds`` int64 [nq, m]: the rows each
        query's walk starts from."""
        import cupy as cp

        from gpuvec.ops import gpu
        from gpuvec.ops.kernels import get_kernel

        q = cp.ascontiguousarray(cp.asarray(queries, dtype=cp.float32))
        nq = int(q.shape[0])
        itopk = max(int(itopk_size), int(k))
        width = max(1, int(search_width))
        cand = width * self.degree
        sort_len = 1 << math.ceil(math.log2(itopk + cand))
        if sort_len > MAX_SORT:
            raise InvalidArgumentError(
                f"CAGRA: itopk_size {itopk} + search_width {width} x degree {self.degree} "
                f"exceeds the device buffer ({MAX_SORT})"
            )
        max_iter = max(int(max_iterations) or itopk // width + 32, int(min_iterations))
        seeds = np.ascontiguousarray(seeds, dtype=np.int64)
        fixed = self.dim * 4 + sort_len * 8 + width * 4
        want = 2 * (seeds.shape[1] + max_iter * cand)  # visited rows, load factor <= 1/2
        fit = max(6, int(math.log2(max(64, (SHARED_BYTES - fixed) // 4))))
        hash_bits = min(fit, max(6, math.ceil(math.log2(want))))
        shared = fixed + (4 << hash_bits)
        if shared > SHARED_BYTES:
            raise InvalidArgumentError(f"CAGRA: dim {self.dim} leaves no room in shared memory")
        mask = None if valid is None else cp.asarray(valid, dtype=cp.uint8)
        out_d = cp.empty((nq, k), cp.float32)
        out_i = cp.empty((nq, k), cp.int64)
        if nq:
            kernel = get_kernel("cagra_search.cu", "cagra_search_f32")
            kernel(
                (nq,), (THREADS,),
                (self.x, self.graph, q, cp.asarray(seeds), gpu.null_or(mask),
                 np.int32(self.n), np.int32(self.dim), np.int32(self.degree),
                 np.int32(itopk), np.int32(width), np.int32(seeds.shape[1]),
                 np.int32(min_iterations), np.int32(max_iter), np.int32(k),
                 np.int32(self.metric == "IP"), np.int32(hash_bits), np.int32(sort_len),
                 out_d, out_i),
                shared_mem=shared,
            )  # fmt: skip
        return cp.asnumpy(out_d), cp.asnumpy(out_i)
