"""End-to-end data scenarios of the Milvus ``MilvusClient`` API, runtime-independent.

:class:`DataScenarios` checks inserts, upserts, deletes, filtered and paged queries with
template values, searches (filters, offset, range search) against a brute-force
reference, query and search iterators, Session consistency, the refusal of bad search
requests, and congruence: one mixed scenario must give exactly the answers the embedded
``gpuvec.MilvusClient`` gives.

To run it against a runtime, subclass it in a test module and provide the fixtures:

- ``milvus``: a client with pymilvus's ``MilvusClient`` API on an empty runtime (the
  embedded ``gpuvec.MilvusClient``, or ``pymilvus.MilvusClient`` connected to
  ``gpuvec serve`` or a cluster proxy), closed by the fixture after the test;
- ``fast``: keyword arguments of the embedded ``gpuvec.MilvusClient`` the congruence
  scenario compares with (e.g. ``{"config": Config(index_min_rows=256, ...)}``).

Example (``tests/unit/test_scenarios_embedded.py``, ``tests/server/test_scenarios_serve.py``
and ``tests/cluster/test_scenarios_cluster.py`` do this)::

    class TestDataScenarios(DataScenarios):
        pass

Errors are asserted with :func:`gpuvec.testing.scenarios_support.raises_milvus_error`,
which accepts pymilvus's ``MilvusException`` as well as gpuvec's ``GpuvecError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuvec.testing.scenarios_support import (
    DIM,
    N,
    brute_cosine,
    count,
    data,
    raises_milvus_error,
)


def congruence_scenario(client: Any) -> list[Any]:
    """One mixed scenario (insert, overlapping upsert, filtered delete, filtered search
    with output fields, query, count, get), run through any client; returns everything it
    observed, for comparing runtimes."""
    vecs, rows = data(seed=11)
    client.create_collection("g", dimension=DIM, consistency_level="Strong")
    client.insert("g", rows[:200])
    client.upsert("g", rows[150:250])
    client.delete("g", filter="n % 10 == 0")
    out: list[Any] = []
    q = vecs[:4].tolist()
    for hits in client.search("g", q, limit=6, filter="n > 20", output_fields=["tag", "w"]):
        out.append([(h["id"], round(h["distance"], 5), h["entity"]) for h in hits])
    rows_out = client.query("g", filter="tag == 't1' and n < 60", output_fields=["n", "w", "tag"])
    out.append(sorted((r["id"], r["n"], r["w"], r["tag"]) for r in rows_out))
    out.append(count(client, "g"))
    out.append(sorted(r["id"] for r in client.get("g", ids=[5, 10, 11, 249])))
    return out


class DataScenarios:
    @pytest.fixture
    def loaded(self, milvus: Any) -> tuple[Any, np.ndarray]:
        """Collection ``c`` (quick setup, COSINE, Strong) holding the rows of ``data()``."""
        vecs, rows = data()
        milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
        milvus.insert("c", rows)
        return milvus, vecs

    def test_crud_and_query(self, loaded: tuple[Any, np.ndarray]) -> None:
        m, _ = loaded
        got = m.query("c", filter="n < 10 and tag == 't1'", output_fields=["n", "tag", "w"])
        assert sorted(r["id"] for r in got) == [1, 4, 7]
        assert all(r["tag"] == "t1" and r["n"] == r["id"] for r in got)
        page = m.query("c", filter="n >= 0", output_fields=["n"], limit=5, offset=10)
        assert [r["id"] for r in page] == list(range(10, 15))
        tmpl = m.query("c", filter="n in {vals}", filter_params={"vals": [3, 5, 400]},
                       output_fields=["n"])  # fmt: skip
        assert sorted(r["id"] for r in tmpl) == [3, 5]
        up = m.upsert("c", [{"id": 3, "vector": [1.0] * DIM, "tag": "new", "n": 3, "w": 0.0}])
        assert up["upsert_count"] == 1
        assert m.get("c", ids=[3], output_fields=["tag"])[0]["tag"] == "new"
        assert m.delete("c", ids=[0, 1, 2])["delete_count"] == 3
        assert m.delete("c", filter="n >= 290")["delete_count"] == 10
        assert count(m, "c") == N - 13
        assert m.get("c", ids=[0, 295]) == []

    def test_search_matches_brute_force(self, loaded: tuple[Any, np.ndarray]) -> None:
        m, vecs = loaded
        q = np.random.default_rng(5).standard_normal((3, DIM)).astype(np.float32)
        res = m.search("c", q.tolist(), limit=7, output_fields=["tag", "n"])
        assert len(res) == 3
        for qi, hits in enumerate(res):
            assert [h["id"] for h in hits] == brute_cosine(vecs, q[qi], 7)
            assert all(h["entity"]["n"] == h["id"] and h["entity"]["tag"] for h in hits)
            d = [h["distance"] for h in hits]
            assert d == sorted(d, reverse=True)  # COSINE: larger is closer
        # filters, template values and offset
        keep = np.array([i % 3 == 2 for i in range(N)])
        flt = m.search("c", [q[0].tolist()], limit=5, filter="tag == {t}",
                       filter_params={"t": "t2"})  # fmt: skip
        assert [h["id"] for h in flt[0]] == brute_cosine(vecs, q[0], 5, keep)
        off = m.search("c", [q[0].tolist()], limit=3, search_params={"offset": 2})
        assert [h["id"] for h in off[0]] == brute_cosine(vecs, q[0], 5)[2:5]
        # range search: only hits with similarity in (radius, range_filter]
        rng_params = {"params": {"radius": 0.5, "range_filter": 0.9}}
        rng_res = m.search("c", [q[0].tolist()], limit=50, search_params=rng_params)
        assert rng_res[0] and all(0.5 < h["distance"] <= 0.9 + 1e-6 for h in rng_res[0])

    def test_iterators(self, loaded: tuple[Any, np.ndarray]) -> None:
        m, vecs = loaded
        it = m.query_iterator("c", batch_size=40, filter="n >= 100", output_fields=["n"])
        seen: list[int] = []
        while True:
            batch = it.next()
            if not batch:
                break
            assert len(batch) <= 40
            seen += [r["id"] for r in batch]
        it.close()
        assert sorted(seen) == list(range(100, N))
        q = vecs[0] + 0.01
        sit = m.search_iterator("c", data=[q.tolist()], batch_size=25, limit=100)
        got: list[int] = []
        while True:
            batch = sit.next()
            if not batch:
                break
            got += [h["id"] for h in batch]
        sit.close()
        assert len(got) == len(set(got)) == 100
        assert got[:10] == brute_cosine(vecs, q, 10)

    def test_session_consistency_reads_own_writes(self, milvus: Any) -> None:
        milvus.create_collection("s", dimension=DIM, consistency_level="Session")
        for i in range(5):
            milvus.insert("s", [{"id": i, "vector": [float(i + 1)] * DIM}])
            assert count(milvus, "s") == i + 1

    def test_bad_search_requests(self, loaded: tuple[Any, np.ndarray]) -> None:
        m, _ = loaded
        with raises_milvus_error(match=r"limit|topk"):
            m.search("c", [[0.0] * DIM], limit=20000)
        with raises_milvus_error(match=r"(?i)metric"):
            m.search("c", [[0.0] * DIM], limit=3, search_params={"metric_type": "L2"})
        with raises_milvus_error(match="id"):  # an int field against a string
            m.search("c", [[0.0] * DIM], limit=3, filter="id == 'abc'")

    def test_congruence_with_the_embedded_client(
        self, milvus: Any, tmp_path: Path, fast: dict
    ) -> None:
        """The runtime under test answers the mixed scenario exactly as a fresh embedded
        client does (for the embedded runtime: two fresh engines agree)."""
        import gpuvec

        embedded = gpuvec.MilvusClient(str(tmp_path / "congruence-reference"), **fast)
        try:
            want = congruence_scenario(embedded)
        finally:
            embedded.close()
        assert congruence_scenario(milvus) == want
