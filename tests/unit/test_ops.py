"""gpuvec.ops on the CPU: knn and merge_topk against a plain, obviously-correct reference
(float64 distance matrix + stable argsort), backend selection and input checks."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from gpuvec.errors import GpuvecError, InvalidArgumentError
from gpuvec.ops import backend, knn, knn_numpy, merge_topk, pad_value, search, sq_norms
from gpuvec.testing.knn_reference import assert_matches, data, mask, ref_knn, tolerance

METRICS = ["L2", "IP", "COSINE"]


# --- the reference -------------------------------------------------------------------------
# --- knn -----------------------------------------------------------------------------------
SHAPES = [  # n, dim, nq, k
    (1, 1, 1, 1),
    (5, 3, 1, 10),  # k > n
    (7, 8, 3, 7),  # k == n
    (100, 1, 4, 5),  # dim 1
    (1000, 384, 1, 10),  # batch 1
    (3000, 64, 20, 50),
    (70_000, 8, 2, 5),  # several base blocks
    (5000, 16, 300, 3),  # several query blocks on the thread pool
]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["none", "half", "sparse", "all_false"])
def test_knn_matches_reference(metric: str, shape: tuple[int, int, int, int], kind: str) -> None:
    n, d, nq, k = shape
    base, queries = data(n * 7 + d, n, d, nq)
    valid = mask(n, n, kind)
    got = knn(base, queries, k, metric, valid=valid)
    assert_matches(
        got, ref_knn(base, queries, k, metric, valid), tolerance(base, queries, metric), valid
    )


@pytest.mark.parametrize("seed", range(40))
def test_knn_random_shapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 2500)), int(rng.integers(1, 385))
    nq, k = int(rng.choice([1, 2, 17, 40])), int(rng.integers(1, 70))
    metric = METRICS[seed % 3]
    base, queries = data(seed, n, d, nq)
    valid = mask(seed, n, ["none", "half", "sparse", "all_true"][seed % 4])
    norms = sq_norms(base) if seed % 2 else None
    got = knn(base, queries, k, metric, valid=valid, base_sq_norms=norms)
    assert_matches(
        got, ref_knn(base, queries, k, metric, valid), tolerance(base, queries, metric), valid
    )


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("seed", range(6))
def test_exact_ties_broken_by_lower_index(metric: str, seed: int) -> None:
    """Small integers make every float32 product and sum exact: the results must equal
    the reference bit for bit, including the order of the many ties."""
    rng = np.random.default_rng(seed)
    n, d, nq, k = [(300, 4, 5, 40), (9000, 3, 3, 100), (5000, 2, 130, 7)][seed % 3]
    base = rng.integers(-2, 3, (n, d)).astype(np.float32)
    queries = rng.integers(-2, 3, (nq, d)).astype(np.float32)
    valid = mask(seed, n, "half") if seed % 2 else None
    gd, gi = knn(base, queries, k, metric, valid=valid)
    rd, ri, _ = ref_knn(base, queries, k, metric, valid)
    np.testing.assert_array_equal(gi, ri)
    np.testing.assert_array_equal(gd, rd.astype(np.float32))


def test_all_identical_vectors_return_lowest_indices() -> None:
    base = np.ones((10_000, 8), dtype=np.float32)
    for metric in METRICS:
        _, i = knn(base, np.ones((2, 8), np.float32), 5, metric)
        np.testing.assert_array_equal(i, np.tile(np.arange(5), (2, 1)))


def test_adversarial_order_and_duplicates() -> None:
    """Distances that improve with every row defeat thresholding; the fallback must hold."""
    d = 4
    q = np.zeros((3, d), np.float32)
    base = np.repeat(np.linspace(10, 0, 50_000, dtype=np.float32)[:, None], d, axis=1)
    base[::2] = base[1::2]  # pairs of duplicates
    for metric in ["L2", "IP"]:
        qq = q if metric == "L2" else q - 1
        got = knn(base, qq, 20, metric)
        assert_matches(got, ref_knn(base, qq, 20, metric), tolerance(base, qq, metric))


def test_zero_vectors_cosine() -> None:
    base = np.zeros((4, 3), np.float32)
    base[1] = [1, 0, 0]
    d, i = knn(base, np.array([[2.0, 0, 0], [0, 0, 0]], np.float32), 4, "COSINE")
    np.testing.assert_allclose(d[0], [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(i[0], [1, 0, 2, 3])
    np.testing.assert_array_equal(i[1], [0, 1, 2, 3])


def test_recall_at_10_is_one() -> None:
    base, queries = data(3, 20_000, 96, 50)
    for metric in METRICS:
        _, gi = knn(base, queries, 10, metric)
        _, ri, _ = ref_knn(base, queries, 10, metric)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(gi, ri, strict=True)])
        assert recall == 1.0


def test_paths_agree() -> None:
    """Batch-1 (faiss SIMD or GEMV), the single-thread and the thread-pool paths agree."""
    base, queries = data(5, 30_000, 48, 64)
    norms = sq_norms(base)
    whole = knn_numpy(base, queries, 10, "L2", base_sq_norms=norms)
    serial = knn_numpy(base, queries, 10, "L2", base_sq_norms=norms, threads=1)
    np.testing.assert_array_equal(whole[1], serial[1])
    for r in range(0, 64, 9):
        single = knn_numpy(base, queries[r], 10, "L2", base_sq_norms=norms)
        np.testing.assert_array_equal(single[1][0], whole[1][r])
        np.testing.assert_allclose(single[0][0], whole[0][r], rtol=1e-5, atol=1e-3)


def test_single_query_without_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    base, queries = data(6, 9000, 33, 1)
    with_faiss = knn(base, queries, 8, "IP")
    monkeypatch.setattr(search, "_faiss_mod", False)
    without = knn(base, queries, 8, "IP")
    np.testing.assert_array_equal(with_faiss[1], without[1])
    np.testing.assert_allclose(with_faiss[0], without[0], rtol=1e-5, atol=1e-4)


def test_shapes_dtypes_and_empty_inputs() -> None:
    base, queries = data(8, 50, 4, 3)
    d, i = knn(base.astype(np.float64), queries[0].tolist(), 3, "l2")  # 1-D query, f64, case
    assert d.shape == (1, 3) and d.dtype == np.float32 and i.dtype == np.int64
    d, i = knn(np.empty((0, 4), np.float32), queries, 2, "IP")
    assert (i == -1).all() and (d == -np.inf).all()
    d, i = knn(base, np.empty((0, 4), np.float32), 2, "L2")
    assert d.shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "HAMMING"}, "metric_type"),
        ({"k": 0}, "k \\(topk\\)"),
        ({"k": True}, "k \\(topk\\)"),
        ({"queries": np.zeros((2, 5), np.float32)}, "dim 5"),
        ({"base": np.zeros((2, 3, 4), np.float32)}, "2-D"),
        ({"valid": np.ones(7, bool)}, "valid must have shape"),
        ({"valid": np.ones(10, np.int8)}, "boolean"),
        ({"base_sq_norms": np.ones(3, np.float32)}, "base_sq_norms"),
        ({"queries": np.array([["a", "b", "c", "d"]])}, "numbers"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    args = {
        "base": np.zeros((10, 4), np.float32),
        "queries": np.zeros((2, 4), np.float32),
        "k": 3,
        "metric": "L2",
    }
    args.update(kwargs)
    with pytest.raises(InvalidArgumentError, match=match):
        knn(args.pop("base"), args.pop("queries"), args.pop("k"), args.pop("metric"), **args)


# --- merge_topk ----------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["none", "half"])
def test_merge_segments_equals_whole(metric: str, kind: str) -> None:
    base, queries = data(11, 4000, 24, 9)
    valid = mask(11, 4000, kind)
    bounds = [0, 700, 701, 2500, 4000]  # one single-row segment
    parts = []
    for s0, s1 in itertools.pairwise(bounds):
        seg_valid = None if valid is None else valid[s0:s1]
        d, i = knn(base[s0:s1], queries, 15, metric, valid=seg_valid)
        parts.append((d, np.where(i >= 0, i + s0, -1)))
    got = merge_topk(parts, 12, metric)
    assert_matches(got, ref_knn(base, queries, 12, metric, valid), tolerance(base, queries, metric))


def ref_merge(parts: list, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    nq = parts[0][0].shape[0]
    out_d = np.full((nq, k), pad_value(metric), np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    for r in range(nq):
        items = [
            (float(d[r, j]) if metric == "L2" else -float(d[r, j]), int(i[r, j]), float(d[r, j]))
            for d, i in parts
            for j in range(d.shape[1])
            if i[r, j] >= 0
        ]
        items.sort(key=lambda t: (t[0], t[1]))
        for j, (_, ident, dist) in enumerate(items[:k]):
            out_d[r, j], out_i[r, j] = dist, ident
    return out_d, out_i


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(8))
def test_merge_topk_reference(metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    nq, k = int(rng.integers(1, 6)), int(rng.integers(1, 30))
    parts = []
    for _ in range(int(rng.integers(1, 5))):
        ki = int(rng.integers(1, 20))
        d = rng.integers(0, 6, (nq, ki)).astype(np.float32)  # many equal distances
        i = rng.integers(0, 10**12, (nq, ki))
        i[rng.random((nq, ki)) < 0.2] = -1
        d[i < 0] = rng.standard_normal(int((i < 0).sum()))  # garbage beside -1: ignored
        parts.append((d, i))
    gd, gi = merge_topk(parts, k, metric)
    rd, ri = ref_merge(parts, k, metric)
    np.testing.assert_array_equal(gi, ri)
    np.testing.assert_array_equal(gd, rd)


def test_merge_topk_bad_parts() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one part"):
        merge_topk([], 3, "L2")
    a = (np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int64))
    b = (np.zeros((3, 3), np.float32), np.zeros((3, 3), np.int64))
    with pytest.raises(InvalidArgumentError, match="part 1"):
        merge_topk([a, b], 3, "L2")
    with pytest.raises(InvalidArgumentError, match="metric_type"):
        merge_topk([a], 3, "MANHATTAN")


def test_merge_topk_binary_metrics_are_distances() -> None:
    a = (np.array([[1.0, 5.0]], np.float32), np.array([[10, 11]], np.int64))
    b = (np.array([[3.0, 0.0]], np.float32), np.array([[20, -1]], np.int64))
    for metric in ("HAMMING", "JACCARD"):
        d, i = merge_topk([a, b], 3, metric)
        assert i.tolist() == [[10, 20, 11]] and d.tolist() == [[1.0, 3.0, 5.0]]
    assert pad_value("HAMMING") == pad_value("JACCARD") == np.inf


def test_pad_value_and_norms() -> None:
    assert pad_value("L2") == np.inf and pad_value("IP") == pad_value("COSINE") == -np.inf
    v = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(sq_norms(v), (v.astype(np.float64) ** 2).sum(1))


# --- backend -------------------------------------------------------------------------------
@pytest.fixture
def fresh_backend() -> Iterator[None]:
    backend.reset_backend()
    yield
    backend.reset_backend()


def test_cpu_backend(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    monkeypatch.setenv("GPUVEC_DEVICE", "cpu")
    assert backend.backend_name() == "cpu:numpy"
    assert backend.is_gpu() is False and backend.xp() is np
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    dev = backend.to_device(a)
    assert isinstance(dev, np.ndarray) and dev is a
    np.testing.assert_array_equal(backend.to_host(dev), a)
    assert backend.to_device([1, 2], dtype=np.float32).dtype == np.float32
    free, total = backend.device_memory()
    assert 0 < free <= total


def test_bad_device_env(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    monkeypatch.setenv("GPUVEC_DEVICE", "tpu")
    with pytest.raises(InvalidArgumentError, match="GPUVEC_DEVICE"):
        backend.backend_name()


def test_auto_and_forced_gpu(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    reason = backend.gpu_unavailable_reason()
    monkeypatch.setenv("GPUVEC_DEVICE", "auto")
    assert backend.is_gpu() is (reason is None)
    backend.reset_backend()
    monkeypatch.setenv("GPUVEC_DEVICE", "gpu")
    if reason is None:
        assert backend.backend_name().startswith("cuda:")
    else:
        with pytest.raises(GpuvecError, match="GPUVEC_DEVICE=gpu"):
            backend.backend_name()


def test_import_does_not_need_cupy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "import gpuvec.ops as o, numpy as np\n"
        "print(o.knn(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1, 'IP')[1].ravel())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0 1 2]"


def test_blas_limit_restored_after_concurrent_batch1() -> None:
    """Batch-1 calls limit BLAS to one thread; concurrent calls must not leave it there."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from concurrent.futures import ThreadPoolExecutor

    def blas_threads() -> list[int]:
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    before = blas_threads()
    base, queries = data(9, 20_000, 32, 16)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda r: knn(base, queries[r], 5, "L2"), [r % 16 for r in range(60)]))
    assert blas_threads() == before
