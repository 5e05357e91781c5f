"""The embedded engine on a CUDA device: sealed segments are pinned in GPU memory and
searched with the CuPy path, growing ones on the host; results match a float64 brute force
and the same engine forced onto NumPy. Marked ``gpu``; skipped (with the reason) elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.ops import backend

pytestmark = pytest.mark.gpu

DIM = 48


def brute(base: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    b, q = base.astype(np.float64), q.astype(np.float64)
    if metric == "L2":
        d = ((b[None, :, :] - q[:, None, :]) ** 2).sum(-1)
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    if metric == "COSINE":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(q @ b.T), axis=1, kind="stable")[:, :k]


@pytest.fixture
def device_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GPUVEC_DEVICE", "gpu")
    backend.reset_backend()
    yield
    backend.reset_backend()


def run_engine(path: Path, metric: str, base: np.ndarray, qs: np.ndarray, k: int) -> tuple:
    c = MilvusClient(str(path), config=Config(seal_idle_s=3600, index_min_rows=10**9))
    try:
        c.create_collection("c", dimension=DIM, metric_type=metric, num_shards=2)
        half = len(base) // 2
        c.insert("c", [{"id": i, "vector": base[i]} for i in range(half)])
        c.flush("c")  # sealed: pinned on the device
        c.insert("c", [{"id": i, "vector": base[i]} for i in range(half, len(base))])  # growing
        res = c.search("c", data=qs, limit=k, search_params={"metric_type": metric})
        ids = np.array([[h["id"] for h in hits] for hits in res])
        dist = np.array([[h["distance"] for h in hits] for hits in res])
        return ids, dist, c.get_collection_stats("c")
    finally:
        c.close()


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_engine_search_on_device_matches_brute_force(
    tmp_path: Path, metric: str, device_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    base = rng.standard_normal((6000, DIM)).astype(np.float32)
    qs = rng.standard_normal((20, DIM)).astype(np.float32)
    k = 10
    ids, dist, stats = run_engine(tmp_path / "gpu", metric, base, qs, k)
    assert backend.is_gpu()
    assert stats["gpu_resident"] >= 1, stats  # sealed segments live in device memory
    ref = brute(base, qs, k, metric)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, ref, strict=True)])
    assert recall >= 0.99, recall  # float32 ties may swap the last place, nothing more
    monkeypatch.setenv("GPUVEC_DEVICE", "cpu")
    backend.reset_backend()
    cids, cdist, cstats = run_engine(tmp_path / "cpu", metric, base, qs, k)
    assert cstats["gpu_resident"] == 0
    np.testing.assert_allclose(dist, cdist, rtol=1e-4, atol=1e-3)
    assert np.mean(ids == cids) >= 0.99


def test_gpu_budget_keeps_lru_segments_on_host(tmp_path: Path, device_mode: None) -> None:
    """A budget for one segment: the others are searched on the host, results unchanged."""
    rng = np.random.default_rng(8)
    base = rng.standard_normal((4000, DIM)).astype(np.float32)
    qs = rng.standard_normal((10, DIM)).astype(np.float32)
    c = MilvusClient(str(tmp_path / "db"), config=Config(seal_idle_s=3600, index_min_rows=10**9))
    try:
        c.create_collection("c", dimension=DIM, metric_type="L2")
        residency = c._engine.query.residency
        residency._budget = 1000 * (4 * DIM + 4) + 1  # exactly one 1000-row segment
        for s in range(0, 4000, 1000):
            c.insert("c", [{"id": i, "vector": base[i]} for i in range(s, s + 1000)])
            c.flush("c")
        stats = c.get_collection_stats("c")
        assert stats["sealed_segments"] == 4 and stats["gpu_resident"] == 1
        assert residency.evictions >= 3
        res = c.search("c", data=qs, limit=10)
        ids = np.array([[h["id"] for h in hits] for hits in res])
        assert np.mean(ids == brute(base, qs, 10, "L2")) >= 0.99
    finally:
        c.close()


def test_filtered_search_and_deletes_on_device(
    tmp_path: Path, device_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alive bitmap and filter masks live on the device: results equal the NumPy engine's
    after deletes, with repeated (cached) and changing filters."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal((5000, DIM)).astype(np.float32)
    qs = rng.standard_normal((8, DIM)).astype(np.float32)

    def run(path: Path) -> list:
        c = MilvusClient(str(path), config=Config(seal_idle_s=3600, index_min_rows=10**9))
        try:
            c.create_collection("c", dimension=DIM, metric_type="L2")
            c.insert("c", [{"id": i, "vector": base[i], "g": i % 7} for i in range(5000)])
            c.flush("c")
            out = []
            for flt in ("g == 3", "g == 3", "g in [1, 2]", ""):
                res = c.search("c", data=qs, limit=10, filter=flt)
                out.append([[h["id"] for h in hits] for hits in res])
            c.delete("c", filter="g == 3 and id < 2500")
            for flt in ("g == 3", ""):
                res = c.search("c", data=qs, limit=10, filter=flt)
                out.append([[h["id"] for h in hits] for hits in res])
            out.append(c.get_collection_stats("c")["gpu_resident"])
            return out
        finally:
            c.close()

    on_gpu = run(tmp_path / "gpu")
    assert on_gpu[-1] >= 1
    assert all(h % 7 == 3 for hits in on_gpu[0] for h in hits)
    assert all(h % 7 == 3 and h >= 2500 for hits in on_gpu[4] for h in hits)
    monkeypatch.setenv("GPUVEC_DEVICE", "cpu")
    backend.reset_backend()
    on_cpu = run(tmp_path / "cpu")
    assert on_cpu[-1] == 0
    same = np.mean([a == b for x, y in zip(on_gpu[:-1], on_cpu[:-1], strict=True)
                    for a, b in zip(x, y, strict=True)])  # fmt: skip
    assert same >= 0.95  # float ties may reorder a rare pair
