"""The IVF-Flat list scan on a CUDA device (``kernels/ivf_flat.cu`` through
:class:`gpuvec.ops.ivf_gpu.DeviceIvfFlat`) against its NumPy twin
(:meth:`gpuvec.index.ivf_lists.IvfLists.search`): same candidates, scores within a
tolerance, for L2 and IP, float32 and float16 rows, the valid mask, lists longer than one
block's segment, empty lists and k above a list's size. Marked ``gpu``; skipped (with the
reason) where CuPy or a device is missing."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.index.ivf_lists import IvfLists
from gpuvec.ops.kmeans import kmeans

pytestmark = pytest.mark.gpu


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((32, dim)).astype(np.float32) * 3
    return (c[rng.integers(0, 32, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def lists_of(metric: str, dtype: type, n: int = 6000, dim: int = 40, nlist: int = 24) -> IvfLists:
    x = clustered(n, dim)
    if metric == "IP":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    km = kmeans(x, nlist, metric="COSINE" if metric == "IP" else "L2", iters=5)
    return IvfLists.fill(x, km.centroids, metric, dtype=dtype)


def agree(dev: tuple, twin: tuple, tol: float) -> None:
    (ds, di), (ts, ti) = dev, twin
    np.testing.assert_array_equal(di == -1, ti == -1)
    np.testing.assert_allclose(ds[ti >= 0], ts[ti >= 0], rtol=tol, atol=tol)
    same = np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                    for a, b in zip(di, ti, strict=True)])  # fmt: skip
    assert same > 0.995, same  # near-equal scores may swap at the k-th place


@pytest.mark.parametrize("metric", ["L2", "IP"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize(("k", "nprobe"), [(1, 1), (10, 4), (100, 24)])
def test_scan_matches_the_twin(metric: str, dtype: type, k: int, nprobe: int) -> None:
    from gpuvec.ops.ivf_gpu import DeviceIvfFlat

    lists = lists_of(metric, dtype)
    q = clustered(300, 40, seed=9)
    if metric == "IP":
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    dev = DeviceIvfFlat.from_lists(lists)
    agree(
        dev.search(q, k, nprobe), lists.search(q, k, nprobe), 1e-4 if dtype is np.float32 else 1e-3
    )


def test_valid_mask_applies_inside_the_scan() -> None:
    from gpuvec.ops.ivf_gpu import DeviceIvfFlat

    lists = lists_of("L2", np.float32)
    q = clustered(100, 40, seed=3)
    valid = np.random.default_rng(2).random(lists.ntotal) < 0.05
    dev = DeviceIvfFlat.from_lists(lists)
    got = dev.search(q, 50, 24, valid=valid)
    assert valid[got[1][got[1] >= 0]].all()
    agree(got, lists.search(q, 50, 24, valid=valid), 1e-4)
    s, i = dev.search(q, 5, 24, valid=np.zeros(lists.ntotal, bool))
    assert (i == -1).all() and np.isinf(s).all()


def test_long_lists_span_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuvec.ops import ivf_gpu

    monkeypatch.setattr(ivf_gpu, "SEG_LEN", 97)  # every list spans several segments
    lists = lists_of("L2", np.float32, nlist=8)
    lists.offsets[3] = lists.offsets[4]  # an empty list: its rows move to list 2's range
    q = clustered(64, 40, seed=5)
    dev = ivf_gpu.DeviceIvfFlat.from_lists(lists)
    agree(dev.search(q, 20, 8), lists.search(q, 20, 8), 1e-4)
