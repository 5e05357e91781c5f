"""The CuPy path of :func:`gpuvec.ops.knn`: cuBLAS GEMM + top-k selection on the device.

Owns brute-force search of device-resident base vectors. Per (query block, base block):

1. ``D = qs @ base_blk.T`` — one cuBLAS SGEMM (FP32; CuPy uses TF32 only when the
   environment sets ``CUPY_TF32=1``, which gpuvec never does);
2. selection with ``kernels/topk.cu`` (``selector="kernel"``, default): one launch selects
   the k smallest ``D * scale + bias`` of every 4096-column chunk of every row (the metric's
   norm/mask terms are fused into the read), considering only values below the running
   k-th value of the row (so after the first blocks almost nothing survives), then rounds
   of the same kernel over the concatenated candidates (running top-k first) cut them to k;
   or ``selector="sort"``: the same algebra with CuPy ops and a full row sort of
   ``(value, position)`` keys — slow, but built only from stock CuPy calls;
3. after the last base block, one sort of the k survivors by ``(value, position)`` and one
   device-to-host copy of the final ``(dist, idx)``.

There is no host round-trip between blocks: every step is an asynchronous launch on the
current stream. Determinism: every round keeps equal values in increasing base-index order
along a row, so sorting by ``(value, position)`` is sorting by ``(value, index)`` — the
same results as the NumPy path, ties included (``-0.0`` counts as ``+0.0`` in both).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from gpuvec.errors import GpuvecError, InvalidArgumentError
from gpuvec.ops import common

__all__ = ["SELECTORS", "knn_cupy", "null_or", "reduce_topk", "select_topk", "sort_rows"]

SELECTORS = ("kernel", "sort")
_THREADS = 256  # threads per CUDA block of topk_select_f32 (a multiple of 32)
_MAX_GRID_Y = 65535
_BLOCK_ELEMS = 1 << 27  # distance-block floats (512 MiB) at most
_HOST_SORT_ELEMS = 1 << 16  # nq * k up to this: final ordering on the host
_NULL = np.uint64(0)  # a NULL pointer argument (None is not one for RawKernel)
_selector_default: str | None = None


def _cp() -> Any:
    import cupy

    return cupy


def _chunk_for(k: int) -> int:
    """Columns per CUDA block: a power of two >= 4k, so every round shrinks rows >= 4x."""
    return max(4096, 1 << (4 * k - 1).bit_length())


def default_selector() -> str:
    """``GPUVEC_GPU_TOPK`` (kernel|sort), else "kernel" if it compiles, else "sort"."""
    global _selector_default
    if _selector_default is None:
        env = os.environ.get("GPUVEC_GPU_TOPK", "").strip().lower()
        if env and env not in SELECTORS:
            raise InvalidArgumentError(f"GPUVEC_GPU_TOPK={env!r} is not one of {SELECTORS}")
        if env:
            _selector_default = env
        else:
            try:
                _kernel()
                _selector_default = "kernel"
            except GpuvecError as e:
                warnings.warn(f"gpuvec: top-k kernel unusable, sorting instead: {e}", stacklevel=2)
                _selector_default = "sort"
    return _selector_default


def _kernel() -> Any:
    from gpuvec.ops.kernels import get_kernel

    return get_kernel("topk.cu", "topk_select_f32")


def _ptr(a: Any | None) -> Any:
    return _NULL if a is None else a


def select_topk(
    d: Any,
    ncols: int,
    k: int,
    out_d: Any,
    out_i: Any,
    *,
    in_idx: Any | None = None,
    col_offset: int = 0,
    scale: Any | None = None,
    bias: Any | None = None,
    row_tau: Any | None = None,
    chunk: int | None = None,
) -> int:
    """Launch ``topk_select_f32`` over rows of ``d`` (C-order rows of stride
    ``d.shape[1]``; ``in_idx`` shares it). ``out_d``/``out_i`` are [rows, >= nchunks*k]
    arrays or row-strided views. Returns the number of chunks (see ``kernels/topk.cu``)."""
    rows, ld = d.shape
    if not d.flags.c_contiguous or (in_idx is not None and in_idx.shape != d.shape):
        raise InvalidArgumentError("select_topk: d must be C-contiguous; in_idx shaped like d")
    chunk = chunk or _chunk_for(k)
    nch = -(-ncols // chunk)
    out_ld = out_d.strides[0] // out_d.itemsize
    if out_i.strides[0] // out_i.itemsize != out_ld or out_d.shape[1] < nch * k:
        raise InvalidArgumentError("select_topk: output rows too short or strides differ")
    kern = _kernel()
    for r0 in range(0, rows, _MAX_GRID_Y):
        r1 = min(rows, r0 + _MAX_GRID_Y)
        args = (
            d[r0:r1],
            np.int64(ld),
            np.int32(ncols),
            _ptr(None if in_idx is None else in_idx[r0:r1]),
            np.int64(col_offset),
            _ptr(scale),
            _ptr(bias),
            _ptr(None if row_tau is None else row_tau[r0:r1]),
            np.int32(k),
            np.int32(chunk),
            out_d[r0:r1],
            out_i[r0:r1],
            np.int64(out_ld),
        )
        kern((nch, r1 - r0, 1), (_THREADS, 1, 1), args)
    return nch


def null_or(a: Any | None) -> Any:
    """A kernel pointer argument: the array, or a 64-bit NULL for None."""
    return _ptr(a)


def reduce_topk(d: Any, i: Any, width: int, k: int) -> tuple[Any, Any]:
    """Top-k of the first ``width`` (value, index) candidates of each row: ``[rows, k]``,
    in ``topk.cu``'s order (sort with :func:`sort_rows`)."""
    return _reduce(d, i, width, k)


def _reduce(d: Any, i: Any, width: int, k: int) -> tuple[Any, Any]:
    """Top-k (unsorted, module order) of the first ``width`` columns of [rows, ld] ``d``."""
    cp = _cp()
    rows = d.shape[0]
    chunk = _chunk_for(k)
    while True:
        nch = -(-width // chunk)
        od = cp.empty((rows, nch * k), dtype=cp.float32)
        oi = cp.empty((rows, nch * k), dtype=cp.int64)
        select_topk(d, width, k, od, oi, in_idx=i, chunk=chunk)
        if nch == 1:
            return od, oi
        d, i, width = od, oi, nch * k


def sort_rows(vals: Any, ids: Any) -> tuple[Any, Any]:
    """Sort each row by (value, position); -0.0 counts as +0.0 (as NumPy compares)."""
    cp = _cp()
    w = vals.shape[1]
    v = cp.ascontiguousarray(cp.where(vals == 0, cp.float32(0.0), vals).astype(cp.float32))
    u = v.view(cp.uint32)
    key32 = cp.where(u >= cp.uint32(0x80000000), ~u, u | cp.uint32(0x80000000))
    key = key32.astype(cp.uint64) << cp.uint64(32)
    key |= cp.arange(w, dtype=cp.uint64)[None, :]
    key = cp.sort(key, axis=1)
    pos = (key & cp.uint64(0xFFFFFFFF)).astype(cp.int64)
    return cp.take_along_axis(vals, pos, axis=1), cp.take_along_axis(ids, pos, axis=1)


def _blocks(nq: int, n: int, k: int) -> tuple[int, int]:
    cp = _cp()
    free, _ = cp.cuda.runtime.memGetInfo()
    free += cp.get_default_memory_pool().free_bytes()
    elems = max(1 << 20, min(_BLOCK_ELEMS, int(free) // 16))
    qb = -(-nq // -(-nq // 8192))  # balanced query blocks of at most 8192 rows
    chunk = _chunk_for(k)
    bb = max(chunk, (elems // qb) // chunk * chunk)
    return qb, min(n, bb)


def knn_cupy(
    base: Any,
    queries: Any,
    k: int,
    metric: str,
    *,
    valid: Any | None = None,
    base_sq_norms: Any | None = None,
    selector: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GPU :func:`gpuvec.ops.knn`: ``base`` should be a device (CuPy) float32 or float16
    array;
    ``queries``/``valid``/``base_sq_norms`` may be NumPy or CuPy. Host results."""
    cp = _cp()
    metric = common.check_metric(metric)
    k = common.check_k(k)
    selector = selector or default_selector()
    if selector not in SELECTORS:
        raise InvalidArgumentError(f"selector {selector!r} is not one of {SELECTORS}")
    # FLOAT16 base stays float16 (half the device memory): each block is widened to float32
    # just before its GEMM, so the scores are the float32 scores of the stored values
    half = getattr(base, "dtype", None) == cp.float16 and base.ndim == 2
    base = cp.ascontiguousarray(base) if half else common.as_matrix(cp, base, "base vectors")
    queries = common.as_matrix(cp, queries, "queries")
    if half and base_sq_norms is None:
        base_sq_norms = common.sq_norms(cp, base)  # 64k-row float32 blocks
    prep = common.prepare(cp, base, queries, metric, valid, base_sq_norms)
    nq, n = queries.shape[0], base.shape[0]
    inf = cp.float32(np.inf)
    res_d = cp.full((nq, k), inf, dtype=cp.float32)
    res_i = cp.full((nq, k), -1, dtype=cp.int64)
    if nq and n:
        qb, bb = _blocks(nq, n, k)
        chunk = _chunk_for(k)
        small = nq * k <= _HOST_SORT_ELEMS
        parts = []
        for q0 in range(0, nq, qb):
            q1 = min(nq, q0 + qb)
            acc_d = acc_i = None
            for b0 in range(0, n, bb):
                b1 = min(n, b0 + bb)
                blk = base[b0:b1].astype(cp.float32) if half else base[b0:b1]
                dblk = cp.ascontiguousarray(cp.matmul(prep.qs[q0:q1], blk.T))
                scale = None if prep.scale is None else prep.scale[b0:b1]
                bias = None if prep.bias is None else prep.bias[b0:b1]
                if selector == "kernel":
                    nch = -(-(b1 - b0) // chunk)
                    lead = 0 if acc_d is None else k  # the running top-k goes first
                    cat_d = cp.empty((q1 - q0, lead + k * nch), dtype=cp.float32)
                    cat_i = cp.empty((q1 - q0, lead + k * nch), dtype=cp.int64)
                    tau = None
                    if acc_d is not None:
                        cat_d[:, :k] = acc_d  # lower indices than this block's
                        cat_i[:, :k] = acc_i
                        tau = cp.ascontiguousarray(acc_d.max(axis=1))  # nothing >= it enters
                    select_topk(
                        dblk, b1 - b0, k, cat_d[:, lead:], cat_i[:, lead:], col_offset=b0,
                        scale=scale, bias=bias, row_tau=tau, chunk=chunk,
                    )  # fmt: skip
                    acc_d, acc_i = _reduce(cat_d, cat_i, lead + k * nch, k)
                else:
                    if acc_d is None:
                        acc_d, acc_i = res_d[q0:q1], res_i[q0:q1]
                    acc_d, acc_i = _sort_merge(acc_d, acc_i, dblk, b0, scale, bias, k)
            if small:  # a few candidates: order them on the host, fewer launches
                parts.append((acc_d, acc_i))
            else:
                res_d[q0:q1], res_i[q0:q1] = sort_rows(acc_d, acc_i)
        if small:
            return _finish_host(prep, parts)
    out_d, out_i = common.finish(cp, prep, res_d, res_i)
    return out_d.get(), out_i.get()


def _finish_host(prep: common.Prepared, parts: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """``sort_rows`` + ``finish`` on the host for a few candidate rows: the same order, by
    (value, position) with -0.0 as +0.0, and the same reported distances."""
    cp = _cp()
    d = np.concatenate([cp.asnumpy(a) for a, _ in parts])
    i = np.concatenate([cp.asnumpy(b) for _, b in parts])
    key = np.where(d == 0, np.float32(0.0), d)
    pos = np.broadcast_to(np.arange(d.shape[1]), d.shape)
    order = np.lexsort((pos, key), axis=-1)
    d, i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    qadd = None if prep.qadd is None else cp.asnumpy(prep.qadd)
    host = common.Prepared(prep.metric, None, None, None, qadd)
    return common.finish(np, host, d, i)


def _sort_merge(
    acc_d: Any, acc_i: Any, dblk: Any, b0: int, scale: Any, bias: Any, k: int
) -> tuple[Any, Any]:
    """The ``selector="sort"`` step: stock CuPy ops only."""
    cp = _cp()
    if scale is not None:
        dblk = dblk * scale[None, :]
    if bias is not None:
        dblk = dblk + bias[None, :]
    rows, w = dblk.shape
    ids = cp.broadcast_to(cp.arange(b0, b0 + w, dtype=cp.int64)[None, :], (rows, w))
    cat_d = cp.concatenate([acc_d, dblk.astype(cp.float32)], axis=1)
    cat_i = cp.concatenate([acc_i, ids], axis=1)
    d, i = sort_rows(cat_d, cat_i)
    return d[:, :k], i[:, :k]
