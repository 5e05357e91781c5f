"""BINARY_VECTOR search: :mod:`gpuvec.ops.binary` and :class:`gpuvec.index.binary.BinaryIndex`
(BIN_FLAT, BIN_IVF_FLAT) against a plain NumPy reference built on ``unpackbits``.

The reference computes HAMMING as the count of differing bits and JACCARD as knowhere does,
``1 - (float)inter / (float)union`` in float32 (0 when both vectors are all zeros), then
orders each query's rows by (distance, row) with ``lexsort``: the exact result every exact
path must equal, ties included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpuvec.errors import CorruptDataError, InvalidArgumentError
from gpuvec.index import VectorIndex, build_index, load_index
from gpuvec.index.binary import BinaryIndex
from gpuvec.index.binary_lists import pack_arrays, unpack_arrays
from gpuvec.ops import binary as ob
from gpuvec.ops import binary_distances, binary_knn, binary_range

METRICS = ("HAMMING", "JACCARD")


# --- the reference -----------------------------------------------------------------------------
def ref_distances(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    bb = np.unpackbits(base, axis=1).astype(np.int64)
    qb = np.unpackbits(np.atleast_2d(queries), axis=1).astype(np.int64)
    inter = qb @ bb.T
    union = qb.sum(1)[:, None] + bb.sum(1)[None, :] - inter
    if metric == "HAMMING":
        return (union - inter).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.float32(1.0) - inter.astype(np.float32) / union.astype(np.float32)
    return np.where(union == 0, np.float32(0.0), d).astype(np.float32)


def ref_select(
    dist: np.ndarray, k: int, ok: np.ndarray, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row of ``dist`` among ``ok`` (bool, broadcastable), ties by lower id."""
    nq, n = dist.shape
    ids = np.arange(n) if ids is None else ids
    ok = np.broadcast_to(ok, dist.shape)
    out_d = np.full((nq, k), np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    for i in range(nq):
        cand = np.flatnonzero(ok[i])
        order = cand[np.lexsort((ids[cand], dist[i, cand]))][:k]
        out_d[i, : order.size] = dist[i, order]
        out_r[i, : order.size] = ids[order]
    return out_d, out_r


def ref_knn(base, queries, k, metric, valid=None):
    d = ref_distances(base, queries, metric)
    return ref_select(d, k, np.ones(base.shape[0], bool) if valid is None else valid)


def ref_range(base, queries, metric, radius, range_filter, limit, valid=None):
    d = ref_distances(base, queries, metric)
    ok = d < np.float32(radius)
    if range_filter is not None:
        ok &= d >= np.float32(range_filter)
    if valid is not None:
        ok &= valid[None, :]
    return ref_select(d, limit, ok)


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got[0].dtype == np.float32 and got[1].dtype == np.int64
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


# --- data --------------------------------------------------------------------------------------
def random_codes(rng: np.random.Generator, n: int, nbytes: int, p: float = 0.5) -> np.ndarray:
    return np.packbits(rng.random((n, nbytes * 8)) < p, axis=1)


def with_ties(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """Few distinct rows (many exact ties), plus all-zero rows (JACCARD's 0/0 case)."""
    distinct = random_codes(rng, 17, nbytes, 0.3)
    x = distinct[rng.integers(0, 17, n)]
    x[:3] = 0
    return np.ascontiguousarray(x)


def clustered(seed: int, n: int = 20000, nq: int = 100, bits: int = 256, noise: float = 0.2):
    """Noisy copies of 64 random centres (rows and queries)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (64, bits), dtype=np.uint8)
    x = centres[rng.integers(0, 64, n)] ^ (rng.random((n, bits)) < noise)
    q = centres[rng.integers(0, 64, nq)] ^ (rng.random((nq, bits)) < noise)
    return np.packbits(x, axis=1), np.packbits(q, axis=1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(7)


@pytest.fixture(scope="module")
def ivf_indexes(data) -> dict[str, Any]:
    x, _ = data
    return {m: build_index(x, m, "BIN_IVF_FLAT", {"nlist": 128}) for m in METRICS}


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, want, strict=True)]))


# --- ops ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nbytes", [1, 3, 8, 13, 32])
def test_distances_match_reference(metric: str, nbytes: int) -> None:
    rng = np.random.default_rng(nbytes)
    base = with_ties(rng, 300, nbytes)
    q = np.concatenate([np.zeros((1, nbytes), np.uint8), random_codes(rng, 6, nbytes)])
    got = binary_distances(base, q, metric)
    assert got.dtype == np.float32 and got.shape == (7, 300)
    np.testing.assert_array_equal(got, ref_distances(base, q, metric))
    if metric == "JACCARD":  # zero query vs zero rows: 0.0; vs a non-zero row: 1.0
        assert got[0, :3].tolist() == [0.0, 0.0, 0.0]
        assert set(got[0, 3:].tolist()) <= {1.0}


def test_distances_known_values() -> None:
    a = np.packbits(np.array([[1, 1, 0, 0, 1, 0, 0, 0]], np.uint8), axis=1)
    b = np.packbits(np.array([[1, 0, 1, 0, 1, 0, 0, 0], [0] * 8], np.uint8), axis=1)
    assert binary_distances(b, a, "HAMMING").tolist() == [[2.0, 3.0]]
    assert binary_distances(b, a, "jaccard").tolist() == [[np.float32(0.5), 1.0]]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("selectivity", [None, 0.2, 0.8, 0.0])
def test_knn_equals_reference_with_ties_and_blocks(
    metric: str, selectivity: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # blocks of 97 rows: 1000 rows are not a multiple; 0.2 gathers rows, 0.8 masks them
    monkeypatch.setattr(ob, "MAX_BLOCK_ROWS", 97)
    monkeypatch.setattr(ob, "_MIN_BLOCK_ROWS", 1)
    rng = np.random.default_rng(3)
    base = with_ties(rng, 1000, 5)
    q = np.concatenate([with_ties(rng, 4, 5), random_codes(rng, 4, 5)])
    valid = None if selectivity is None else rng.random(1000) < selectivity
    for k in (1, 10, 50):
        got = binary_knn(base, q, k, metric, valid=valid)
        assert_same(got, ref_knn(base, q, k, metric, valid))
    if valid is not None:
        assert not np.isin(got[1], np.flatnonzero(~valid)).any()


@pytest.mark.parametrize("metric", METRICS)
def test_knn_pads_when_k_exceeds_rows(metric: str) -> None:
    rng = np.random.default_rng(4)
    base = random_codes(rng, 5, 4)
    q = random_codes(rng, 3, 4)
    d, r = binary_knn(base, q, 8, metric)
    assert d.shape == r.shape == (3, 8)
    assert (r[:, 5:] == -1).all() and np.isinf(d[:, 5:]).all()
    assert sorted(r[0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert_same((d, r), ref_knn(base, q, 8, metric))
    valid = np.array([False, True, False, False, True])
    d, r = binary_knn(base, q, 3, metric, valid=valid)
    assert set(r[:, :2].ravel().tolist()) <= {1, 4} and (r[:, 2] == -1).all()
    d, r = binary_knn(base, q, 2, metric, valid=np.zeros(5, bool))
    assert (r == -1).all() and np.isinf(d).all()


def test_knn_one_query_ids_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    base = with_ties(rng, 2000, 4)
    d1, r1 = binary_knn(base, base[7], 5, "HAMMING")  # a 1-D query is one query
    assert r1.shape == (1, 5) and d1[0, 0] == 0.0
    ids = np.arange(2000, dtype=np.int64)[::-1].copy()  # reversed ids: ties by the lower id
    d, r = binary_knn(base, base[:3], 20, "HAMMING", ids=ids)
    assert_same((d, r), ref_select(ref_distances(base, base[:3], "HAMMING"), 20, True, ids))
    # the threaded batch path gives the single-threaded result
    monkeypatch.setattr(ob, "MIN_THREAD_PAIRS", 1)
    monkeypatch.setattr(ob, "_CPUS", 4)
    q = random_codes(rng, 40, 4)
    assert_same(binary_knn(base, q, 10, "JACCARD"), ref_knn(base, q, 10, "JACCARD"))


@pytest.mark.parametrize("metric", METRICS)
def test_range_equals_reference(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ob, "MAX_BLOCK_ROWS", 128)
    monkeypatch.setattr(ob, "_MIN_BLOCK_ROWS", 1)
    rng = np.random.default_rng(6)
    base = with_ties(rng, 700, 4)
    q = random_codes(rng, 5, 4, 0.3)
    radius, rfilter = (12.0, 4.0) if metric == "HAMMING" else (0.7, 0.3)
    valid = rng.random(700) < 0.6
    for lo, limit, v in ((None, 1000, None), (rfilter, 1000, valid), (rfilter, 7, None)):
        got = binary_range(base, q, metric, radius, lo, limit, valid=v)
        want = ref_range(base, q, metric, radius, lo, limit, v)
        assert_same(got, want)
        assert (got[0][got[1] >= 0] < radius).all()
        if lo is not None:
            assert (got[0][got[1] >= 0] >= lo).all()
    dist = ref_distances(base, q, metric)
    inside = ((dist >= np.float32(rfilter)) & (dist < np.float32(radius))).sum(1)
    assert (inside > 7).any()  # limit 7 truncates some queries' hits to their best 7
    assert ((got[1] >= 0).sum(1) == np.minimum(inside, 7)).all()


def test_ops_bad_inputs() -> None:
    base = np.zeros((4, 4), np.uint8)
    with pytest.raises(InvalidArgumentError, match=r"dtype uint8.*float32"):
        binary_knn(base.astype(np.float32), base, 1, "HAMMING")
    with pytest.raises(InvalidArgumentError, match=r"3 bytes \(24 bits\).*4 bytes \(32 bits\)"):
        binary_knn(base, np.zeros((1, 3), np.uint8), 1, "HAMMING")
    with pytest.raises(InvalidArgumentError, match=r"'L2'.*HAMMING, JACCARD"):
        binary_knn(base, base, 1, "L2")
    with pytest.raises(InvalidArgumentError, match="k"):
        binary_knn(base, base, 0, "HAMMING")
    with pytest.raises(InvalidArgumentError, match="valid"):
        binary_knn(base, base, 1, "HAMMING", valid=np.ones(3, bool))
    with pytest.raises(InvalidArgumentError, match="radius"):
        binary_range(base, base, "HAMMING", float("nan"), None, 3)


# --- indexes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", METRICS)
def test_bin_flat_equals_reference(metric: str) -> None:
    x, q = clustered(11, n=3000, nq=20)
    index = build_index(x, metric, "BIN_FLAT")
    assert isinstance(index, BinaryIndex) and isinstance(index, VectorIndex)
    assert (index.dim, index.ntotal, index.index_type) == (256, 3000, "BIN_FLAT")
    assert index.metric == metric
    assert index.nbytes == 0 and index.describe()["borrows_base"] is True
    assert index.describe()["backend"] == "numpy (binary)"
    assert_same(index.search(q, 10), ref_knn(x, q, 10, metric))
    valid = np.random.default_rng(1).random(3000) < 0.05
    assert_same(index.search(q, 10, valid=valid), ref_knn(x, q, 10, metric, valid))
    radius = 100.0 if metric == "HAMMING" else 0.6
    got = index.range_search(q, radius, limit=50, valid=valid)
    assert_same(got, ref_range(x, q, metric, radius, None, 50, valid))
    # the file holds no vectors: loading needs them back
    data = index.to_bytes()
    assert len(data) < 1000
    with pytest.raises(InvalidArgumentError, match="base"):
        load_index(data)
    assert_same(load_index(data, base=x).search(q, 10), ref_knn(x, q, 10, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_bin_ivf_recall_and_full_probe_is_exact(metric: str, data, ivf_indexes) -> None:
    x, q = data
    index = ivf_indexes[metric]
    assert index.describe()["nlist"] == 128 and index.nbytes >= x.nbytes
    want = ref_knn(x, q, 10, metric)
    _, rows = index.search(q, 10, {"nprobe": 32})
    assert recall(rows, want[1]) >= 0.9
    assert_same(index.search(q, 10, {"nprobe": 128}), want)
    flat = build_index(x, metric, "BIN_FLAT")
    assert_same(index.search(q, 10, {"nprobe": 128}), flat.search(q, 10))
    radius = 90.0 if metric == "HAMMING" else 0.5
    assert_same(
        index.range_search(q, radius, limit=30, search_params={"nprobe": 128}),
        flat.range_search(q, radius, limit=30),
    )


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("selectivity", [0.003, 0.05, 0.4])
def test_bin_ivf_filters(metric: str, selectivity: float, data, ivf_indexes) -> None:
    x, q = data
    index = ivf_indexes[metric]
    valid = np.random.default_rng(2).random(x.shape[0]) < selectivity
    want = ref_knn(x, q, 10, metric, valid)
    for kw in ({}, {"base": x}, {"exact_fallback": False}):
        d, r = index.search(q, 10, {"nprobe": 32}, valid=valid, **kw)
        assert valid[r[r >= 0]].all()  # no filtered-out row, ever
        assert np.isinf(d[r < 0]).all()
        if selectivity < 0.01 and kw.get("exact_fallback", True):
            assert_same((d, r), want)  # selective filter: exact scan of the passing rows
        else:
            assert recall(r, want[1]) >= 0.85
    radius = 110.0 if metric == "HAMMING" else 0.6
    d, r = index.range_search(q, radius, limit=40, search_params={"nprobe": 32}, valid=valid)
    assert valid[r[r >= 0]].all() and (d[r >= 0] < radius).all()


def test_bin_ivf_round_trip_and_determinism(data, ivf_indexes) -> None:
    x, q = data
    index = ivf_indexes["JACCARD"]
    blob = index.to_bytes()
    again = build_index(x, "JACCARD", "BIN_IVF_FLAT", {"nlist": 128})
    assert again.to_bytes() == blob  # same data, same file, byte for byte
    loaded = load_index(blob)  # no base needed: the lists hold the codes
    assert isinstance(loaded, BinaryIndex) and loaded.describe() == index.describe()
    for sp in ({"nprobe": 4}, {"nprobe": 16}):
        assert_same(loaded.search(q, 10, sp), index.search(q, 10, sp))
    assert_same(
        loaded.range_search(q, 0.5, 0.2, limit=20), index.range_search(q, 0.5, 0.2, limit=20)
    )
    with pytest.raises(CorruptDataError, match="binary index payload"):
        load_index(blob[:-5])
    head_len = len(blob) - len(index.payload())
    with pytest.raises(CorruptDataError, match="binary index payload"):
        load_index(blob[:head_len] + b"garbage" * 3)


def test_bin_ivf_small_segment_and_progress() -> None:
    x, q = clustered(3, n=50, nq=4, bits=64)
    seen: list[tuple[int, int]] = []
    index = build_index(x, "HAMMING", "BIN_IVF_FLAT", None, lambda d, t: seen.append((d, t)))
    desc = index.describe()
    assert desc["params"] == {"nlist": 128} and desc["nlist"] == 50 and "reduced" in desc["note"]
    assert seen[-1] == (50, 50)
    assert_same(index.search(q, 60, {"nprobe": 50}), ref_knn(x, q, 60, "HAMMING"))


def test_pack_arrays_round_trip() -> None:
    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.zeros((0, 4), np.uint8)}
    got = unpack_arrays(pack_arrays(arrays))
    assert list(got) == ["a", "b"]
    assert got["a"].tolist() == arrays["a"].tolist() and got["b"].shape == (0, 4)
    with pytest.raises(ValueError, match="magic"):
        unpack_arrays(b"PK\x03\x04" + pack_arrays(arrays))


def test_index_bad_inputs(data) -> None:
    x, _ = data
    small = x[:100]
    with pytest.raises(InvalidArgumentError, match=r"uint8.*float32"):
        build_index(small.astype(np.float32), "HAMMING", "BIN_FLAT")
    with pytest.raises(InvalidArgumentError, match="shape"):
        build_index(small[0], "HAMMING", "BIN_IVF_FLAT")
    with pytest.raises(InvalidArgumentError, match=r"BIN_FLAT.*'L2'"):
        build_index(small, "L2", "BIN_FLAT")
    with pytest.raises(InvalidArgumentError, match=r"HNSW.*'HAMMING'"):
        build_index(small.astype(np.float32), "HAMMING", "HNSW")
    with pytest.raises(InvalidArgumentError, match=r"IVF_FLAT.*'JACCARD'"):
        build_index(small.astype(np.float32), "JACCARD", "IVF_FLAT")
    with pytest.raises(InvalidArgumentError, match="metric_type 'TANIMOTO'"):
        build_index(small, "TANIMOTO", "BIN_FLAT")
    with pytest.raises(InvalidArgumentError, match="nlist"):
        build_index(small, "HAMMING", "BIN_IVF_FLAT", {"nlist": 0})
    index = build_index(small, "HAMMING", "BIN_IVF_FLAT", {"nlist": 8})
    with pytest.raises(InvalidArgumentError, match=r"16 bytes \(128 bits\).*32-byte \(256-bit\)"):
        index.search(np.zeros((2, 16), np.uint8), 5)
    with pytest.raises(InvalidArgumentError, match="dtype uint8"):
        index.search(np.zeros((2, 32), np.float32), 5)
    with pytest.raises(InvalidArgumentError, match="nprobe"):
        index.search(small[:2], 5, {"nprobe": 9})
    with pytest.raises(InvalidArgumentError, match="less than radius"):
        index.range_search(small[:2], 10, 20, limit=5)
    with pytest.raises(InvalidArgumentError, match="base"):
        index.search(small[:2], 5, valid=np.arange(100) < 2, base=x[:50])


@pytest.mark.parametrize("metric", METRICS)
def test_lookup_table_popcount_without_bitwise_count(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NumPy < 2 (and CuPy without bitwise_count) count bits with the 256-entry table
    rng = np.random.default_rng(8)
    base = with_ties(rng, 500, 11)
    q = random_codes(rng, 6, 11)
    monkeypatch.delattr(np, "bitwise_count")
    assert not hasattr(np, "bitwise_count")
    assert_same(binary_knn(base, q, 10, metric), ref_knn(base, q, 10, metric))
    np.testing.assert_array_equal(binary_distances(base, q, metric), ref_distances(base, q, metric))
