"""Input checks and the metric algebra shared by the NumPy and CuPy k-NN paths.

Owns how a metric becomes "smaller is better" arithmetic on a GEMM: every path computes

    v[q, b] = (qs[q] · base[b]) * scale[b] + bias[b]          (scale/bias optional)

selects the k smallest ``v`` per query (ties: lower base index first), then reports
``v + qadd[q]`` (L2) or ``-v`` (IP, COSINE). Per metric:

* L2:     qs = -2q,        bias = |b|²,            qadd = |q|²   → squared L2 distance
* IP:     qs = -q                                                 → -(q·b)
* COSINE: qs = -q/|q|,     scale = 1/|b|                          → -cos(q, b)

A row outside ``valid`` gets ``bias = +inf``, so it can only be chosen as padding, and
every chosen ``+inf`` becomes index -1 in the result. Zero vectors have cosine 0.
Functions here take the array module (``numpy`` or ``cupy``) as ``xp``; none imports CuPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError

__all__ = [
    "DISTANCES",
    "METRICS",
    "Prepared",
    "check_k",
    "check_metric",
    "check_result_metric",
    "prepare",
    "sq_norms",
]

METRICS = ("L2", "IP", "COSINE")
BINARY = ("HAMMING", "JACCARD")  # BINARY_VECTOR metrics (gpuvec.ops.binary)
DISTANCES = ("L2", "HAMMING", "JACCARD")  # smaller is better; IP and COSINE: larger


def check_metric(metric: str) -> str:
    """The canonical (upper-case) metric name, or InvalidArgumentError."""
    if not isinstance(metric, str) or metric.upper() not in METRICS:
        raise InvalidArgumentError(
            f"metric_type {metric!r} is not supported; expected one of {', '.join(METRICS)}"
        )
    return metric.upper()


RESULT_METRICS = METRICS + BINARY + ("BM25",)  # BM25: sparse full-text scores, larger better


def check_result_metric(metric: str) -> str:
    """The canonical name of any metric a result may be in (float, binary or sparse)."""
    if not isinstance(metric, str) or metric.upper() not in RESULT_METRICS:
        raise InvalidArgumentError(
            f"metric_type {metric!r} is not supported; expected one of "
            f"{', '.join(RESULT_METRICS)}"
        )
    return metric.upper()


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
        raise InvalidArgumentError(f"k (topk) must be an integer >= 1, got {k!r}")
    return int(k)


def sq_norms(xp: ModuleType, vectors: Any) -> Any:
    """Squared L2 norm of each row, float32 (no [n, d] temporary)."""
    if xp is np:
        v = np.asarray(vectors, dtype=np.float32)
        return np.einsum("ij,ij->i", v, v).astype(np.float32, copy=False)
    v = xp.asarray(vectors)  # float32, or float16 widened block by block below
    out = xp.empty(v.shape[0], dtype=xp.float32)  # CuPy: plain ops, 64k-row temporaries
    for s in range(0, v.shape[0], 1 << 16):
        blk = v[s : s + (1 << 16)].astype(xp.float32, copy=False)
        out[s : s + blk.shape[0]] = (blk * blk).sum(axis=1)
    return out


def as_matrix(xp: ModuleType, a: Any, name: str) -> Any:
    """``a`` as a C-contiguous float32 2-D array (a 1-D array is one row)."""
    m = xp.asarray(a)
    if m.ndim == 1:
        m = m.reshape(1, -1)
    if m.ndim != 2:
        raise InvalidArgumentError(f"{name} must be a 2-D array [rows, dim], got shape {m.shape}")
    if m.dtype.kind not in "fiu":
        raise InvalidArgumentError(f"{name} must hold numbers, got dtype {m.dtype}")
    return xp.ascontiguousarray(m, dtype=xp.float32)


@dataclass
class Prepared:
    """The per-call operands of ``v = (qs · base) * scale + bias`` (see module doc)."""

    metric: str
    qs: Any  # [nq, d] float32
    scale: Any | None  # [n] float32
    bias: Any | None  # [n] float32
    qadd: Any | None  # [nq] float32


def _vector(xp: ModuleType, a: Any, n: int, name: str, dtype: Any) -> Any:
    v = xp.asarray(a)
    if v.shape != (n,):
        raise InvalidArgumentError(f"{name} must have shape ({n},), got {v.shape}")
    if dtype is bool and v.dtype != bool:
        raise InvalidArgumentError(f"{name} must be a boolean mask, got dtype {v.dtype}")
    return xp.ascontiguousarray(v, dtype=dtype)


def prepare(
    xp: ModuleType,
    base: Any,
    queries: Any,
    metric: str,
    valid: Any | None,
    base_sq_norms: Any | None,
) -> Prepared:
    """Check the per-row inputs against ``base``/``queries`` (already float32 matrices)
    and build the operands of the metric."""
    n, d = base.shape
    if queries.shape[1] != d:
        raise InvalidArgumentError(
            f"query dim {queries.shape[1]} does not match the base vectors' dim {d}"
        )
    mask = None if valid is None else _vector(xp, valid, n, "valid", bool)
    norms = None
    if base_sq_norms is not None:
        norms = _vector(xp, base_sq_norms, n, "base_sq_norms", xp.float32)
    elif metric != "IP":
        norms = sq_norms(xp, base)
    inf = xp.float32(np.inf)
    scale = bias = qadd = None
    if metric == "L2":
        qs = queries * xp.float32(-2.0)
        qadd = sq_norms(xp, queries)
        bias = norms if mask is None else xp.where(mask, norms, inf).astype(xp.float32)
    else:
        if metric == "IP":
            qs = -queries
        else:
            qn = xp.sqrt(sq_norms(xp, queries))
            qinv = xp.where(qn > 0, 1.0 / xp.maximum(qn, xp.float32(1e-30)), 0.0)
            qs = queries * (-qinv.astype(xp.float32))[:, None]
            bn = xp.sqrt(xp.maximum(norms, xp.float32(0.0)))
            scale = xp.where(bn > 0, 1.0 / xp.maximum(bn, xp.float32(1e-30)), 0.0)
            scale = scale.astype(xp.float32)
        if mask is not None:
            bias = xp.where(mask, xp.float32(0.0), inf).astype(xp.float32)
    return Prepared(metric, xp.ascontiguousarray(qs, dtype=xp.float32), scale, bias, qadd)


def finish(xp: ModuleType, prep: Prepared, vals: Any, idx: Any) -> tuple[Any, Any]:
    """Turn selected internal values (sorted ascending) into reported distances; chosen
    ``+inf`` (masked or padding) becomes index -1 with distance +inf (L2) / -inf."""
    empty = vals == xp.float32(np.inf)
    idx = xp.where(empty, -1, idx).astype(xp.int64, copy=False)
    if prep.metric == "L2":
        out = vals + prep.qadd[:, None]
        out = xp.maximum(out, xp.float32(0.0))  # rounding can dip below 0; inf stays inf
    else:
        out = -vals
    return out.astype(xp.float32, copy=False), idx
