"""The search hot path's shortcuts give the answers of the general path: ``finish`` on
already-sorted results and on ties, the single-segment reduce, key-only hit fetch, cached
validated search params, and the per-filter caches of the exact fallback and the faiss
selector bitmap (invalidated by deletes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError
from gpuvec.index.base import finish
from gpuvec.index.registry import build_index
from gpuvec.index.search import SubsetCache, exact_subset_knn
from gpuvec.ops import merge_topk
from gpuvec.proxy.fetch import hit_keys
from gpuvec.proxy.reduce import reduce_hits
from gpuvec.records import Hits


def test_finish_sorted_input_is_returned_as_is_and_ties_are_ordered() -> None:
    d = np.array([[0.1, 0.2, 0.3]], np.float32)
    r = np.array([[5, 2, 9]], np.int64)
    fd, fr = finish(d, r, "L2")
    assert fr.tolist() == [[5, 2, 9]] and np.allclose(fd, d)
    # a tie is broken by the lower row, as the general path does
    d = np.array([[0.5, 0.5, 0.1]], np.float32)
    r = np.array([[7, 3, 4]], np.int64)
    fd, fr = finish(d, r, "IP")
    assert fr.tolist() == [[3, 7, 4]] and fd.tolist()[0][:2] == [0.5, 0.5]
    # negative L2 from float error is clipped at 0 on the fast path too
    fd, _ = finish(np.array([[-1e-6, 0.2]], np.float32), np.array([[1, 2]]), "L2")
    assert fd[0, 0] == 0.0
    # empty slots go last with the pad value
    fd, fr = finish(np.array([[9.0, 0.3]], np.float32), np.array([[-1, 4]]), "L2")
    assert fr.tolist() == [[4, -1]]


def test_single_segment_reduce_matches_the_merge() -> None:
    rng = np.random.default_rng(0)
    d = np.sort(rng.random((3, 5)).astype(np.float32), axis=1)
    r = rng.integers(0, 100, (3, 5)).astype(np.int64)
    r[2, 3:] = -1
    d[2, 3:] = np.inf
    dist, seg, row = reduce_hits([Hits(d, r)], 5, "L2")
    md, mi = merge_topk([(d, r)], 5, "L2")
    assert np.array_equal(row, mi) and np.allclose(dist[row >= 0], md[mi >= 0])
    assert seg.tolist()[2] == [0, 0, 0, -1, -1] and (seg[:2] == 0).all()


class _Seg:
    def __init__(self, pks: list) -> None:
        self.pks = np.array(pks, dtype=object if isinstance(pks[0], str) else np.int64)


def test_hit_keys_one_and_many_segments() -> None:
    a, b = _Seg([10, 11, 12]), _Seg([20, 21])
    assert hit_keys([a], np.array([0, 0]), np.array([2, 0])) == [12, 10]
    got = hit_keys([a, b], np.array([1, 0, 1]), np.array([0, 1, 1]))
    assert got == [20, 11, 21] and all(type(k) is int for k in got)
    s = _Seg(["x", "y"])
    assert hit_keys([s, s], np.array([1, 0]), np.array([0, 1])) == ["x", "y"]
    assert hit_keys([a], np.array([], np.int64), np.array([], np.int64)) == []


def test_cached_search_params_still_validate() -> None:
    x = np.random.default_rng(1).standard_normal((2000, 8)).astype(np.float32)
    idx = build_index(x, "L2", "IVF_FLAT", {"nlist": 16})
    q = x[:3]
    first = idx.search(q, 5, {"nprobe": 4})
    again = idx.search(q, 5, {"nprobe": 4})  # served from the cached SearchParameters
    assert np.array_equal(first[1], again[1])
    for _ in range(2):  # the bad value is rejected every time, cached or not
        with pytest.raises(InvalidArgumentError, match="nprobe"):
            idx.search(q, 5, {"nprobe": 999})
    with pytest.raises(InvalidArgumentError):
        idx.search(q, 5, {"nprobe": [1]})  # unhashable: the validating path names it


def test_subset_cache_reuses_the_gather_per_key() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((500, 4)).astype(np.float32)
    q = rng.standard_normal((2, 4)).astype(np.float32)
    valid = rng.random(500) < 0.1
    cache = SubsetCache(size=2)
    d1, r1 = exact_subset_knn(base, q, 5, "L2", valid, cache, "f")
    assert (np.diff(d1, axis=1) >= 0).all()
    sub = cache.get("f", base, valid, "L2")
    assert np.array_equal(sub.rows, np.flatnonzero(valid))
    assert np.array_equal(sub.vectors, base[sub.rows])
    assert np.allclose(sub.sq, (base[sub.rows] ** 2).sum(1), rtol=1e-5)
    assert cache.get("f", base, ~valid, "L2") is sub  # same key, same entry (no re-gather)
    d2, r2 = exact_subset_knn(base, q, 5, "L2", valid, cache, "f")
    assert np.array_equal(r1, r2) and np.array_equal(d1, d2) and valid[r1].all()
    cache.get("g", base, valid, "L2")
    cache.get("h", base, valid, "L2")
    assert cache.get("f", base, ~valid, "L2").rows.size == (~valid).sum()  # "f" was evicted


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_exact_subset_matches_brute_force(metric: str) -> None:
    rng = np.random.default_rng(4)
    base = rng.standard_normal((800, 6)).astype(np.float32) * rng.random((800, 1)) * 3
    base[5] = 0.0  # a zero row: cosine 0
    q = rng.standard_normal((3, 6)).astype(np.float32)
    valid = rng.random(800) < 0.2
    valid[5] = True
    rows = np.flatnonzero(valid)
    if metric == "L2":
        ref = ((base[rows][None] - q[:, None]) ** 2).sum(-1)
    else:
        b, qq = base[rows].astype(np.float64), q.astype(np.float64)
        if metric == "COSINE":
            nb = np.linalg.norm(b, axis=1)
            b = b / np.where(nb > 0, nb, 1)[:, None]
            qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
        ref = -(qq @ b.T)
    order = np.argsort(ref, axis=1, kind="stable")[:, :7]
    cache = SubsetCache()
    for _ in range(2):  # cold, then from the cache
        d, r = exact_subset_knn(base, q, 7, metric, valid, cache, ("k", metric))
        assert np.array_equal(r, rows[order])
        want = np.take_along_axis(ref, order, 1)
        assert np.allclose(d, want if metric == "L2" else -want, atol=1e-4)


def test_filtered_index_search_sees_deletes_after_caching(tmp_path: Path) -> None:
    """The exact fallback and the selector caches are keyed by the alive set's version:
    a delete after a cached filtered search is honoured by the next one."""
    cfg = Config(seal_idle_s=3600, datanode_processes=False, index_min_rows=500,
                 dashboard_address="")  # fmt: skip
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, 8)).astype(np.float32)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
        c.create_collection("c", dimension=8, metric_type="L2", index_params=idx)
        c.insert("c", [{"id": i, "vector": x[i], "g": i % 40} for i in range(4000)])
        c.flush("c")
        assert c._engine.wait_for_indexes("c", timeout=120)
        for flt in ("g == 3", "g < 20"):  # exact fallback (2.5 %) and the bitmap (50 %)
            q = x[7:8] + 0.01
            first = c.search("c", [q[0]], limit=5, filter=flt)[0]
            again = c.search("c", [q[0]], limit=5, filter=flt)[0]
            assert [h["id"] for h in first] == [h["id"] for h in again]
            victim = first[0]["id"]
            c.delete("c", ids=[victim])
            after = c.search("c", [q[0]], limit=5, filter=flt)[0]
            assert victim not in [h["id"] for h in after] and len(after) == 5
            ids = np.array([h["id"] for h in after])
            assert (ids % 40 == 3).all() if flt == "g == 3" else (ids % 40 < 20).all()
    finally:
        c.close()
