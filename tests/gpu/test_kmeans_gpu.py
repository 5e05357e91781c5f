"""gpuvec's IVF build on a CUDA device against its NumPy twin: k-means on CuPy arrays
(assignment, quality, balance, determinism) and GPU_IVF_FLAT built with the CuPy backend.
Marked ``gpu``; tests/conftest.py skips them (with the reason) without CuPy or a device."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.ops.kmeans import assign, kmeans

try:
    import cupy
except ImportError:  # the tests are skipped by tests/conftest.py
    cupy = None

pytestmark = pytest.mark.gpu


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((64, dim)).astype(np.float32) * 3
    return (c[rng.integers(0, 64, n)] + rng.standard_normal((n, dim))).astype(np.float32)


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_assign_on_device_matches_the_twin(metric: str) -> None:
    x, c = clustered(20_000, 32), clustered(256, 32, seed=1)
    got = cupy.asnumpy(assign(cupy.asarray(x), cupy.asarray(c), metric))
    want = assign(x, c, metric)
    assert np.mean(got == want) > 0.999  # summation order differs: near ties only


def test_kmeans_on_device_is_as_good_as_the_twin_and_deterministic() -> None:
    x = clustered(50_000, 32)
    dev = kmeans(cupy.asarray(x), 128, iters=8, seed=5)
    host = kmeans(x, 128, iters=8, seed=5)
    again = kmeans(cupy.asarray(x), 128, iters=8, seed=5)
    assert isinstance(dev.centroids, cupy.ndarray)
    cupy.testing.assert_array_equal(dev.centroids, again.centroids)

    def inertia(c: np.ndarray) -> float:
        return float(((x - c[assign(x, c)]) ** 2).sum())

    assert inertia(cupy.asnumpy(dev.centroids)) <= 1.02 * inertia(host.centroids)
    assert dev.sizes.min() > 0


def test_gpu_ivf_flat_builds_on_the_device_backend() -> None:
    from gpuvec.index.registry import build_index
    from gpuvec.ops import backend

    backend.reset_backend()
    assert backend.is_gpu()
    x = clustered(20_000, 32)
    index = build_index(x, "L2", "GPU_IVF_FLAT", {"nlist": 64})
    q = x[:50] + np.float32(0.05)
    _, ids = index.search(q, 10, {"nprobe": 64})
    d = ((q[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)
    want = np.argsort(d, axis=1)[:, :10]
    hit = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want, strict=True)])
    assert hit >= 0.99
