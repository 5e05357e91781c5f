"""End-to-end hybrid and grouping search scenarios, runtime-independent: a grouping search
(``group_by_field``, ``group_size``, ``strict_group_size``) against a brute-force grouping,
and ``hybrid_search`` over two (also with group_by_field: grouped requests, fused, grouped again)
vector fields (L2 and COSINE), one request filtered, with ``RRFRanker`` and
``WeightedRanker`` (normalised or not), checked against a brute-force reference that fuses
the exact per-request results with Milvus's formulas (written out here, independently of
:mod:`gpuvec.proxy.rerank`); output fields, offset, several queries, and the refusal of a
weight list of the wrong length.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestHybridScenarios(HybridScenarios):
        pass
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pymilvus import AnnSearchRequest, DataType, RRFRanker, WeightedRanker

from gpuvec.testing.knn_reference import ref_knn
from gpuvec.testing.scenarios_support import raises_milvus_error

N, DA, DB, K = 240, 8, 6, 15


def _reference(a: np.ndarray, b: np.ndarray, tags: list[str], qa: np.ndarray, qb: np.ndarray,
               rank: str, weights: tuple[float, float] = (0.0, 0.0),
               norm: bool = True) -> list[tuple[int, float]]:  # fmt: skip
    """Exact fused ranking of one query: request A (L2 on ``a``) and request B (COSINE on
    ``b``, tag == "t1"), K hits each."""
    da, ia, _ = ref_knn(a, qa[None, :], K, "L2")
    keep = np.array([t == "t1" for t in tags])
    db, ib, _ = ref_knn(b, qb[None, :], K, "COSINE", keep)
    score: dict[int, float] = {}
    for r, (dist, idx) in enumerate(((da[0], ia[0]), (db[0], ib[0]))):
        for rank_i, (d, i) in enumerate(zip(dist, idx, strict=True), start=1):
            if i < 0:
                continue
            if rank == "rrf":
                part = 1.0 / (60 + rank_i)
            elif r == 0:  # L2: a distance, turned so that larger is better
                part = weights[0] * (1 - 2 * math.atan(d) / math.pi)
            else:
                part = weights[1] * ((1 + d) / 2 if norm else d)
            score[int(i)] = score.get(int(i), 0.0) + part
    return sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridScenarios:
    def _collection(self, milvus: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("a", DataType.FLOAT_VECTOR, dim=DA)
        schema.add_field("b", DataType.FLOAT_VECTOR, dim=DB)
        schema.add_field("tag", DataType.VARCHAR, max_length=8)
        index = milvus.prepare_index_params()
        index.add_index("a", index_type="FLAT", metric_type="L2")
        index.add_index("b", index_type="FLAT", metric_type="COSINE")
        milvus.create_collection("hy", schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        rng = np.random.default_rng(21)
        a = rng.standard_normal((N, DA)).astype(np.float32)
        b = rng.standard_normal((N, DB)).astype(np.float32)
        tags = [f"t{i % 3}" for i in range(N)]
        milvus.insert("hy", [{"id": i, "a": a[i].tolist(), "b": b[i].tolist(), "tag": tags[i]}
                             for i in range(N)])  # fmt: skip
        return a, b, tags

    def test_rankers_match_brute_force(self, milvus: Any) -> None:
        a, b, tags = self._collection(milvus)
        rng = np.random.default_rng(5)
        qa = rng.standard_normal((2, DA)).astype(np.float32)
        qb = rng.standard_normal((2, DB)).astype(np.float32)
        reqs = [AnnSearchRequest(qa.tolist(), "a", {"metric_type": "L2"}, K),
                AnnSearchRequest(qb.tolist(), "b", {"metric_type": "COSINE"}, K,
                                 expr='tag == "t1"')]  # fmt: skip
        raw = WeightedRanker(0.6, 0.4, norm_score=False)
        cases = [("rrf", RRFRanker(), (0.0, 0.0), True),
                 ("weighted", WeightedRanker(0.3, 0.7), (0.3, 0.7), True),
                 ("weighted", raw, (0.6, 0.4), False)]  # fmt: skip
        for rank, ranker, weights, norm in cases:
            res = milvus.hybrid_search("hy", reqs, ranker, limit=10, output_fields=["tag"])
            assert len(res) == 2
            for q in range(2):
                want = _reference(a, b, tags, qa[q], qb[q], rank, weights, norm)[:10]
                got = [(h["id"], h["distance"]) for h in res[q]]
                assert [i for i, _ in got] == [i for i, _ in want], (rank, q, got, want)
                np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4)
                assert all(h["entity"]["tag"] == tags[h["id"]] for h in res[q])
        page = milvus.hybrid_search("hy", reqs, RRFRanker(), limit=5, offset=3)
        full = milvus.hybrid_search("hy", reqs, RRFRanker(), limit=8)
        assert [h["id"] for h in page[0]] == [h["id"] for h in full[0]][3:8]
        with raises_milvus_error("weights"):
            milvus.hybrid_search("hy", reqs, WeightedRanker(1.0), limit=5)

    def test_grouping_search_matches_brute_force(self, milvus: Any) -> None:
        a, _, tags = self._collection(milvus)
        q = np.random.default_rng(8).standard_normal(DA).astype(np.float32)
        order = np.argsort(((a - q) ** 2).sum(axis=1), kind="stable")
        groups: dict[str, list[int]] = {}
        for i in order:  # every row, best first: groups by first appearance, filled
            if tags[i] in groups or len(groups) < 2:
                groups.setdefault(tags[i], []).append(int(i))
        want = [i for g in groups.values() for i in g[:4]]
        res = milvus.search("hy", [q.tolist()], anns_field="a", limit=2, group_by_field="tag",
                            group_size=4, strict_group_size=True,
                            output_fields=["tag"])[0]  # fmt: skip
        assert [h["id"] for h in res] == want
        assert all(h["entity"]["tag"] == tags[h["id"]] for h in res)
        loose = milvus.search("hy", [q.tolist()], anns_field="a", limit=2,
                              group_by_field="tag")[0]  # fmt: skip
        assert [h["id"] for h in loose] == [g[0] for g in groups.values()]
        assert all("tag" not in h["entity"] for h in loose)  # fetched for grouping only
        with raises_milvus_error("group by"):
            milvus.search("hy", [q.tolist()], anns_field="a", limit=2, group_by_field="a")

    def test_hybrid_search_with_grouping_matches_brute_force(self, milvus: Any) -> None:
        a, b, tags = self._collection(milvus)
        rng = np.random.default_rng(13)
        qa, qb = rng.standard_normal(DA).astype(np.float32), rng.standard_normal(DB)
        limit, size = 2, 3

        def grouped(order: np.ndarray) -> list[int]:  # a grouping search's flattened hits
            groups: dict[str, list[int]] = {}  # up to the request's limit (20) groups
            for i in order:
                if tags[i] in groups or len(groups) < 20:
                    got = groups.setdefault(tags[i], [])
                    if len(got) < size:
                        got.append(int(i))
            return [i for g in groups.values() for i in g]

        cos = (b @ qb) / np.linalg.norm(b, axis=1) / np.linalg.norm(qb)
        per_request = [grouped(np.argsort(((a - qa) ** 2).sum(1), kind="stable")),
                       grouped(np.argsort(-cos, kind="stable"))]  # fmt: skip
        score: dict[int, float] = {}
        for hits in per_request:
            for rank, i in enumerate(hits, start=1):
                score[i] = score.get(i, 0.0) + 1.0 / (60 + rank)
        fused = sorted(score, key=lambda i: (-score[i], i))
        groups: dict[str, list[int]] = {}
        for i in fused:
            got = groups.setdefault(tags[i], [])
            if len(got) < size:
                got.append(i)
        best = sorted(enumerate(groups.values()),
                      key=lambda ig: (-max(score[i] for i in ig[1]), ig[0]))  # fmt: skip
        want = [i for _, g in best[:limit] for i in g]
        reqs = [AnnSearchRequest([qa.tolist()], "a", {"metric_type": "L2"}, 20),
                AnnSearchRequest([qb.tolist()], "b", {"metric_type": "COSINE"}, 20)]
        res = milvus.hybrid_search("hy", reqs, RRFRanker(), limit=limit, group_by_field="tag",
                                   group_size=size)[0]  # fmt: skip
        assert [h["id"] for h in res] == want
        assert all("tag" not in h["entity"] for h in res)  # fetched for grouping only
        with raises_milvus_error("group by"):
            milvus.hybrid_search("hy", reqs, RRFRanker(), limit=2, group_by_field="b")
