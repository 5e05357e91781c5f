"""GPU_CAGRA's build as gpuvec does it: the CAGRA graph (:mod:`gpuvec.index.cagra_graph` —
an initial kNN graph of ``intermediate_graph_degree`` by ``build_algo``, then CAGRA's
rank-based pruning and reverse edges down to ``graph_degree``) moved into faiss-cpu's
``IndexHNSWCagra`` as its base layer, so any node serves it at faiss speed with faiss's
filters (Milvus calls serving a CAGRA graph on the CPU ``adapt_for_cpu``).

Small segments shrink the degrees: ``intermediate_graph_degree`` to ``n - 1`` rows and
``graph_degree`` to at most that, kept even (the base layer holds ``2 · M`` links); below
:data:`MIN_ROWS` rows there is no graph worth building and the segment gets faiss's HNSW.
On a CUDA host the initial kNN graph is computed on the device (exact, by
:func:`gpuvec.ops.knn`); the optimisation runs on the host (a device version is issue 17's
CUDA work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError

__all__ = ["ENTRY_POINTS", "MIN_ROWS", "add_hierarchy", "build_cagra", "degrees", "to_faiss"]

MIN_ROWS = 16  # below this a segment gets faiss's HNSW instead of a CAGRA graph
ENTRY_POINTS = 64  # random base-layer entry points a CPU search scores before its walk


def degrees(params: dict[str, Any], n: int) -> tuple[int, int]:
    """(intermediate, graph) degree for ``n`` rows: within the row count, graph <=
    intermediate, graph even."""
    inter = max(2, min(int(params["intermediate_graph_degree"]), n - 1))
    graph = max(2, min(int(params["graph_degree"]), inter))
    graph -= graph % 2
    return inter, graph


def build_cagra(
    x: np.ndarray, params: dict[str, Any], metric: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, int, str]:  # fmt: skip
    """(faiss ``IndexHNSWCagra``, graph degree, a note for ``describe_index``) of ``x``
    (float32, already normalised for COSINE); ``metric`` is L2, IP or COSINE."""
    from gpuvec.index import cagra_graph

    n = len(x)
    inter, graph = degrees(params, n)
    gmetric = "L2" if metric == "L2" else "IP"
    algo = str(params.get("build_algo", "IVF_PQ"))
    knn = cagra_graph.knn_graph(x, inter, gmetric, algo=algo, seed=0, progress=progress)
    optimized = cagra_graph.optimize(knn, graph)
    index = to_faiss(x, optimized, gmetric, entry_points=ENTRY_POINTS)
    add_hierarchy(index, x, gmetric)
    note = (
        f"GPU_CAGRA graph built by gpuvec ({algo} kNN graph of degree {inter}, CAGRA pruning "
        f"and reverse edges to degree {graph}; the kNN graph on {_where()}), served by "
        "faiss-cpu "
        "IndexHNSWCagra: the graph as its base layer under sparse upper layers"
    )
    return index, graph, note


def add_hierarchy(index: Any, x: np.ndarray, metric: str, seed: int = 0) -> None:
    """Give a base-layer-only ``IndexHNSWCagra`` HNSW's upper layers, so a CPU search
    descends greedily to a good entry point instead of starting from the best of a few
    random rows (which misses the query's region when the base graph's clusters are apart:
    a kNN-derived graph has no edges between well-separated clusters). As HNSW draws them,
    a row reaches layer ``l`` with probability ``M**-l`` (seeded); each upper layer links its
    rows to ``M`` of their ``2M`` nearest rows of that layer, CAGRA-pruned — sparse layers
    link across clusters. The base layer stays the CAGRA graph, unchanged (as cuVS's
    ``hnsw::from_cagra`` with a CPU-built hierarchy)."""
    from gpuvec.index import cagra_graph
    from gpuvec.index.threads import faiss_module

    faiss = faiss_module()
    h = index.hnsw
    n = int(index.ntotal)
    cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
    m = int(cum[2] - cum[1])
    base = faiss.vector_to_array(h.neighbors).reshape(n, int(cum[1]))
    rng = np.random.default_rng(seed)
    level = np.floor(-np.log(np.maximum(rng.random(n), 1e-300)) / np.log(max(m, 2)))
    level = np.minimum(level.astype(np.int64), len(cum) - 2)
    top = int(level.max())
    offsets = np.zeros(n + 1, np.uint64)
    offsets[1:] = np.cumsum(cum[level + 1])
    neighbors = np.full(int(offsets[-1]), -1, np.int32)
    starts = offsets[:-1].astype(np.int64)
    neighbors[starts[:, None] + np.arange(base.shape[1])] = base
    for lv in range(1, top + 1):
        rows = np.flatnonzero(level >= lv)
        if len(rows) < 2:
            continue
        wide = min(2 * m, len(rows) - 1)
        knn = cagra_graph.knn_graph(x[rows], wide, metric, seed=seed)
        links = rows[cagra_graph.optimize(knn, min(m, wide))] if wide > 1 else rows[knn]
        slot = starts[rows][:, None] + cum[lv] + np.arange(links.shape[1])
        neighbors[slot] = links
    faiss.copy_array_to_vector((level + 1).astype(np.int32), h.levels)
    faiss.copy_array_to_vector(offsets, h.offsets)
    faiss.copy_array_to_vector(neighbors, h.neighbors)
    h.entry_point = int(np.flatnonzero(level == top)[0])
    h.max_level = top
    index.base_level_only = False


def _where() -> str:
    from gpuvec import ops

    return ops.backend_name()


def to_faiss(x: np.ndarray, graph: np.ndarray, metric: str, *, entry_points: int = 64) -> Any:
    """A faiss ``IndexHNSWCagra`` serving ``graph`` over rows ``x`` on the CPU.

    ``M = degree / 2`` (an odd degree, or one under 4 — faiss's HNSW needs ``M >= 2`` —
    gets -1 columns: faiss reads -1 as the end of a neighbour list, so each row's -1 entries
    are moved to its end). The rows go to the
    index's flat storage, the graph straight into HNSW level 0 (every node on level 0 only),
    ``base_level_only = True`` and ``num_base_level_search_entrypoints = entry_points``:
    faiss then starts each search from the best of that many random rows and walks level 0
    only (``SearchParametersHNSW.efSearch`` is the walk's candidate list). In faiss 1.15
    ``serialize_index`` / ``deserialize_index`` keep both settings and the graph."""
    from gpuvec.index.cagra_graph import _graph, _metric, _vectors
    from gpuvec.index.threads import faiss_module

    faiss = faiss_module()
    x = _vectors(x)
    n, dim = x.shape
    metric = _metric(metric)
    g = _graph(graph, n)
    if entry_points < 1:
        raise InvalidArgumentError(f"CAGRA: entry_points = {entry_points} must be >= 1")
    pad = max(4, g.shape[1] + g.shape[1] % 2) - g.shape[1]  # faiss's HNSW needs M >= 2
    if pad:
        g = np.hstack([g, np.full((n, pad), -1, np.int32)])
    order = np.argsort(g < 0, axis=1, kind="stable")
    g = np.take_along_axis(g, order, axis=1)
    degree = g.shape[1]
    fm = faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexHNSWCagra(dim, degree // 2, fm)
    index.base_level_only = True
    index.num_base_level_search_entrypoints = int(entry_points)
    index.storage.add(x)
    h = index.hnsw
    if h.nb_neighbors(0) != degree:
        raise InvalidArgumentError(f"CAGRA: faiss level 0 holds {h.nb_neighbors(0)} links")
    faiss.copy_array_to_vector(np.ones(n, np.int32), h.levels)
    faiss.copy_array_to_vector((np.arange(n + 1) * degree).astype(np.uint64), h.offsets)
    faiss.copy_array_to_vector(np.ascontiguousarray(g, dtype=np.int32).reshape(-1), h.neighbors)
    h.entry_point = 0
    h.max_level = 0
    index.ntotal = n
    return index
