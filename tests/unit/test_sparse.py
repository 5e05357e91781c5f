"""Sparse float vectors: the row encoding (:mod:`gpuvec.sparse`: Milvus's wire bytes, every
accepted input form, the refusals naming the position), the CSR batch built from a binary
column, and the search (:mod:`gpuvec.index.sparse`): the exact scan and the posting-list
index against the dense expansion's inner products (filters, ties, rows sharing no
dimension, drop ratios), the index file round trip."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.errors import DataError
from gpuvec.index.registry import dump, load_index
from gpuvec.index.sparse import SparseIndex, exact_search
from gpuvec.sparse import SparseRows, column, encode, ip_scores, to_dict

VOCAB = 200


def random_rows(n: int, seed: int, empty: float = 0.05) -> list[dict[int, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if rng.random() < empty:
            out.append({})
            continue
        dims = rng.choice(VOCAB, int(rng.integers(1, 10)), replace=False)
        out.append({int(d): float(rng.integers(1, 8)) / 4 for d in dims})  # ties happen
    return out


def dense(rows: list[dict[int, float]]) -> np.ndarray:
    mat = np.zeros((len(rows), VOCAB))
    for i, r in enumerate(rows):
        for d, v in r.items():
            mat[i, d] = v
    return mat


def reference(base: list[dict[int, float]], q: dict[int, float], k: int,
              valid: np.ndarray | None = None) -> tuple[list[int], list[float]]:  # fmt: skip
    scores = dense(base) @ dense([q])[0]
    cand = [i for i, r in enumerate(base) if set(r) & set(q) and (valid is None or valid[i])]
    cand.sort(key=lambda i: (-scores[i], i))
    return cand[:k], [float(scores[i]) for i in cand[:k]]


def batch(rows: list[dict[int, float]]) -> SparseRows:
    return SparseRows.from_cells(column(rows, lambda i: f"row {i}"))


def test_the_cell_is_milvus_wire_format_and_every_input_form_agrees() -> None:
    want = struct.pack("<IfIf", 2, 0.5, 9, 1.25)  # sorted by index, uint32 + float32 pairs
    forms = [{9: 1.25, 2: 0.5}, [(9, 1.25), (2, 0.5)], ([9, 2], [1.25, 0.5]),
             (np.array([2, 9]), np.array([0.5, 1.25])), want]  # fmt: skip
    for form in forms:
        assert encode(form, "row 0") == want, form
    assert to_dict(want) == {2: 0.5, 9: 1.25}
    assert encode({}, "row 0") == b"" and to_dict(b"") == {}

    class CooRow:  # the shape of a SciPy sparse row (tocoo → row, col, data)
        shape = (1, 20)

        def tocoo(self) -> CooRow:
            return self

        col, data = np.array([9, 2]), np.array([1.25, 0.5])

    assert encode(CooRow(), "row 0") == want


@pytest.mark.parametrize(("value", "message"), [
    ({-1: 1.0}, "row 3: sparse index -1 at position 0 is not an integer"),
    ({2**32 - 1: 1.0}, "is not an integer in \\[0, 4294967294\\]"),
    ({1.5: 1.0}, "sparse index 2 at position 0|not an integer"),
    ({1: float("inf")}, "sparse value inf at index 1 is NaN, infinite or beyond float32"),
    ({1: 1e39}, "beyond float32"),
    ([(1, 1.0), (1, 2.0)], "sparse index 1 appears more than once"),
    ("text", "a sparse vector is a dict"),
    (b"\x00" * 7, "8-byte \\(index, value\\) pairs, got 7 bytes"),
])  # fmt: skip
def test_refusals_name_the_row_and_the_position(value: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        encode(value, "row 3")


def test_batches_from_binary_columns_round_trip() -> None:
    rows = random_rows(50, 1)
    cells = column(rows, lambda i: f"row {i}")
    b = SparseRows.from_cells(cells)
    assert len(b) == 50 and b.nnz == sum(len(r) for r in rows)
    assert [to_dict(c) for c in b.cells().to_pylist()] == rows
    sliced = SparseRows.from_cells(cells.slice(10, 5))  # an offset into the buffers
    assert [dict(zip(*map(np.ndarray.tolist, sliced.row(i)), strict=True))
            for i in range(5)] == rows[10:15]  # fmt: skip
    joined = SparseRows.from_cells(cells.slice(0, 20)).extended(
        SparseRows.from_cells(cells.slice(20, 30)))  # fmt: skip
    np.testing.assert_array_equal(joined.indptr, b.indptr)
    with_nulls = SparseRows.from_cells(pa.array([None, cells[1].as_py()], pa.binary()))
    assert with_nulls.row(0)[0].size == 0 and with_nulls.nnz == len(rows[1])
    q_idx, q_val = np.array([3, 50, 120], np.uint32), np.array([1.0, 2.0, 0.5], np.float32)
    want = dense(rows) @ dense([{3: 1.0, 50: 2.0, 120: 0.5}])[0]
    np.testing.assert_allclose(ip_scores(b, q_idx, q_val), want, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_scan_and_index_equal_the_dense_reference(seed: int) -> None:
    rows = random_rows(500, seed)
    queries = random_rows(12, 100 + seed, empty=0.0)
    base, qs = batch(rows), batch(queries)
    index = SparseIndex.build("SPARSE_INVERTED_INDEX", base, "IP")
    rng = np.random.default_rng(seed)
    for valid in (None, rng.random(500) < 0.5):
        for k in (1, 7, 40):
            d1, r1 = exact_search(base, qs, k, valid)
            d2, r2 = index.search(qs, k, valid=valid)
            for qi, q in enumerate(queries):
                ids, scores = reference(rows, q, k, valid)
                got = [int(x) for x in r1[qi] if x >= 0]
                assert got == ids, (qi, k)
                np.testing.assert_allclose(d1[qi, : len(ids)], scores, rtol=1e-5)
                assert (r1[qi, len(ids):] == -1).all() and np.isneginf(d1[qi, len(ids):]).all()
            np.testing.assert_array_equal(r2, r1)
            np.testing.assert_allclose(d2, d1, rtol=1e-5)


def test_drop_ratios() -> None:
    rows = random_rows(300, 7)
    base = batch(rows)
    q = {1: 4.0, 2: 0.1, 3: 3.0, 4: 0.2}
    kept = {1: 4.0, 3: 3.0}  # drop_ratio_search 0.5: the two smallest values leave
    _, r1 = exact_search(base, batch([q]), 10, drop_ratio=0.5)
    _, r2 = exact_search(base, batch([kept]), 10)
    np.testing.assert_array_equal(r1, r2)
    index = SparseIndex.build("SPARSE_WAND", base, "IP")
    _, r3 = index.search(batch([q]), 10, {"drop_ratio_search": 0.5})
    np.testing.assert_array_equal(r3, r2)
    pruned = SparseIndex.build("SPARSE_INVERTED_INDEX", base, "IP", {"drop_ratio_build": 0.5})
    assert len(pruned.rows) < len(index.rows)  # the smaller half of the values left out
    assert pruned.values.min() >= np.quantile(base.values, 0.5) - 1e-6


def test_index_file_round_trip_and_metric_refusal() -> None:
    base = batch(random_rows(100, 3))
    index = SparseIndex.build("SPARSE_INVERTED_INDEX", base, "IP",
                              {"inverted_index_algo": "TAAT_NAIVE"})  # fmt: skip
    back = load_index(dump(index))  # type: ignore[arg-type]
    assert isinstance(back, SparseIndex) and back.describe() == index.describe()
    for attr in ("dims", "offsets", "rows", "values"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(index, attr))
    assert "TAAT_NAIVE" in back.describe()["backend"]
    from gpuvec.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="metric L2 is not supported"):
        SparseIndex.build("SPARSE_INVERTED_INDEX", base, "L2")


def test_bm25_index_scores_equal_the_scan() -> None:
    rng = np.random.default_rng(5)
    counts = [{int(d): float(rng.integers(1, 4)) for d in rng.choice(VOCAB, int(rng.integers(1, 9)),
                                                                  replace=False)}
              for _ in range(400)]  # fmt: skip
    base = batch(counts)
    index = SparseIndex.build("SPARSE_INVERTED_INDEX", base, "BM25", {"bm25_k1": 1.5,
                                                                       "bm25_b": 0.6})  # fmt: skip
    lengths = np.array([sum(c.values()) for c in counts])
    np.testing.assert_allclose(index.lengths, lengths)
    weights = batch([{3: 1.7, 40: 0.4, 77: 2.5}, {5: 1.0}])
    avgdl = float(lengths.mean())
    d1, r1 = exact_search(base, weights, 15, bm25=(1.5, 0.6, avgdl))
    d2, r2 = index.search(weights, 15, {"bm25_avgdl": avgdl})
    np.testing.assert_array_equal(r2, r1)
    np.testing.assert_allclose(d2, d1, rtol=1e-5)
    # by hand: weight * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl))
    row = int(r1[1, 0])
    tf = counts[row][5]
    want = tf * 2.5 / (tf + 1.5 * (0.4 + 0.6 * lengths[row] / avgdl))
    assert abs(float(d1[1, 0]) - want) < 1e-4
    back = load_index(dump(index))  # type: ignore[arg-type]
    np.testing.assert_allclose(back.lengths, index.lengths)
