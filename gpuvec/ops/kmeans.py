"""Balanced k-means for IVF training, on whichever array module holds the data.

Owns :func:`kmeans` (train ``k`` centroids) and :func:`assign` (each row's nearest
centroid). The same code runs on NumPy (the twin CI runs) and on CuPy (device arrays in,
device arrays out); only the array module differs, so the two agree up to floating-point
summation order.

* **Assignment** is GEMM-based: for L2, ``argmin_j ‖c_j‖² − 2·x·c_j`` (``‖x‖²`` does not
  change the arg-min), for IP and COSINE ``argmax_j x·c_j``; rows go in blocks so the
  ``[block, k]`` score matrix stays bounded (:data:`BLOCK_ELEMS`).
* **Training** samples at most ``max_points_per_centroid · k`` rows (as faiss does) with
  a seeded generator, starts from ``k`` distinct sampled rows, and iterates Lloyd steps
  (COSINE: spherical — centroids renormalised).
* **Balance** (what IVF needs: no empty lists, no list holding a large share of the rows):
  after every step, each empty cluster, and each cluster under ``mean / 8`` while another
  holds over ``4 · mean``, takes half of the largest cluster — both centroids become the
  large one nudged apart by ±``1e-3`` of its norm along a seeded direction — and the
  next step's assignment splits its rows.

Deterministic under ``seed`` for a given array module and input.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.ops.backend import array_module

__all__ = ["KMeans", "assign", "kmeans"]

BLOCK_ELEMS = 1 << 24  # score-matrix elements per assignment block (64 MiB of float32)
SPLIT_EPS = 1e-3
BIG, SMALL = 4.0, 1.0 / 8.0  # a cluster over BIG·mean is split into one under SMALL·mean


@dataclass
class KMeans:
    """Trained centroids (``[k, dim]`` float32, on the input's module), the rows of the
    training sample per centroid after the last step, and the iterations run."""

    centroids: Any
    sizes: np.ndarray
    iterations: int
    splits: int  # clusters re-seeded by splitting a large one, over all steps


def _check(x: Any, k: int, metric: str) -> str:
    if getattr(x, "ndim", 0) != 2:
        shape = getattr(x, "shape", None)
        raise InvalidArgumentError(f"k-means needs a 2-D array, got shape {shape}")
    if not 1 <= k <= x.shape[0]:
        raise InvalidArgumentError(f"k-means: k = {k} must be in [1, {x.shape[0]}] (the rows)")
    metric = str(metric).upper()
    if metric not in ("L2", "IP", "COSINE"):
        raise InvalidArgumentError(f"k-means: metric {metric!r} is not L2, IP or COSINE")
    return metric


def assign(x: Any, centroids: Any, metric: str = "L2") -> Any:
    """Each row's nearest centroid (int64 ``[n]``, on ``x``'s module): smallest L2 distance,
    or largest inner product for IP/COSINE; ties go to the lower centroid number."""
    xp = array_module(x)
    metric = str(metric).upper()
    c = xp.asarray(centroids, dtype=xp.float32)
    half_norms = 0.5 * (c * c).sum(axis=1) if metric == "L2" else None
    n = x.shape[0]
    out = xp.empty(n, dtype=xp.int64)
    step = max(1, BLOCK_ELEMS // max(1, c.shape[0]))
    for a in range(0, n, step):
        blk = xp.asarray(x[a : a + step], dtype=xp.float32)
        scores = blk @ c.T  # [block, k]
        if half_norms is not None:  # argmin ‖c‖²/2 − x·c  ==  argmax x·c − ‖c‖²/2
            scores -= half_norms[None, :]
        out[a : a + step] = scores.argmax(axis=1)
    return out


def _normalise(xp: ModuleType, c: Any) -> Any:
    norms = xp.sqrt((c * c).sum(axis=1, keepdims=True))
    return c / xp.maximum(norms, xp.float32(1e-30))


def _update(xp: ModuleType, x: Any, labels: Any, k: int, old: Any) -> tuple[Any, Any]:
    """New centroids (the mean of each cluster, summed in float64; an empty one keeps its
    old centroid) and the cluster sizes."""
    sizes = xp.bincount(labels, minlength=k)
    if xp is np:  # rows sorted by cluster, then one reduceat over the non-empty clusters
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        full = np.flatnonzero(sizes)
        sums = np.zeros((k, x.shape[1]), np.float64)
        sums[full] = np.add.reduceat(x[order], starts[full], axis=0, dtype=np.float64)
    else:
        import cupyx

        sums = xp.zeros((k, x.shape[1]), dtype=xp.float64)
        cupyx.scatter_add(sums, labels, x.astype(xp.float64))
    cent = (sums / xp.maximum(sizes, 1)[:, None]).astype(xp.float32)
    empty = sizes == 0
    cent[empty] = old[empty]
    return cent, sizes


def _rebalance(xp: ModuleType, cent: Any, sizes: np.ndarray, rng: np.random.Generator) -> int:
    """Re-seed empty and starved clusters by splitting the largest (module docstring);
    ``sizes`` (host) is updated as if each split halves the large cluster."""
    k = len(sizes)
    mean = float(sizes.sum()) / k
    splits = 0
    for _ in range(k):
        small = int(np.argmin(sizes))
        big = int(np.argmax(sizes))
        starved = sizes[small] == 0 or (sizes[small] < SMALL * mean and sizes[big] > BIG * mean)
        if not starved or sizes[big] < 2 or small == big:
            break
        d = rng.standard_normal(cent.shape[1]).astype(np.float32)
        d /= max(float(np.linalg.norm(d)), 1e-30)
        base = cent[big].copy()
        scale = SPLIT_EPS * max(float(xp.linalg.norm(base)), 1e-6)
        nudge = xp.asarray(d * scale)
        cent[big] = base + nudge
        cent[small] = base - nudge
        half = sizes[big] // 2
        sizes[small], sizes[big] = half, sizes[big] - half
        splits += 1
    return splits


def kmeans(
    x: Any,
    k: int,
    *,
    metric: str = "L2",
    iters: int = 20,
    seed: int = 0,
    max_points_per_centroid: int = 256,
) -> KMeans:
    """Train ``k`` centroids on the rows of ``x`` (float32 ``[n, dim]``, NumPy or CuPy);
    see the module docstring."""
    metric = _check(x, k, metric)
    xp = array_module(x)
    if iters < 1:
        raise InvalidArgumentError(f"k-means: iters = {iters} must be at least 1")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    take = min(n, max(k, max_points_per_centroid * k))
    pick = np.sort(rng.choice(n, size=take, replace=False)) if take < n else None
    sample = xp.asarray(x if pick is None else x[xp.asarray(pick)], dtype=xp.float32)
    if metric == "COSINE":
        sample = _normalise(xp, sample)
    start = rng.choice(len(sample), size=k, replace=False)
    cent = sample[xp.asarray(np.sort(start))].copy()
    sizes = np.zeros(k, np.int64)
    splits = 0
    assign_metric = "L2" if metric == "L2" else "IP"
    for _ in range(iters):
        labels = assign(sample, cent, assign_metric)
        cent, dev_sizes = _update(xp, sample, labels, k, cent)
        if metric == "COSINE":
            cent = _normalise(xp, cent)
        sizes = np.asarray(dev_sizes.get() if xp is not np else dev_sizes, np.int64)
        splits += _rebalance(xp, cent, sizes, rng)
    labels = assign(sample, cent, assign_metric)
    final = xp.bincount(labels, minlength=k)
    sizes = np.asarray(final.get() if xp is not np else final, np.int64)
    return KMeans(centroids=cent, sizes=sizes, iterations=iters, splits=splits)
