"""End-to-end SPARSE_FLOAT_VECTOR scenarios, runtime-independent (issue 19): a collection
with a sparse and a dense field; sparse vectors inserted as ``{index: value}`` dicts and
``(index, value)`` pair lists; searched (IP) while growing (exact scan) and once sealed
and indexed (SPARSE_INVERTED_INDEX, its build finished), with filters, output fields,
deletes, range search and ``drop_ratio_search``; dense + sparse hybrid search (RRF);
queries returning the vectors as pymilvus decodes them; Milvus's refusals. Every search
is checked against a brute-force reference over the dense expansion of the rows.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestSparseScenarios(SparseScenarios):
        pass
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.testing.scenarios_support import raises_milvus_error, wait_indexed

N_ROWS, VOCAB, K = 400, 300, 10


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)


def _vectors(n: int, seed: int) -> list[dict[int, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dims = rng.choice(VOCAB, int(rng.integers(1, 12)), replace=False)
        vals = np.round(rng.random(len(dims)).astype(np.float32) + 0.05, 4)
        out.append({int(d): float(v) for d, v in zip(dims, vals, strict=True)})
    return out


def _dense(vecs: list[dict[int, float]]) -> np.ndarray:
    mat = np.zeros((len(vecs), VOCAB), np.float64)
    for i, v in enumerate(vecs):
        for d, x in v.items():
            mat[i, d] = np.float32(x)
    return mat


def _reference(vecs: list[dict[int, float]], q: dict[int, float], k: int,
               keep: set[int] | None = None) -> list[tuple[int, float]]:  # fmt: skip
    """(id, score) of the ``k`` best rows by inner product among rows sharing a dimension
    with ``q`` (and in ``keep``), best first, ties by the lower id."""
    scores = _dense(vecs) @ _dense([q])[0]
    touched = {i for i, v in enumerate(vecs) if set(v) & set(q)}
    cand = sorted((i for i in touched if keep is None or i in keep),
                  key=lambda i: (-scores[i], i))  # fmt: skip
    return [(i, float(scores[i])) for i in cand[:k]]


def _check(hits: list[dict[str, Any]], want: list[tuple[int, float]]) -> None:
    got = [(h["id"], h["distance"]) for h in hits]
    assert [i for i, _ in got] == [i for i, _ in want], (got, want)
    assert np.allclose([d for _, d in got], [d for _, d in want], rtol=1e-4, atol=1e-5)


class SparseScenarios:
    def _collection(self, milvus: Any, name: str) -> list[dict[int, float]]:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("dense", _dtype("FLOAT_VECTOR"), dim=4)
        schema.add_field("sv", _dtype("SPARSE_FLOAT_VECTOR"))
        schema.add_field("tag", _dtype("INT64"))
        index = milvus.prepare_index_params()
        index.add_index("dense", index_type="FLAT", metric_type="L2")
        index.add_index("sv", index_type="SPARSE_INVERTED_INDEX", index_name="sv_idx",
                        metric_type="IP", params={"inverted_index_algo": "DAAT_MAXSCORE"})
        milvus.create_collection(name, schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        vecs = _vectors(N_ROWS, 11)
        rng = np.random.default_rng(12)
        rows = []
        for i, v in enumerate(vecs):
            sv: Any = v if i % 2 else sorted(v.items())  # dicts and (index, value) pairs
            rows.append({"id": i, "dense": rng.random(4).tolist(), "sv": sv, "tag": i % 4})
        milvus.insert(name, rows)
        return vecs

    def test_sparse_search_growing_and_sealed_matches_brute_force(self, milvus: Any) -> None:
        vecs = self._collection(milvus, "sp")
        queries = [*_vectors(4, 99), vecs[17]]
        for phase in ("growing", "sealed"):
            for q in queries:
                hits = milvus.search("sp", data=[q], anns_field="sv", limit=K,
                                     search_params={"metric_type": "IP"})[0]  # fmt: skip
                _check(hits, _reference(vecs, q, K))
                hits = milvus.search("sp", data=[q], anns_field="sv", limit=K,
                                     filter="tag == 1", output_fields=["sv", "tag"])[0]  # fmt: skip
                _check(hits, _reference(vecs, q, K, {i for i in range(N_ROWS) if i % 4 == 1}))
                for h in hits:  # the stored vector, as pymilvus decodes it: {index: value}
                    assert h["entity"]["tag"] == 1
                    want = {d: float(np.float32(x)) for d, x in vecs[h["id"]].items()}
                    assert h["entity"]["sv"] == want
            if phase == "growing":
                milvus.flush("sp")
                wait_indexed(milvus, "sp", "sv_idx", N_ROWS)
        desc = milvus.describe_index("sp", "sv_idx")
        assert desc["index_type"] == "SPARSE_INVERTED_INDEX" and desc["metric_type"] == "IP"
        got = milvus.query("sp", filter="id in [3, 4]", output_fields=["sv"])
        assert {r["id"]: r["sv"] for r in got} == {
            i: {d: float(np.float32(x)) for d, x in vecs[i].items()} for i in (3, 4)}  # fmt: skip
        milvus.delete("sp", ids=[17])  # a deleted row is no hit
        hits = milvus.search("sp", data=[vecs[17]], anns_field="sv", limit=K)[0]
        _check(hits, _reference(vecs, vecs[17], K, set(range(N_ROWS)) - {17}))

    def test_range_search_drop_ratio_and_hybrid(self, milvus: Any) -> None:
        from pymilvus import AnnSearchRequest, RRFRanker

        vecs = self._collection(milvus, "sr")
        q = vecs[5]
        want = _reference(vecs, q, N_ROWS)
        lo, hi = want[8][1], want[2][1]  # radius < score <= range_filter
        hits = milvus.search("sr", data=[q], anns_field="sv", limit=50,
                             search_params={"params": {"radius": lo, "range_filter": hi}})[0]
        inside = [(i, s) for i, s in want if lo < s <= hi]
        _check(hits, inside[:50])
        # drop_ratio_search leaves the smaller half of the query's values out
        big = {d: x for d, x in sorted(q.items(), key=lambda t: -t[1])[: (len(q) + 1) // 2]}
        if len(q) >= 2:
            hits = milvus.search("sr", data=[q], anns_field="sv", limit=K,
                                 search_params={"params": {"drop_ratio_search": 0.5}})[0]
            _check(hits, _reference(vecs, big, K))
        reqs = [AnnSearchRequest([[0.5, 0.5, 0.5, 0.5]], "dense", {"metric_type": "L2"}, 20),
                AnnSearchRequest([q], "sv", {"metric_type": "IP"}, 20)]
        fused = milvus.hybrid_search("sr", reqs, RRFRanker(60), limit=5)[0]
        assert len(fused) == 5 and 5 in [h["id"] for h in fused]  # q is row 5's own vector

    def test_sparse_refusals(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("sv", _dtype("SPARSE_FLOAT_VECTOR"))
        for itype, metric, message in (("HNSW", "IP", "can't build with this index HNSW"),
                                       ("SPARSE_INVERTED_INDEX", "L2", "L2")):  # fmt: skip
            idx = milvus.prepare_index_params()
            with raises_milvus_error(message):
                idx.add_index("sv", index_type=itype, metric_type=metric)
                milvus.create_collection("bad", schema=schema, index_params=idx)
        idx = milvus.prepare_index_params()
        idx.add_index("sv", index_type="SPARSE_WAND", metric_type="IP")
        milvus.create_collection("ok", schema=schema, index_params=idx, consistency_level="Strong")
        for bad, message in (({-1: 0.5}, "sparse index -1|index must be"),
                             ({3: float("nan")}, "NaN|nan")):
            with raises_milvus_error(message):
                milvus.insert("ok", [{"id": 1, "sv": bad}])
        assert milvus.query("ok", filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"] == 0
        milvus.insert("ok", [{"id": 1, "sv": {2: 0.5}}, {"id": 2, "sv": {}}])  # empty: allowed
        hits = milvus.search("ok", data=[{2: 2.0}], limit=5)[0]
        assert [(h["id"], h["distance"]) for h in hits] == [(1, 1.0)]
