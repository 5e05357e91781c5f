"""The NumPy CAGRA twin (gpuvec.index.cagra_graph): kNN graph build, CAGRA's graph
optimisation, CAGRA search and the faiss IndexHNSWCagra export, checked against exact
float64 brute force on clustered data (40 Gaussian clusters in 32 dimensions)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import cagra_graph as cg
from gpuvec.index import cagra_walk as cw
from gpuvec.index.cagra import to_faiss
from gpuvec.index.threads import faiss_module

N, NQ, DIM, CLUSTERS = 10_000, 300, 32, 40


def clustered(n: int, nq: int, *, dim: int = DIM, clusters: int = CLUSTERS, seed: int = 0):
    """Rows and queries drawn from the same Gaussian clusters (overlapping a little, so the
    kNN graph is connected)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    label = rng.integers(0, clusters, n + nq)
    v = (centres[label] + rng.normal(size=(n + nq, dim))).astype(np.float32)
    return v[:n], v[n:]


def exact(x: np.ndarray, q: np.ndarray, k: int, metric: str, *, skip_self: bool = False):
    """The exact k best rows (float64), ties by lower row."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "L2":
        d = (q64**2).sum(1)[:, None] - 2 * q64 @ x64.T + (x64**2).sum(1)[None, :]
    else:
        d = -(q64 @ x64.T)
    if skip_self:
        np.fill_diagonal(d, np.inf)
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, np.take_along_axis(d, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def well_formed(g: np.ndarray) -> None:
    n = len(g)
    assert g.dtype == np.int32
    assert not (g == np.arange(n)[:, None]).any(), "self edge"
    s = np.sort(g, axis=1)
    assert not (s[:, 1:] == s[:, :-1]).any(), "duplicate edge"


def reachable(g: np.ndarray, start: int = 0) -> np.ndarray:
    seen = np.zeros(len(g), bool)
    seen[start] = True
    frontier = np.array([start])
    while frontier.size:
        nb = g[frontier].ravel()
        nb = np.unique(nb[nb >= 0])
        nb = nb[~seen[nb]]
        seen[nb] = True
        frontier = nb
    return seen


@pytest.fixture(scope="module")
def data():
    return clustered(N, NQ)


@pytest.fixture(scope="module")
def self_truth(data):
    x, _ = data
    return exact(x, x, 16, "L2", skip_self=True)


@pytest.fixture(scope="module", params=["L2", "IP"])
def built(request, data):
    """(metric, x, queries, optimized graph of degree 32 from a 64-NN graph, true top 10)."""
    metric = request.param
    x, q = data
    graph = cg.optimize(cg.knn_graph(x, 64, metric), 32)
    return metric, x, q, graph, exact(x, q, 10, metric)


# --------------------------------------------------------------------------- knn_graph


def test_knn_graph_exact_path(data, self_truth):
    x, _ = data
    g = cg.knn_graph(x, 16, "L2")
    assert g.shape == (N, 16)
    well_formed(g)
    assert recall(g, self_truth) >= 0.999
    assert np.array_equal(g[:, 0], self_truth[:, 0])  # best first


@pytest.mark.parametrize("algo", ["IVF_PQ", "NN_DESCENT"])
def test_knn_graph_ivf_path(data, self_truth, monkeypatch, algo):
    monkeypatch.setattr(cg, "EXACT_MAX_ROWS", 0)  # force the IVF search on 10k rows
    x, _ = data
    calls = []
    g = cg.knn_graph(x, 16, "L2", algo=algo, progress=lambda d, t: calls.append((d, t)))
    assert g.shape == (N, 16)
    well_formed(g)
    assert recall(g, self_truth) >= 0.9
    assert np.array_equal(g, cg.knn_graph(x, 16, "L2", algo=algo))  # deterministic
    assert len(calls) >= 2 and calls[-1][0] == calls[-1][1]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_nn_descent_refines_a_poor_initial_graph(data, self_truth, monkeypatch):
    monkeypatch.setattr(cg, "EXACT_MAX_ROWS", 0)
    monkeypatch.setattr(cg, "MIN_PROBES", 1)  # one probed list: a poor initial graph
    monkeypatch.setattr(cg, "PROBE_ROWS", 1)
    x, _ = data
    ivf = recall(cg.knn_graph(x, 16, "L2", algo="IVF_PQ"), self_truth)
    nnd = cg.knn_graph(x, 16, "L2", algo="NN_DESCENT")
    well_formed(nnd)
    assert ivf < 0.6
    assert recall(nnd, self_truth) >= ivf + 0.2


def test_knn_graph_ip(data):
    x, _ = data
    g = cg.knn_graph(x[:3000], 10, "IP")
    well_formed(g)
    assert recall(g, exact(x[:3000], x[:3000], 10, "IP", skip_self=True)) >= 0.999


def test_knn_graph_rejects_bad_arguments(data):
    x, _ = data
    with pytest.raises(InvalidArgumentError):
        cg.knn_graph(x[:10], 10, "L2")
    with pytest.raises(InvalidArgumentError):
        cg.knn_graph(x[:100], 5, "L2", algo="CAGRA")
    with pytest.raises(InvalidArgumentError):
        cg.knn_graph(x[:100], 5, "HAMMING")


# --------------------------------------------------------------------------- optimize


def naive_optimize(knn: np.ndarray, degree: int) -> np.ndarray:
    """The three steps exactly as CAGRA's paper words them, in plain Python."""
    n, kk = knn.shape
    reordered = []
    for i in range(n):
        row = knn[i].tolist()
        det = [sum(y in knn[row[a], :b].tolist() for a in range(b)) for b, y in enumerate(row)]
        reordered.append([row[b] for b in sorted(range(kk), key=lambda b: (det[b], b))])
    h = degree // 2
    rev: dict[int, list[int]] = {y: [] for y in range(n)}
    for _, i, y in sorted((p, i, reordered[i][p]) for i in range(n) for p in range(h)):
        if len(rev[y]) < h:
            rev[y].append(i)
    out = []
    for i in range(n):
        row: list[int] = []
        for v in reordered[i][:h] + rev[i] + reordered[i][h:]:
            if v != i and v not in row and len(row) < degree:
                row.append(v)
        out.append(row)
    return np.array(out)


HAND = np.array(
    [[1, 2, 3, 4], [2, 5, 4, 0], [5, 0, 1, 3], [4, 5, 0, 1], [3, 5, 1, 0], [2, 3, 4, 1]]
)


def test_optimize_hand_made_graph():
    # detour counts (worked by hand): row 0 [0,1,0,2] → 1,3,2,4; row 1 [0,1,0,1] → 2,4,5,0;
    # row 2 [0,0,1,2]; row 3 [0,0,0,2]; row 4 [0,0,0,1]; row 5 [0,0,1,2] (order unchanged)
    # degree 4: forward = first two; reverse: 0←2, 1←0, 2←1,5, 3←4,0 (5 dropped: rank 1,
    # source 5 > 0), 4←3,1, 5←2,3; then the rest of the reordered row
    expected4 = [[1, 3, 2, 4], [2, 4, 0, 5], [5, 0, 1, 3], [4, 5, 0, 1], [3, 5, 1, 0], [2, 3, 4, 1]]
    assert cg.optimize(HAND, 4).tolist() == expected4
    # degree 2: one forward edge, one reverse edge (2 gets 1, not 5: ties by source id)
    expected2 = [[1, 3], [2, 0], [5, 1], [4, 5], [3, 5], [2, 3]]
    assert cg.optimize(HAND, 2).tolist() == expected2
    assert np.array_equal(cg.optimize(HAND, 4), naive_optimize(HAND, 4))


@pytest.mark.parametrize("degree", [4, 5, 8])
def test_optimize_matches_the_plain_definition(degree):
    rng = np.random.default_rng(degree)
    n, kk = 60, 8
    knn = np.array([rng.permutation(np.delete(np.arange(n), i))[:kk] for i in range(n)])
    assert np.array_equal(cg.optimize(knn.astype(np.int32), degree), naive_optimize(knn, degree))


def test_optimize_clustered_graph(data):
    x, _ = data
    knn = cg.knn_graph(x, 64, "L2")
    g = cg.optimize(knn, 32)
    assert g.shape == (N, 32)
    well_formed(g)
    assert (g >= 0).all()
    # each row starts with its forward edges: the first (detour count 0) is the kNN's best
    assert np.array_equal(g[:, 0], knn[:, 0])
    # reverse edges: for the first forward edge i→y, i is in y's row in most cases
    back = (g[g[:, 0]] == np.arange(N)[:, None]).any(axis=1).mean()
    assert back >= 0.8
    assert reachable(g).all()
    assert np.array_equal(g, cg.optimize(knn, 32))


def test_optimize_pads_short_rows():
    knn = np.array([[1, -1], [-1, -1], [0, -1], [0, 1]], np.int32)
    g = cg.optimize(knn, 2)
    assert (g >= 0).all()
    well_formed(g)
    tiny = cg.optimize(np.array([[1], [0]], np.int32), 1)
    assert tiny.tolist() == [[1], [0]]
    with pytest.raises(InvalidArgumentError):
        cg.optimize(knn, 3)  # more than the kNN degree
    with pytest.raises(InvalidArgumentError):
        cg.optimize(np.array([[1], [7]]), 1)  # id out of range


# --------------------------------------------------------------------------- search


def test_search_recall_grows_with_itopk(built):
    metric, x, q, graph, truth = built
    r = {}
    for itopk in (16, 64, 128, 256):
        dist, rows = cw.search(x, graph, q, 10, metric, itopk_size=itopk)
        assert dist.shape == rows.shape == (NQ, 10)
        assert dist.dtype == np.float32 and rows.dtype == np.int64
        r[itopk] = recall(rows, truth)
    assert r[16] <= r[64] <= r[256]
    assert r[16] < r[256]
    assert r[128] >= 0.95


def test_search_distances_and_order(built):
    metric, x, q, graph, _ = built
    dist, rows = cw.search(x, graph, q, 10, metric, itopk_size=64)
    assert (rows >= 0).all()
    qv, xv = q.astype(np.float64)[:, None, :], x[rows].astype(np.float64)
    want = ((xv - qv) ** 2).sum(-1) if metric == "L2" else (xv * qv).sum(-1)
    np.testing.assert_allclose(dist, want, rtol=1e-4, atol=1e-3)
    step = np.diff(dist, axis=1)
    assert (step >= 0).all() if metric == "L2" else (step <= 0).all()
    again = cw.search(x, graph, q, 10, metric, itopk_size=64)
    assert np.array_equal(rows, again[1]) and np.array_equal(dist, again[0])


def test_search_width_and_iteration_cap(built):
    metric, x, q, graph, truth = built
    _, wide = cw.search(x, graph, q, 10, metric, itopk_size=64, search_width=4)
    assert recall(wide, truth) >= 0.95
    _, capped = cw.search(x, graph, q, 10, metric, itopk_size=64, max_iterations=1)
    _, full = cw.search(x, graph, q, 10, metric, itopk_size=64)
    assert recall(capped, truth) < recall(full, truth)


def test_search_honours_valid(built):
    metric, x, q, graph, _ = built
    valid = np.random.default_rng(5).random(N) < 0.5
    _, rows = cw.search(x, graph, q, 10, metric, itopk_size=128, valid=valid)
    assert (rows >= 0).all()
    assert valid[rows].all()
    keep = np.flatnonzero(valid)
    truth = keep[exact(x[keep], q, 10, metric)]
    assert recall(rows, truth) >= 0.9


def test_search_pads_when_too_few_rows():
    x, q = clustered(6, 3, dim=4, clusters=2)
    graph = cg.optimize(cg.knn_graph(x, 4, "L2"), 4)
    dist, rows = cw.search(x, graph, q, 10, "L2")
    assert (rows[:, :6] >= 0).all() and (rows[:, 6:] == -1).all()
    assert np.isinf(dist[:, 6:]).all() and (dist[:, 6:] > 0).all()
    assert np.array_equal(np.sort(rows[:, :6], axis=1), np.tile(np.arange(6), (3, 1)))
    valid = np.zeros(6, bool)
    valid[[1, 4]] = True
    dist, rows = cw.search(x, graph, q, 3, "IP", valid=valid)
    assert np.array_equal(np.sort(rows[:, :2], axis=1), np.tile([1, 4], (3, 1)))
    assert (rows[:, 2] == -1).all() and (dist[:, 2] == -np.inf).all()


def test_search_rejects_bad_arguments(built):
    metric, x, q, graph, _ = built
    with pytest.raises(InvalidArgumentError):
        cw.search(x, graph, q[:, :8], 10, metric)
    with pytest.raises(InvalidArgumentError):
        cw.search(x, graph[:100], q, 10, metric)
    with pytest.raises(InvalidArgumentError):
        cw.search(x, graph, q, 10, metric, valid=np.ones(5, bool))


# --------------------------------------------------------------------------- to_faiss


def test_to_faiss_serves_the_graph(built):
    faiss = faiss_module()
    metric, x, q, graph, truth = built
    index = to_faiss(x, graph, metric)
    assert index.ntotal == N and index.base_level_only
    assert index.num_base_level_search_entrypoints == 64
    params = faiss.SearchParametersHNSW(efSearch=128)
    dist, rows = index.search(q, 10, params=params)
    assert recall(rows, truth) >= 0.95
    # the same distances as the twin's search for the same rows
    tdist, trows = cw.search(x, graph, q, 10, metric, itopk_size=128)
    same = rows == trows
    np.testing.assert_allclose(dist[same], tdist[same], rtol=1e-4, atol=1e-3)
    copy = faiss.deserialize_index(faiss.serialize_index(index))
    assert copy.base_level_only and copy.num_base_level_search_entrypoints == 64
    d2, r2 = copy.search(q, 10, params=params)
    assert np.array_equal(rows, r2) and np.array_equal(dist, d2)


def test_to_faiss_odd_degree_and_short_rows(data):
    faiss = faiss_module()
    x, q = data
    x = x[:2000]
    graph = cg.optimize(cg.knn_graph(x, 16, "L2"), 9)
    graph[::7, 3] = -1  # a hole inside a row is moved to the row's end
    index = to_faiss(x, graph, "L2", entry_points=16)
    assert index.hnsw.nb_neighbors(0) == 10
    assert index.num_base_level_search_entrypoints == 16
    _, rows = index.search(q, 10, params=faiss.SearchParametersHNSW(efSearch=64))
    assert recall(rows, exact(x, q, 10, "L2")) >= 0.9


def test_to_faiss_tiny_graph():
    faiss = faiss_module()
    x, q = clustered(3, 2, dim=4, clusters=1)
    graph = cg.optimize(cg.knn_graph(x, 2, "L2"), 2)
    index = to_faiss(x, graph, "L2")  # degree 2 → padded to 4 (faiss's HNSW needs M >= 2)
    assert index.hnsw.nb_neighbors(0) == 4
    _, rows = index.search(q, 3, params=faiss.SearchParametersHNSW(efSearch=8))
    assert np.array_equal(np.sort(rows, axis=1), np.tile(np.arange(3), (2, 1)))
