"""gpuvec.ops on a CUDA device: the CuPy knn path (both selectors) against the NumPy path
and a float64 reference, the top-k kernel against its NumPy twin, merging, and device
residency. Every test is marked ``gpu``; tests/conftest.py skips them (with the reason)
where CuPy or a CUDA device is missing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from gpuvec.ops import backend, knn, knn_numpy, merge_topk, sq_norms
from gpuvec.testing.knn_reference import assert_matches, data, mask, ref_knn, tolerance

try:
    import cupy
except ImportError:  # the tests are skipped by tests/conftest.py
    cupy = None

pytestmark = pytest.mark.gpu

METRICS = ["L2", "IP", "COSINE"]
SELECTORS = ["kernel", "sort"]


def gpu_mod() -> Any:
    from gpuvec.ops import gpu

    return gpu


@pytest.fixture
def fresh_backend() -> Iterator[None]:
    backend.reset_backend()
    yield
    backend.reset_backend()


# --- backend and residency -----------------------------------------------------------------
def test_backend_picks_cuda(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    monkeypatch.setenv("GPUVEC_DEVICE", "auto")
    assert backend.gpu_unavailable_reason() is None
    assert backend.is_gpu() is True
    assert backend.backend_name().startswith("cuda:") and len(backend.backend_name()) > 5
    assert backend.xp() is cupy
    free, total = backend.device_memory()
    assert total > 1 << 30 and 0 < free <= total
    backend.reset_backend()
    monkeypatch.setenv("GPUVEC_DEVICE", "gpu")
    assert backend.is_gpu() is True
    backend.reset_backend()
    monkeypatch.setenv("GPUVEC_DEVICE", "cpu")
    assert backend.is_gpu() is False and backend.backend_name() == "cpu:numpy"
    assert isinstance(backend.to_device(cupy.arange(3)), np.ndarray)  # cpu: comes home


def test_residency_round_trip(monkeypatch: pytest.MonkeyPatch, fresh_backend: None) -> None:
    monkeypatch.setenv("GPUVEC_DEVICE", "gpu")
    host = np.random.default_rng(0).standard_normal((1000, 24), dtype=np.float32)
    dev = backend.to_device(host)
    assert isinstance(dev, cupy.ndarray) and backend.is_cupy_array(dev)
    assert backend.to_device(dev).data.ptr == dev.data.ptr  # no copy
    back = backend.to_host(dev)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    before = backend.to_host(dev).copy()
    d, i = knn(dev, host[:5], 3, "L2")  # searching must not touch the resident base
    assert isinstance(d, np.ndarray) and isinstance(i, np.ndarray)
    np.testing.assert_array_equal(i[:, 0], np.arange(5))
    np.testing.assert_array_equal(backend.to_host(dev), before)


def test_default_selector_is_the_kernel() -> None:
    """The CUDA source compiles with NVRTC on this device (else the default is "sort")."""
    gpu = gpu_mod()
    gpu._kernel()  # raises GpuvecError with the compiler log if it does not compile
    assert gpu.default_selector() == "kernel"


# --- knn -----------------------------------------------------------------------------------
SHAPES = [  # n, dim, nq, k
    (1, 1, 1, 1),
    (5, 3, 1, 10),
    (7, 8, 3, 7),
    (100, 1, 4, 5),
    (1000, 384, 1, 10),
    (3000, 64, 20, 50),
    (70_000, 8, 2, 5),
    (5000, 16, 300, 3),
    (20_000, 128, 64, 100),
]


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["none", "half", "sparse", "all_false"])
def test_knn_matches_reference_and_cpu(
    selector: str, metric: str, shape: tuple[int, int, int, int], kind: str
) -> None:
    n, d, nq, k = shape
    base, queries = data(n * 7 + d, n, d, nq)
    valid = mask(n, n, kind)
    got = gpu_mod().knn_cupy(cupy.asarray(base), queries, k, metric, valid=valid, selector=selector)
    tol = tolerance(base, queries, metric)
    assert_matches(got, ref_knn(base, queries, k, metric, valid), tol, valid)
    cpu = knn_numpy(base, queries, k, metric, valid=valid)
    np.testing.assert_allclose(got[0], cpu[0], rtol=1e-4, atol=tol)


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("seed", range(20))
def test_knn_random_shapes(selector: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 5000)), int(rng.integers(1, 385))
    nq, k = int(rng.choice([1, 2, 17, 40])), int(rng.integers(1, 70))
    metric = METRICS[seed % 3]
    base, queries = data(seed, n, d, nq)
    valid = mask(seed, n, ["none", "half", "sparse", "all_true"][seed % 4])
    dev_valid = None if valid is None else cupy.asarray(valid)
    norms = sq_norms(cupy.asarray(base)) if seed % 2 else None
    got = gpu_mod().knn_cupy(
        cupy.asarray(base), cupy.asarray(queries), k, metric,
        valid=dev_valid, base_sq_norms=norms, selector=selector,
    )  # fmt: skip
    assert_matches(
        got, ref_knn(base, queries, k, metric, valid), tolerance(base, queries, metric), valid
    )


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("seed", range(3))
def test_exact_ties_equal_cpu_bit_for_bit(selector: str, metric: str, seed: int) -> None:
    """Small integers: every product and sum is exact, so GPU, CPU and reference agree
    exactly, including which of the many tied rows win (lower index)."""
    rng = np.random.default_rng(seed)
    n, d, nq, k = [(300, 4, 5, 40), (9000, 3, 3, 100), (50_000, 2, 130, 7)][seed]
    base = rng.integers(-2, 3, (n, d)).astype(np.float32)
    queries = rng.integers(-2, 3, (nq, d)).astype(np.float32)
    valid = mask(seed, n, "half") if seed != 1 else None
    gd, gi = gpu_mod().knn_cupy(
        cupy.asarray(base), queries, k, metric, valid=valid, selector=selector
    )
    rd, ri, _ = ref_knn(base, queries, k, metric, valid)
    np.testing.assert_array_equal(gi, ri)
    np.testing.assert_array_equal(gd, rd.astype(np.float32))
    cd, ci = knn_numpy(base, queries, k, metric, valid=valid)
    np.testing.assert_array_equal(gi, ci)
    np.testing.assert_array_equal(gd, cd)


@pytest.mark.parametrize("selector", SELECTORS)
def test_all_identical_and_zero_vectors(selector: str) -> None:
    gpu = gpu_mod()
    base = cupy.ones((10_000, 8), dtype=cupy.float32)
    for metric in METRICS:
        _, i = gpu.knn_cupy(base, np.ones((2, 8), np.float32), 5, metric, selector=selector)
        np.testing.assert_array_equal(i, np.tile(np.arange(5), (2, 1)))
    z = np.zeros((4, 3), np.float32)
    z[1] = [1, 0, 0]
    q = np.array([[2.0, 0, 0], [0, 0, 0]], np.float32)
    d, i = gpu.knn_cupy(cupy.asarray(z), q, 4, "COSINE", selector=selector)
    np.testing.assert_allclose(d[0], [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(i, [[1, 0, 2, 3], [0, 1, 2, 3]])
    _, i = gpu.knn_cupy(cupy.asarray(z), -q, 4, "IP", selector=selector)  # -0.0 == 0.0
    np.testing.assert_array_equal(i, [[0, 2, 3, 1], [0, 1, 2, 3]])


@pytest.mark.parametrize("selector", SELECTORS)
def test_many_blocks(monkeypatch: pytest.MonkeyPatch, selector: str) -> None:
    """Small query and base blocks: the running top-k crosses many block boundaries."""
    gpu = gpu_mod()
    monkeypatch.setattr(gpu, "_blocks", lambda nq, n, k: (7, 4096))
    base, queries = data(21, 30_000, 32, 40)
    valid = mask(21, 30_000, "half")
    for metric in METRICS:
        got = gpu.knn_cupy(cupy.asarray(base), queries, 25, metric, valid=valid, selector=selector)
        tol = tolerance(base, queries, metric)
        assert_matches(got, ref_knn(base, queries, 25, metric, valid), tol, valid)


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("metric", METRICS)
def test_host_and_device_final_ordering_agree(
    monkeypatch: pytest.MonkeyPatch, selector: str, metric: str
) -> None:
    """Few candidates are ordered on the host, many on the device: both give the same
    rows in the same order (ties included) and the same distances."""
    gpu = gpu_mod()
    rng = np.random.default_rng(5)
    base = rng.integers(-3, 4, (5000, 12)).astype(np.float32)  # exact sums: many ties
    queries = rng.integers(-3, 4, (30, 12)).astype(np.float32)
    valid = mask(5, 5000, "half")
    host = gpu.knn_cupy(cupy.asarray(base), queries, 20, metric, valid=valid, selector=selector)
    monkeypatch.setattr(gpu, "_HOST_SORT_ELEMS", 0)
    dev = gpu.knn_cupy(cupy.asarray(base), queries, 20, metric, valid=valid, selector=selector)
    np.testing.assert_array_equal(host[1], dev[1])
    np.testing.assert_array_equal(host[0], dev[0])
    if metric != "COSINE":
        cpu = knn_numpy(base, queries, 20, metric, valid=valid)
        np.testing.assert_array_equal(host[1], cpu[1])


def test_more_rows_than_grid_y(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query block of more than 65535 rows: kernel launches are split over grid rows."""
    gpu = gpu_mod()
    monkeypatch.setattr(gpu, "_blocks", lambda nq, n, k: (nq, 4096))
    base, queries = data(22, 300, 4, 70_000)
    gd, gi = gpu.knn_cupy(cupy.asarray(base), queries, 3, "L2", selector="kernel")
    cd, ci = knn_numpy(base, queries, 3, "L2")
    np.testing.assert_allclose(gd, cd, rtol=1e-4, atol=1e-3)
    assert (gi == ci).mean() > 0.999  # float rounding may swap near-ties


@pytest.mark.parametrize("k", [1000, 3000])
def test_large_k(k: int) -> None:
    base, queries = data(23, 60_000, 16, 5)
    for metric in ["L2", "IP"]:
        got = gpu_mod().knn_cupy(cupy.asarray(base), queries, k, metric, selector="kernel")
        assert_matches(got, ref_knn(base, queries, k, metric), tolerance(base, queries, metric))


def test_recall_and_dispatch_large() -> None:
    """200k x 128: knn() on a device base takes the GPU path; recall@10 vs exact = 1."""
    base, queries = data(24, 200_000, 128, 64)
    dev = cupy.asarray(base)
    norms = sq_norms(dev)
    assert isinstance(norms, cupy.ndarray)
    for metric in METRICS:
        gd, gi = knn(dev, queries, 10, metric, base_sq_norms=norms if metric != "IP" else None)
        ref = ref_knn(base, queries, 10, metric)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(gi, ref[1], strict=True)])
        assert recall == 1.0
        assert_matches((gd, gi), ref, tolerance(base, queries, metric))


# --- kernel-level ---------------------------------------------------------------------------
def ref_select(
    v: np.ndarray, ids: np.ndarray, k: int, chunk: int, tau: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy twin stated in kernels/topk.cu's header."""
    rows, ncols = v.shape
    nch = -(-ncols // chunk)
    out_v = np.full((rows, nch * k), np.inf, np.float32)
    out_i = np.full((rows, nch * k), -1, np.int64)
    for r in range(rows):
        for c in range(nch):
            cols = np.arange(c * chunk, min(ncols, (c + 1) * chunk))
            vv = v[r, cols] + np.float32(0)  # -0.0 -> +0.0
            elig = np.flatnonzero(vv < tau[r]) if tau is not None else np.arange(len(cols))
            want = min(k, len(elig))
            if want == 0:
                continue
            if want == len(elig):
                o = elig  # all taken: column order
            else:
                order = elig[np.argsort(vv[elig], kind="stable")[:want]]
                sel = np.sort(order)
                kth = vv[order[-1]]
                o = np.concatenate([sel[vv[sel] < kth], sel[vv[sel] == kth]])
            out_v[r, c * k : c * k + want] = v[r, cols[o]]
            out_i[r, c * k : c * k + want] = ids[r, cols[o]]
    return out_v, out_i


@pytest.mark.parametrize("seed", range(40))
def test_select_kernel_matches_numpy_twin(seed: int) -> None:
    gpu = gpu_mod()
    rng = np.random.default_rng(seed)
    rows, ncols, k = int(rng.integers(1, 4)), int(rng.integers(1, 3000)), int(rng.integers(1, 40))
    chunk = int(rng.choice([64, 128, 1000, 4096]))
    kind = seed % 4
    if kind == 0:
        d = rng.standard_normal((rows, ncols)).astype(np.float32)
    elif kind == 1:
        d = rng.integers(-3, 4, (rows, ncols)).astype(np.float32)
    elif kind == 2:
        d = np.zeros((rows, ncols), np.float32)
        d[:, ::3] = -0.0
    else:
        d = rng.standard_normal((rows, ncols)).astype(np.float32)
        d[rng.random((rows, ncols)) < 0.7] = np.inf
    scale = (rng.random(ncols) + 0.5).astype(np.float32) if seed % 3 == 0 else None
    bias = rng.standard_normal(ncols).astype(np.float32) if seed % 3 == 1 else None
    in_idx = rng.permutation(rows * ncols).reshape(rows, ncols).astype(np.int64) * 7
    in_idx = in_idx if seed % 2 == 0 else None
    v = d.copy()
    if scale is not None:
        v = v * scale
    if bias is not None:
        v = v + bias
    ids = in_idx if in_idx is not None else np.broadcast_to(np.arange(ncols) + 1000, (rows, ncols))
    tau = None
    if seed % 5 >= 2:  # a per-row bound: a value of the row, +inf or -inf
        pick = rng.integers(0, ncols, rows)
        tau = np.take_along_axis(v, pick[:, None], 1)[:, 0].astype(np.float32)
        tau[rng.random(rows) < 0.3] = rng.choice([np.inf, -np.inf])
    nch = -(-ncols // chunk)
    od = cupy.full((rows, nch * k + 5), 123.0, dtype=cupy.float32)
    oi = cupy.full((rows, nch * k + 5), 77, dtype=cupy.int64)
    dev = [None if a is None else cupy.asarray(a) for a in (d, in_idx, scale, bias, tau)]
    got = gpu.select_topk(
        dev[0], ncols, k, od, oi, in_idx=dev[1], col_offset=1000,
        scale=dev[2], bias=dev[3], row_tau=dev[4], chunk=chunk,
    )  # fmt: skip
    assert got == nch
    rv, ri = ref_select(v, ids, k, chunk, tau)
    np.testing.assert_array_equal(cupy.asnumpy(oi[:, : nch * k]), ri)
    np.testing.assert_array_equal(cupy.asnumpy(od[:, : nch * k]), rv)
    assert bool((od[:, nch * k :] == 123.0).all())


def test_select_into_row_strided_view() -> None:
    """Output into ``buf[:, k:]`` (the running top-k sits in the first k columns)."""
    gpu = gpu_mod()
    d = cupy.asarray(np.random.default_rng(3).standard_normal((3, 5000)).astype(np.float32))
    k = 4
    buf_d = cupy.zeros((3, k + 2 * k), dtype=cupy.float32)
    buf_i = cupy.zeros((3, k + 2 * k), dtype=cupy.int64)
    gpu.select_topk(d, 5000, k, buf_d[:, k:], buf_i[:, k:], chunk=4096)
    assert bool((buf_d[:, :k] == 0).all()) and bool((buf_i[:, :k] == 0).all())
    rv, ri = ref_select(cupy.asnumpy(d), np.broadcast_to(np.arange(5000), (3, 5000)), k, 4096)
    np.testing.assert_array_equal(cupy.asnumpy(buf_i[:, k:]), ri)
    np.testing.assert_array_equal(cupy.asnumpy(buf_d[:, k:]), rv)


def test_sort_rows_value_then_position() -> None:
    gpu = gpu_mod()
    rng = np.random.default_rng(4)
    v = rng.integers(-2, 3, (6, 50)).astype(np.float32)
    v[0, :10] = -0.0
    v[1, 5:] = np.inf
    ids = rng.integers(0, 1000, (6, 50))
    sd, si = gpu.sort_rows(cupy.asarray(v), cupy.asarray(ids))
    order = np.argsort(v + np.float32(0), axis=1, kind="stable")
    np.testing.assert_array_equal(cupy.asnumpy(si), np.take_along_axis(ids, order, 1))
    np.testing.assert_array_equal(cupy.asnumpy(sd), np.take_along_axis(v, order, 1))


# --- merging -------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_merge_device_segments_equals_whole(metric: str) -> None:
    base, queries = data(31, 40_000, 24, 9)
    valid = mask(31, 40_000, "half")
    bounds = [0, 7000, 7001, 25_000, 40_000]
    parts = []
    for s0, s1 in itertools.pairwise(bounds):
        d, i = knn(cupy.asarray(base[s0:s1]), queries, 15, metric, valid=valid[s0:s1])
        parts.append((cupy.asarray(d), cupy.asarray(np.where(i >= 0, i + s0, -1))))
    got = merge_topk(parts, 12, metric)
    tol = tolerance(base, queries, metric)
    assert_matches(got, ref_knn(base, queries, 12, metric, valid), tol, valid)
