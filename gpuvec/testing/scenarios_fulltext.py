"""End-to-end full-text scenarios, runtime-independent (issue 19): a BM25 function over an
analysed VARCHAR field; texts inserted (rows never carry the sparse output), searched by
query text while growing and once sealed and indexed, across several segments and after
deletes — every score checked against a plain-Python Okapi BM25 over the same tokens
(k1 = 1.2, b = 0.75, Lucene's idf, statistics over the visible rows); filters; dense +
BM25 hybrid search (RRF); ``text_match`` / ``phrase_match`` filters in query, search and
delete; ``run_analyzer``; ``describe_collection``'s functions; Milvus's refusals. Uses
pymilvus's ``Function`` / ``FunctionType``.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestFullTextScenarios(FullTextScenarios):
        pass
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from gpuvec.testing.scenarios_support import raises_milvus_error, wait_indexed
from gpuvec.text.analyzer import analyzer

ENGLISH = {"type": "english"}
WORDS = [
    "turing", "machine", "computer", "science", "research", "intelligence", "artificial",
    "london", "england", "university", "logic", "proof", "code", "war", "cipher", "enigma",
    "mathematics", "algorithm", "network", "data", "learning", "model", "theory", "history",
    "people", "running", "runs", "ran", "quick", "brown", "fox",
]  # fmt: skip


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(WORDS, int(rng.integers(3, 14)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def _reference(texts: dict[int, str], query: str, k: int,
               keep: set[int] | None = None) -> list[tuple[int, float]]:  # fmt: skip
    """Okapi BM25 (k1 1.2, b 0.75, idf = ln(1 + (N - df + .5) / (df + .5))) of ``texts``
    (id → text) for ``query``, statistics over all of ``texts``; the best ``k`` of the rows
    in ``keep`` that share a term with the query, best first, ties by the lower id."""
    an = analyzer(ENGLISH)
    docs = {i: Counter(an.tokens(t)) for i, t in texts.items()}
    n = len(docs)
    avgdl = sum(sum(c.values()) for c in docs.values()) / n
    q = Counter(an.tokens(query))
    scores = {}
    for i, tf in docs.items():
        if (keep is not None and i not in keep) or not set(q) & set(tf):
            continue
        dl = sum(tf.values())
        s = 0.0
        for term, qtf in q.items():
            if term not in tf:
                continue
            df = sum(1 for c in docs.values() if term in c)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += qtf * idf * tf[term] * 2.2 / (tf[term] + 1.2 * (0.25 + 0.75 * dl / avgdl))
        scores[i] = s
    return sorted(scores.items(), key=lambda t: (-t[1], t[0]))[:k]


def _check(hits: list[dict[str, Any]], want: list[tuple[int, float]]) -> None:
    got = [(h["id"], h["distance"]) for h in hits]
    assert np.allclose([d for _, d in got], [d for _, d in want], rtol=1e-4), (got, want)
    ids, wids = [i for i, _ in got], [i for i, _ in want]
    if ids != wids:  # equal scores may swap only with each other
        assert sorted(ids) == sorted(wids) or len(set(ids) ^ set(wids)) <= 2, (got, want)


class FullTextScenarios:
    def _collection(self, milvus: Any, name: str) -> None:
        from pymilvus import Function, FunctionType

        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("text", _dtype("VARCHAR"), max_length=2000, enable_analyzer=True,
                         analyzer_params=ENGLISH, enable_match=True)  # fmt: skip
        schema.add_field("dense", _dtype("FLOAT_VECTOR"), dim=4)
        schema.add_field("sparse", _dtype("SPARSE_FLOAT_VECTOR"))
        schema.add_field("tag", _dtype("INT64"))
        schema.add_function(Function(name="bm25", input_field_names=["text"],
                                     output_field_names=["sparse"],
                                     function_type=FunctionType.BM25))  # fmt: skip
        index = milvus.prepare_index_params()
        index.add_index("dense", index_type="FLAT", metric_type="L2")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", index_name="bm25_idx",
                        metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75})
        milvus.create_collection(name, schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip

    def _insert(self, milvus: Any, name: str, texts: dict[int, str]) -> None:
        rng = np.random.default_rng(len(texts))
        milvus.insert(name, [{"id": i, "text": t, "dense": rng.random(4).tolist(), "tag": i % 3}
                             for i, t in texts.items()])  # fmt: skip

    def test_bm25_search_matches_the_reference(self, milvus: Any) -> None:
        self._collection(milvus, "ft")
        texts = dict(enumerate(_texts(150, 1)))
        self._insert(milvus, "ft", texts)
        queries = ["Turing machine research", "running quick fox", "enigma cipher war history"]
        for phase in ("growing", "sealed", "two segments", "deleted"):
            for q in queries:
                hits = milvus.search("ft", data=[q], anns_field="sparse", limit=10,
                                     output_fields=["text"])[0]  # fmt: skip
                _check(hits, _reference(texts, q, 10))
                assert all(h["entity"]["text"] == texts[h["id"]] for h in hits)
                hits = milvus.search("ft", data=[q], anns_field="sparse", limit=5,
                                     filter="tag == 1")[0]  # fmt: skip
                _check(hits, _reference(texts, q, 5, {i for i in texts if i % 3 == 1}))
            if phase == "growing":
                milvus.flush("ft")
                wait_indexed(milvus, "ft", "bm25_idx", len(texts))
            elif phase == "sealed":  # a second segment: statistics span both
                more = {150 + i: t for i, t in enumerate(_texts(60, 2))}
                self._insert(milvus, "ft", more)
                texts.update(more)
            elif phase == "two segments":  # deleted rows leave the statistics too
                milvus.delete("ft", ids=list(range(0, 150, 4)))
                for i in range(0, 150, 4):
                    del texts[i]
        got = milvus.query("ft", filter="id == 1", output_fields=["text"])
        assert got == [{"id": 1, "text": texts[1]}]

    def test_hybrid_analyzer_and_functions(self, milvus: Any) -> None:
        from pymilvus import AnnSearchRequest, RRFRanker

        self._collection(milvus, "fh")
        texts = dict(enumerate(_texts(80, 3)))
        self._insert(milvus, "fh", texts)
        q = "enigma cipher"
        best = _reference(texts, q, 1)[0][0]
        reqs = [AnnSearchRequest([[0.5, 0.5, 0.5, 0.5]], "dense", {"metric_type": "L2"}, 10),
                AnnSearchRequest([q], "sparse", {"metric_type": "BM25"}, 10)]
        fused = milvus.hybrid_search("fh", reqs, RRFRanker(60), limit=5)[0]
        assert len(fused) == 5 and best in [h["id"] for h in fused]
        tokens = milvus.run_analyzer("The Quick brown foxes jumped!", analyzer_params=ENGLISH)
        assert list(tokens.tokens) == ["quick", "brown", "fox", "jump"]
        functions = milvus.describe_collection("fh")["functions"]
        assert [(f["name"], f["input_field_names"], f["output_field_names"])
                for f in functions] == [("bm25", ["text"], ["sparse"])]  # fmt: skip
        fields = {f["name"]: f for f in milvus.describe_collection("fh")["fields"]}
        assert fields["sparse"].get("is_function_output") is True
        # a partial update of the text recomputes the BM25 output from the merged row
        milvus.upsert("fh", [{"id": 7, "text": "Zebra zebra crossing."}], partial_update=True)
        hits = milvus.search("fh", data=["zebra"], anns_field="sparse", limit=3,
                             output_fields=["tag"])[0]  # fmt: skip
        assert [h["id"] for h in hits] == [7] and hits[0]["entity"]["tag"] == 7 % 3

    def test_fulltext_refusals(self, milvus: Any) -> None:
        from pymilvus import Function, FunctionType

        self._collection(milvus, "fr")
        with raises_milvus_error("sparse"):  # rows never carry the output
            milvus.insert("fr", [{"id": 1, "text": "x", "dense": [0.0] * 4, "tag": 0,
                                  "sparse": {1: 1.0}}])  # fmt: skip
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("text", _dtype("VARCHAR"), max_length=100)  # no analyzer
        schema.add_field("sparse", _dtype("SPARSE_FLOAT_VECTOR"))
        schema.add_function(Function(name="bm25", input_field_names=["text"],
                                     output_field_names=["sparse"],
                                     function_type=FunctionType.BM25))  # fmt: skip
        with raises_milvus_error("enable_analyzer"):
            milvus.create_collection("fr2", schema=schema)
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("sv", _dtype("SPARSE_FLOAT_VECTOR"))
        idx = milvus.prepare_index_params()
        idx.add_index("sv", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        with raises_milvus_error("BM25"):  # BM25 scores a BM25 function's output only
            milvus.create_collection("fr3", schema=schema, index_params=idx)

    def test_text_match_and_phrase_match(self, milvus: Any) -> None:
        self._collection(milvus, "tm")
        texts = dict(enumerate(_texts(120, 4)))
        texts[500] = "The quick brown fox ran over the lazy dog."
        self._insert(milvus, "tm", texts)
        an = analyzer(ENGLISH)
        toks = {i: set(an.tokens(t)) for i, t in texts.items()}

        def ids(expr: str) -> set[int]:
            return {r["id"] for r in milvus.query("tm", filter=expr, output_fields=["id"],
                                                  limit=1000)}  # fmt: skip

        for phase in ("growing", "sealed"):
            want = {i for i, t in toks.items() if t & {"enigma", "cipher"}}
            assert ids("text_match(text, 'Enigma ciphers')") == want and want
            both = {i for i, t in toks.items() if {"enigma", "cipher"} <= t}
            assert ids("text_match(text, 'enigma cipher', 2)") == both
            assert ids("phrase_match(text, 'quick brown fox')") >= {500}
            assert 500 not in ids("phrase_match(text, 'quick fox')")  # "brown" between
            assert 500 in ids("phrase_match(text, 'quick fox', 1)")
            turing = an.tokens("turing")[0]  # the english analyzer stems it
            rest = {i for i, t in toks.items() if turing not in t and i % 3 == 0}
            assert ids("not text_match(text, 'turing') and tag == 0") == rest
            hits = milvus.search("tm", data=["machine"], anns_field="sparse", limit=50,
                                 filter="text_match(text, 'london')")[0]  # fmt: skip
            assert hits and all("london" in toks[h["id"]] for h in hits)
            if phase == "growing":
                milvus.flush("tm")
        gone = {i for i, t in toks.items() if "war" in t}
        milvus.delete("tm", filter="text_match(text, 'war')")
        assert not ids("text_match(text, 'war')") and gone
        with raises_milvus_error("text_match needs a VARCHAR field"):
            milvus.query("tm", filter="text_match(tag, 'x')")
