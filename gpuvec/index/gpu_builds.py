"""GPU_IVF_FLAT's and GPU_IVF_PQ's builds as gpuvec does them — k-means, lists and codes
on the device when the array backend is CuPy, else their NumPy twins — moved into the
faiss-cpu index (``IndexIVFFlat`` / ``IndexIVFPQ``) that
:class:`~gpuvec.index.faiss_index.FaissIndex` then serves on any node."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.index.faiss_plan import Plan

__all__ = ["own_backend", "own_ivf_flat", "own_ivf_pq"]


def own_ivf_flat(x: np.ndarray, train: np.ndarray, p: Plan, metric: str, iters: int) -> Any:
    """GPU_IVF_FLAT's build: :func:`gpuvec.ops.kmeans.kmeans` on ``train`` and
    :class:`~gpuvec.index.ivf_lists.IvfLists` of ``x`` (both on the device when the array
    backend is CuPy), moved into a ``faiss.IndexIVFFlat``. ``x`` is normalised for COSINE."""
    from gpuvec import ops
    from gpuvec.index.ivf_lists import IvfLists
    from gpuvec.ops.kmeans import assign, kmeans

    lists_metric = "L2" if metric == "L2" else "IP"
    km_metric = "COSINE" if metric == "COSINE" else lists_metric
    if ops.is_gpu():
        km = kmeans(ops.to_device(train), p.nlist, metric=km_metric, iters=iters)
        labels = ops.to_host(assign(ops.to_device(x), km.centroids, lists_metric))
        centroids = ops.to_host(km.centroids)
    else:
        km = kmeans(train, p.nlist, metric=km_metric, iters=iters)
        centroids, labels = km.centroids, None
    return IvfLists.fill(x, centroids, lists_metric, labels=labels).to_faiss()


def own_backend() -> str:
    """Where gpuvec's own index builds run in this process: ``cuda:<device>`` or
    ``cpu:numpy``."""
    from gpuvec import ops

    return ops.backend_name()


def own_ivf_pq(x: np.ndarray, train: np.ndarray, p: Plan, metric: str, iters: int) -> Any:
    """GPU_IVF_PQ's build: :class:`~gpuvec.index.ivf_pq.IvfPq` trained on ``train`` and
    filled with ``x`` (k-means and encoding on the device when the backend is CuPy),
    moved into a ``faiss.IndexIVFPQ``. ``x`` is normalised for COSINE."""
    from gpuvec import ops
    from gpuvec.index.ivf_pq import IvfPq

    pq_metric = "L2" if metric == "L2" else "IP"
    where = ops.to_device if ops.is_gpu() else np.asarray
    pq = IvfPq.train(where(train), p.nlist, p.m, p.nbits, pq_metric, iters=iters)
    return pq.fill(where(x)).to_faiss()
