"""GPU_CAGRA as built by gpuvec (:mod:`gpuvec.index.cagra`): the CAGRA graph served by
faiss-cpu's IndexHNSWCagra with upper layers over it. On well-separated clusters — where a
kNN-derived base graph has no edges between clusters — the layered index finds the
query's cluster, the base layer alone (random entry points) often does not; degrees shrink
for small segments; a segment too small for a graph gets faiss's HNSW."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.index import build_index, load_index
from gpuvec.index.cagra import MIN_ROWS, build_cagra, degrees
from gpuvec.testing.knn_reference import ref_knn

PARAMS = {"intermediate_graph_degree": 64, "graph_degree": 32, "build_algo": "IVF_PQ"}


def separated(n: int = 6000, dim: int = 24, clusters: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    c = rng.normal(size=(clusters, dim)).astype(np.float32) * 6
    x = (c[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    q = (c[rng.integers(0, clusters, 200)] + rng.normal(size=(200, dim))).astype(np.float32)
    return x, q


def recall(rows: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(rows, truth, strict=True)
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in pairs]))


def test_layers_find_the_querys_cluster() -> None:
    import faiss

    x, q = separated()
    _, truth, _ = ref_knn(x, q, 10, "L2")
    index, degree, note = build_cagra(x, PARAMS, "L2")
    assert degree == 32 and "IndexHNSWCagra" in note
    assert not index.base_level_only and index.hnsw.max_level >= 1
    params = faiss.SearchParametersHNSW()
    params.efSearch = 64
    layered = recall(index.search(q, 10, params=params)[1], truth)
    index.base_level_only = True  # the same base graph from random entry points only
    index.num_base_level_search_entrypoints = 8
    base_only = recall(index.search(q, 10, params=params)[1], truth)
    assert layered >= 0.95, layered
    assert base_only < layered - 0.1, (base_only, layered)  # what the layers are for
    print(f"recall@10 layered {layered:.3f}, base layer only {base_only:.3f}")


def test_degrees_shrink_for_small_segments() -> None:
    assert degrees({"intermediate_graph_degree": 128, "graph_degree": 64}, 10_000) == (128, 64)
    assert degrees({"intermediate_graph_degree": 128, "graph_degree": 64}, 41) == (40, 40)
    assert degrees({"intermediate_graph_degree": 128, "graph_degree": 64}, 20) == (19, 18)


@pytest.mark.parametrize("algo", ["IVF_PQ", "NN_DESCENT"])
def test_cagra_index_round_trip_and_describe(algo: str) -> None:
    x, q = separated(3000)
    idx = build_index(x, "COSINE", "GPU_CAGRA", {**PARAMS, "build_algo": algo})
    info = idx.describe()
    assert info["backend"] == "faiss-cpu:HNSWCagra32,Flat" and algo in info["note"]
    got = idx.search(q, 10, {"itopk_size": 64})
    _, truth, _ = ref_knn(x, q, 10, "COSINE")
    assert recall(got[1], truth) >= 0.95
    again = load_index(idx.to_bytes())
    np.testing.assert_array_equal(again.search(q, 10, {"itopk_size": 64})[1], got[1])


def test_tiny_segment_gets_hnsw() -> None:
    x, q = separated(MIN_ROWS - 1)
    idx = build_index(x, "L2", "GPU_CAGRA", PARAMS)
    assert idx.describe()["backend"].startswith("faiss-cpu:HNSW16") and "fewer than" in (
        idx.describe()["note"])
    assert (idx.search(q[:3], 5)[1] >= 0).all()
