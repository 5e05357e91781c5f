"""gpuvec's own IVF-PQ (:mod:`gpuvec.index.ivf_pq`) on its NumPy twin: code packing equal
to faiss's, the twin search equal to faiss's search of the moved lists, recall against
float64 brute force rising with nprobe and with refine, and GPU_IVF_PQ built through it —
through ``build_index`` and through ``MilvusClient`` with ``refine_ratio``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.ivf_pq import IvfPq, pack_codes
from gpuvec.index.registry import build_index, dump, load_index


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((40, dim)).astype(np.float32) * 3
    return (c[rng.integers(0, 40, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def truth(q: np.ndarray, x: np.ndarray, k: int, metric: str) -> np.ndarray:
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    s = ((q64[:, None] - x64[None]) ** 2).sum(-1) if metric == "L2" else -(q64 @ x64.T)
    return np.argsort(s, axis=1, kind="stable")[:, :k]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.mark.parametrize("nbits", [8, 6, 4])
def test_codes_are_packed_as_faiss_packs_them(nbits: int) -> None:
    import faiss

    x = clustered(3000, 16)
    pq = IvfPq.train(x, 8, 4, nbits, "L2", iters=4).fill(x)
    res = x[:200] - pq.centroids[0]
    index = pq.to_faiss()  # kept alive: ivf below points into it
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    np.testing.assert_array_equal(ivf.pq.compute_codes(res), pack_codes(pq.encode(res), nbits))


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_faiss_serves_the_same_codes_as_the_twin(metric: str) -> None:
    x = clustered(6000, 32)
    if metric == "IP":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:40] + np.float32(0.05)
    pq = IvfPq.train(x, 32, 8, 8, metric, iters=6).fill(x)
    assert pq.ntotal == len(x) and sorted(pq.ids.tolist()) == list(range(len(x)))
    index = pq.to_faiss()
    for nprobe in (1, 4, 32):
        index.nprobe = nprobe
        fs, fi = index.search(q, 10)
        ts, ti = pq.search(q, 10, nprobe)
        np.testing.assert_allclose(fs, ts, rtol=1e-4, atol=1e-3)
        assert np.mean(fi == ti) > 0.98  # equal PQ scores may swap


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_twin_recall_rises_with_nprobe_and_refine(metric: str) -> None:
    x = clustered(8000, 32)
    if metric == "IP":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:60] + np.float32(0.05)
    pq = IvfPq.train(x, 32, 8, 8, metric, iters=8).fill(x)
    want = truth(q, x, 10, metric)
    by = {p: recall(pq.search(q, 10, p)[1], want) for p in (1, 4, 32)}
    assert by[1] <= by[4] <= by[32]
    rs, ri = pq.search(q, 10, 32, refine_ratio=8, base=x)
    assert recall(ri, want) >= by[32] + 0.15 and recall(ri, want) >= 0.9
    exact = ((x[ri[0]] - q[0]) ** 2).sum(1) if metric == "L2" else x[ri[0]] @ q[0]
    np.testing.assert_allclose(rs[0], exact, rtol=1e-4, atol=1e-4)  # refined: exact scores
    valid = np.random.default_rng(1).random(len(x)) < 0.2
    _, vi = pq.search(q, 10, 32, valid=valid)
    assert valid[vi[vi >= 0]].all()


def test_bad_parameters_are_named() -> None:
    x = clustered(600, 12)
    with pytest.raises(InvalidArgumentError, match="m = 5 must divide dim = 12"):
        IvfPq.train(x, 4, 5, 8, "L2")
    with pytest.raises(InvalidArgumentError, match="nbits = 9 must be in"):
        IvfPq.train(x, 4, 4, 9, "L2")
    with pytest.raises(InvalidArgumentError, match="200 training rows cannot train 256 codes"):
        IvfPq.train(x[:200], 4, 4, 8, "L2")


@pytest.mark.parametrize("metric", ["L2", "COSINE"])
def test_gpu_ivf_pq_refine_through_build_index(metric: str) -> None:
    x = clustered(6000, 32)
    index = build_index(x, metric, "GPU_IVF_PQ", {"nlist": 32, "m": 8, "nbits": 8})
    assert "gpuvec's k-means (coarse and per sub-space)" in index.describe()["note"]
    q = x[:50] + np.float32(0.05)
    y = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "COSINE" else x
    qq = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "COSINE" else q
    want = truth(qq, y, 10, "L2" if metric == "L2" else "IP")
    plain = recall(index.search(q, 10, {"nprobe": 32})[1], want)
    refined_d, refined = index.search(q, 10, {"nprobe": 32, "refine_ratio": 8}, base=x)
    assert recall(refined, want) >= max(0.9, plain + 0.1), (plain, recall(refined, want))
    assert (np.diff(refined_d, axis=1) >= 0).all() if metric == "L2" else (
        np.diff(refined_d, axis=1) <= 0).all()  # fmt: skip
    again = load_index(dump(index))
    np.testing.assert_array_equal(again.search(q, 10, {"nprobe": 8})[1],
                                  index.search(q, 10, {"nprobe": 8})[1])  # fmt: skip


def test_gpu_ivf_pq_through_milvus_client(tmp_path: Path) -> None:
    from gpuvec import MilvusClient
    from gpuvec.config import Config

    x = clustered(4000, 32)
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address="", index_min_rows=500))
    try:
        c.create_collection("d", dimension=32, metric_type="L2")
        c.release_collection("d")
        c.drop_index("d", "vector")
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="GPU_IVF_PQ", metric_type="L2",
                      params={"nlist": 16, "m": 8, "nbits": 8})  # fmt: skip
        c.create_index("d", idx)
        c.load_collection("d")
        c.insert("d", [{"id": i, "vector": x[i]} for i in range(len(x))])
        c.flush("d")
        c.wait_for_index("d", timeout=300)
        q = x[:40] + np.float32(0.05)
        want = truth(q, x, 10, "L2")

        def ids(params: dict) -> np.ndarray:
            hits = c.search("d", data=q, limit=10, search_params={"params": params})
            return np.array([[h["id"] for h in row] for row in hits])

        plain, refined = ids({"nprobe": 16}), ids({"nprobe": 16, "refine_ratio": 8})
        assert recall(refined, want) >= max(0.9, recall(plain, want) + 0.1)
        assert "GPU_IVF_PQ trained by gpuvec" in str(c.describe_index("d", "vector"))
    finally:
        c.close()
