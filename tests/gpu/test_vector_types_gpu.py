"""FLOAT16 and BINARY vectors on a CUDA device: a FLOAT16 segment stays float16 in GPU
memory (half the bytes of float32) and its device search equals the NumPy twin's; packed
binary rows are searched on the device by the same HAMMING / JACCARD code as on the host;
GPU_CAGRA's kNN graph built on the device equals the exact host graph. Marked ``gpu``;
tests/conftest.py skips them (with the reason) without CuPy or a device."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from gpuvec import ops
from gpuvec.ops import backend
from gpuvec.query.segdata import SegmentData

try:
    import cupy
except ImportError:  # the tests are skipped by tests/conftest.py
    cupy = None

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def device_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GPUVEC_DEVICE", "gpu")
    backend.reset_backend()
    yield
    backend.reset_backend()


def _segment(mat: np.ndarray) -> SegmentData:
    seg = SegmentData(1, 0, {"v": mat.shape[1]}, True, capacity=len(mat),
                      vector_dtypes={"v": mat.dtype})  # fmt: skip
    seg.append(np.arange(len(mat)), np.ones(len(mat), np.uint64), {"v": mat},
               pa.table({"id": np.arange(len(mat))}))  # fmt: skip
    seg.sealed = True
    return seg


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_float16_segment_on_device_matches_twin(metric: str) -> None:
    rng = np.random.default_rng(3)
    mat = rng.standard_normal((20000, 96)).astype(np.float16)
    q = rng.standard_normal((7, 96)).astype(np.float32)
    seg = _segment(mat)
    host = seg.search("v", q, 10, metric, read_ts=2)
    assert ops.is_gpu() and seg.pin_device()
    assert seg.device_bytes() == 20000 * (96 * 2 + 4)  # float16 rows + float32 norms
    assert seg._device["v"].dtype == cupy.float16
    dev = seg.search("v", q, 10, metric, read_ts=2)
    np.testing.assert_allclose(dev.distances, host.distances, rtol=1e-4, atol=1e-3)
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(dev.rows, host.rows, strict=True)])
    assert same > 0.99


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD"])
def test_binary_knn_on_device_matches_host(metric: str) -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (50000, 32), dtype=np.uint8)
    q = rng.integers(0, 256, (9, 32), dtype=np.uint8)
    valid = rng.random(50000) < 0.7
    hd, hi = ops.binary_knn(base, q, 10, metric, valid=valid)
    dd, di = ops.binary_knn(cupy.asarray(base), cupy.asarray(q), 10, metric,
                            valid=cupy.asarray(valid))  # fmt: skip
    np.testing.assert_allclose(np.asarray(dd), hd, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(di), hi)


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_cagra_knn_graph_on_device_equals_exact_twin(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPU_CAGRA's initial graph built on the device (ops.knn per block) equals the exact
    host graph (both exact, ties by lower row)."""
    from gpuvec.index import cagra_graph

    rng = np.random.default_rng(9)
    x = rng.standard_normal((12000, 64)).astype(np.float32)
    dev = cagra_graph.knn_graph(x, 32, metric)  # CuPy backend (the autouse fixture)
    monkeypatch.setenv("GPUVEC_DEVICE", "cpu")
    backend.reset_backend()
    host = cagra_graph.knn_graph(x, 32, metric)
    same = (dev == host).mean()
    assert same > 0.995, same  # near-equal distances may swap between GEMM orders
