"""The CAGRA search kernel (``kernels/cagra_search.cu`` through
:class:`gpuvec.ops.cagra_gpu.DeviceCagra`) against its NumPy twin
(:func:`gpuvec.index.cagra_walk.search`) on the same graph and seed rows: nearly the same
hits and distances, recall against brute force, filters honoured, L2 and IP. Marked
``gpu``; tests/conftest.py skips them (with the reason) without CuPy or a device."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.index import cagra_graph, cagra_walk
from gpuvec.ops.cagra_gpu import DeviceCagra

pytestmark = pytest.mark.gpu


def data(n: int = 20000, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    c = rng.normal(size=(200, dim)).astype(np.float32)
    x = (c[rng.integers(0, 200, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    q = (c[rng.integers(0, 200, 300)] + rng.normal(size=(300, dim))).astype(np.float32)
    return x, q


def brute(x: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    s = q.astype(np.float64) @ x.T.astype(np.float64)
    if metric == "L2":
        s = (x.astype(np.float64) ** 2).sum(1)[None, :] - 2 * s
        return np.argsort(s, axis=1, kind="stable")[:, :k]
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_kernel_matches_twin(metric: str) -> None:
    x, q = data()
    graph = cagra_graph.optimize(cagra_graph.knn_graph(x, 64, metric), 32)
    k, itopk = 10, 64
    seeds = cagra_walk.start_rows(0, len(q), max(itopk, 32), len(x))
    dev = DeviceCagra(x, graph, metric).search(q, k, seeds, itopk_size=itopk)
    twin = cagra_walk.search(x, graph, q, k, metric, itopk_size=itopk)
    same = np.mean([len(set(a) & set(b)) / k for a, b in zip(dev[1], twin[1], strict=True)])
    assert same >= 0.95, same
    truth = brute(x, q, k, metric)
    rec = np.mean([len(set(a) & set(b)) / k for a, b in zip(dev[1], truth, strict=True)])
    assert rec >= 0.9, rec
    both = dev[1] == twin[1]
    np.testing.assert_allclose(dev[0][both], twin[0][both], rtol=1e-4, atol=1e-3)


def test_kernel_honours_the_filter() -> None:
    x, q = data()
    graph = cagra_graph.optimize(cagra_graph.knn_graph(x, 64, "L2"), 32)
    valid = np.random.default_rng(5).random(len(x)) < 0.5
    seeds = cagra_walk.start_rows(0, len(q), 128, len(x))
    _, rows = DeviceCagra(x, graph, "L2").search(q, 10, seeds, itopk_size=128, valid=valid)
    got = rows[rows >= 0]
    assert got.size > 0.9 * rows.size and valid[got].all()
