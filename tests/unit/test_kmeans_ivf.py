"""gpuvec's own IVF build on its NumPy twins (what the GPU path must match): balanced
k-means (:mod:`gpuvec.ops.kmeans`), the CSR inverted lists and their exact twin search
(:mod:`gpuvec.index.ivf_lists`) against float64 brute force, the move into faiss-cpu
(same candidates as the twin), and GPU_IVF_FLAT built through them."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.ivf_lists import IvfLists
from gpuvec.index.registry import build_index, dump, load_index
from gpuvec.ops.kmeans import assign, kmeans


def clustered(n: int, dim: int, centers: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32) * 3
    return (c[rng.integers(0, centers, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def brute(q: np.ndarray, x: np.ndarray, k: int, metric: str, valid=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "L2":
        s = (q64 * q64).sum(1)[:, None] - 2 * q64 @ x64.T + (x64 * x64).sum(1)[None, :]
    else:
        s = -(q64 @ x64.T)
    if valid is not None:
        s[:, ~valid] = np.inf
    return np.argsort(s, axis=1, kind="stable")[:, :k]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


def test_assign_is_the_nearest_centroid_by_brute_force() -> None:
    x, c = clustered(3000, 16), clustered(50, 16, seed=1)
    for metric in ("L2", "IP"):
        got = assign(x, c, metric)
        want = brute(x, c, 1, metric)[:, 0]
        assert np.mean(got == want) > 0.999, metric  # float32 GEMM vs float64: near ties only


def test_kmeans_is_deterministic_and_lowers_the_objective() -> None:
    x = clustered(20_000, 24)
    a, b = kmeans(x, 64, iters=8, seed=3), kmeans(x, 64, iters=8, seed=3)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, kmeans(x, 64, iters=8, seed=4).centroids)

    def inertia(c: np.ndarray) -> float:
        return float(((x - c[assign(x, c)]) ** 2).sum())

    one = kmeans(x, 64, iters=1, seed=3)
    assert inertia(a.centroids) < inertia(one.centroids)
    import faiss

    ref = faiss.Kmeans(24, 64, niter=8, seed=3)
    ref.train(x)
    assert inertia(a.centroids) <= 1.1 * inertia(ref.centroids)  # as good as faiss's


def test_kmeans_balances_skewed_data() -> None:
    rng = np.random.default_rng(0)
    heavy = rng.standard_normal((19_000, 8)).astype(np.float32) * 0.01  # 95 % in one blob
    rest = rng.standard_normal((1000, 8)).astype(np.float32) * 10
    x = np.concatenate([heavy, rest])
    km = kmeans(x, 32, iters=10, max_points_per_centroid=10_000)
    assert km.sizes.min() > 0  # no empty list
    assert km.splits > 0
    assert km.sizes.max() < 0.5 * km.sizes.sum()  # the blob is spread over several lists


def test_kmeans_refuses_bad_input() -> None:
    x = clustered(100, 4)
    with pytest.raises(InvalidArgumentError, match="k = 101"):
        kmeans(x, 101)
    with pytest.raises(InvalidArgumentError, match="'HAMMING'"):
        kmeans(x, 4, metric="HAMMING")
    with pytest.raises(InvalidArgumentError, match="2-D"):
        kmeans(x[0], 4)


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_twin_search_recall_against_brute_force(metric: str, dtype: type) -> None:
    x = clustered(8000, 32)
    if metric == "IP":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:64] + np.float32(0.05)
    km = kmeans(x, 64, metric="COSINE" if metric == "IP" else "L2", iters=10)
    lists = IvfLists.fill(x, km.centroids, metric, dtype=dtype)
    assert lists.ntotal == len(x) and lists.offsets[-1] == len(x)
    assert sorted(lists.ids.tolist()) == list(range(len(x)))
    want = brute(q, x, 10, metric)
    got = {p: recall(lists.search(q, 10, p)[1], want) for p in (1, 4, 16, 64)}
    assert got[1] <= got[4] <= got[16] <= got[64]
    assert got[16] >= 0.9 and got[64] >= (0.99 if dtype is np.float32 else 0.97), got


def test_twin_search_applies_the_valid_mask() -> None:
    x = clustered(4000, 16)
    q = x[:20]
    lists = IvfLists.fill(x, kmeans(x, 16, iters=5).centroids, "L2")
    valid = np.random.default_rng(1).random(len(x)) < 0.3
    _, ids = lists.search(q, 10, nprobe=16, valid=valid)  # every list: exact
    assert valid[ids[ids >= 0]].all()
    assert recall(ids, brute(q, x, 10, "L2", valid)) == 1.0
    none = np.zeros(len(x), bool)
    s, ids = lists.search(q, 5, nprobe=16, valid=none)
    assert (ids == -1).all() and np.isinf(s).all()


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_faiss_serves_the_same_lists_as_the_twin(metric: str) -> None:
    x = clustered(6000, 16)
    q = x[:40] + np.float32(0.1)
    lists = IvfLists.fill(x, kmeans(x, 32, iters=6).centroids, metric)
    index = lists.to_faiss()
    assert index.ntotal == len(x)
    for nprobe in (1, 3, 8):
        index.nprobe = nprobe
        fs, fi = index.search(q, 10)
        ts, ti = lists.search(q, 10, nprobe)
        assert np.mean(fi == ti) > 0.99, nprobe  # ties aside, the same candidates
        np.testing.assert_allclose(fs, ts, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_gpu_ivf_flat_is_built_by_gpuvec_and_round_trips(metric: str) -> None:
    x = clustered(5000, 16)
    index = build_index(x, metric, "GPU_IVF_FLAT", {"nlist": 32})
    desc = index.describe()
    assert "gpuvec's balanced k-means" in desc["note"]
    q = x[:30] + np.float32(0.05)
    _, ids = index.search(q, 10, {"nprobe": 32})  # every list: exact
    kind = "L2" if metric == "L2" else "IP"
    y = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "COSINE" else x
    qq = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "COSINE" else q
    assert recall(ids, brute(qq, y, 10, kind)) >= 0.99
    again = load_index(dump(index))
    np.testing.assert_array_equal(again.search(q, 10, {"nprobe": 4})[1],
                                  index.search(q, 10, {"nprobe": 4})[1])  # fmt: skip
