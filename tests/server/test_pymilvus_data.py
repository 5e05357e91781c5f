"""Inserts, upserts, deletes, queries, searches and iterators through an unmodified
``pymilvus.MilvusClient`` over a real socket, checked against brute force and against the
embedded ``gpuvec.MilvusClient`` running the same scenario (congruence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient, MilvusException

import gpuvec
from gpuvec.server.app import Server

DIM = 8
N = 300


def _data(seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    rows = [
        {"id": i, "vector": vecs[i].tolist(), "tag": f"t{i % 3}", "n": i, "w": float(i) / 7}
        for i in range(N)
    ]
    return vecs, rows


def _brute(vecs: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> list:
    a = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    b = q / np.linalg.norm(q)
    s = a @ b
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


@pytest.fixture
def loaded(milvus: MilvusClient) -> tuple[MilvusClient, np.ndarray]:
    vecs, rows = _data()
    milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
    milvus.insert("c", rows)
    return milvus, vecs


def test_crud_and_query(loaded: tuple[MilvusClient, np.ndarray]) -> None:
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
    assert m.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == N - 13
    assert m.get("c", ids=[0, 295]) == []


def test_search_matches_brute_force(loaded: tuple[MilvusClient, np.ndarray]) -> None:
    m, vecs = loaded
    q = np.random.default_rng(5).standard_normal((3, DIM)).astype(np.float32)
    res = m.search("c", q.tolist(), limit=7, output_fields=["tag", "n"])
    assert len(res) == 3
    for qi, hits in enumerate(res):
        assert [h["id"] for h in hits] == _brute(vecs, q[qi], 7)
        assert all(h["entity"]["n"] == h["id"] and h["entity"]["tag"] for h in hits)
        d = [h["distance"] for h in hits]
        assert d == sorted(d, reverse=True)  # COSINE: larger is closer
    # filters, template values and offset
    keep = np.array([i % 3 == 2 for i in range(N)])
    flt = m.search("c", [q[0].tolist()], limit=5, filter="tag == {t}", filter_params={"t": "t2"})
    assert [h["id"] for h in flt[0]] == _brute(vecs, q[0], 5, keep)
    off = m.search("c", [q[0].tolist()], limit=3, search_params={"offset": 2})
    assert [h["id"] for h in off[0]] == _brute(vecs, q[0], 5)[2:5]
    # range search: only hits with similarity in (radius, range_filter]
    rng_res = m.search("c", [q[0].tolist()], limit=50,
                       search_params={"params": {"radius": 0.5, "range_filter": 0.9}})  # fmt: skip
    assert rng_res[0] and all(0.5 < h["distance"] <= 0.9 + 1e-6 for h in rng_res[0])


def test_iterators(loaded: tuple[MilvusClient, np.ndarray]) -> None:
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
    assert got[:10] == _brute(vecs, q, 10)


def test_session_consistency_reads_own_writes(milvus: MilvusClient) -> None:
    milvus.create_collection("s", dimension=DIM, consistency_level="Session")
    for i in range(5):
        milvus.insert("s", [{"id": i, "vector": [float(i + 1)] * DIM}])
        assert milvus.query("s", filter="", output_fields=["count(*)"])[0]["count(*)"] == i + 1


def test_bad_search_requests(loaded: tuple[MilvusClient, np.ndarray]) -> None:
    m, _ = loaded
    with pytest.raises(MilvusException, match=r"limit|topk"):
        m.search("c", [[0.0] * DIM], limit=20000)
    with pytest.raises(MilvusException, match=r"(?i)metric"):
        m.search("c", [[0.0] * DIM], limit=3, search_params={"metric_type": "L2"})
    with pytest.raises(MilvusException, match="id"):  # an int field against a string
        m.search("c", [[0.0] * DIM], limit=3, filter="id == 'abc'")


def _scenario(client: Any) -> list[Any]:
    """One scenario, run through either client; returns everything it observed."""
    vecs, rows = _data(seed=11)
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
    out.append(client.query("g", filter="", output_fields=["count(*)"])[0]["count(*)"])
    out.append(sorted(r["id"] for r in client.get("g", ids=[5, 10, 11, 249])))
    return out


def test_congruence_with_the_embedded_client(
    milvus: MilvusClient, tmp_path: Path, fast: dict
) -> None:
    embedded = gpuvec.MilvusClient(str(tmp_path / "embedded"), **fast)
    try:
        want = _scenario(embedded)
    finally:
        embedded.close()
    got = _scenario(milvus)
    assert got == want


def test_unimplemented_rpc_is_named(milvus: MilvusClient, server: Server) -> None:
    # gRPC UNIMPLEMENTED (pymilvus passes it through without retrying), naming the RPC
    with pytest.raises(grpc.RpcError, match="does not implement the Milvus RPC ListResource"):
        milvus.list_resource_groups()
