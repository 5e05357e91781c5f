"""``query_iterator`` / ``search_iterator`` of the embedded client: batches, limits, string
keys, one pinned snapshot, and search paging past one top-k search (range searches from
the last distance) checked against brute force."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.client import iterators
from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError
from gpuvec.testing.knn_reference import ref_knn

DIM, N = 4, 120


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MilvusClient]:
    c = MilvusClient(str(tmp_path / "db"),
                     config=Config(dashboard_address="", index_min_rows=1 << 30))  # fmt: skip
    try:
        yield c
    finally:
        c.close()


def _drain(it: object) -> list[list[dict]]:
    out = []
    while batch := it.next():  # type: ignore[attr-defined]
        out.append(batch)
    return out


def test_query_iterator_pages_string_keys_with_a_limit(client: MilvusClient) -> None:
    client.create_collection("s", dimension=DIM, id_type="string", max_length=16)
    rows = [{"id": f"k{i:03d}", "vector": [float(i)] * DIM, "n": i} for i in range(N)]
    client.insert("s", rows)
    it = client.query_iterator("s", batch_size=10, limit=25, filter="n % 2 == 0",
                               output_fields=["n"])  # fmt: skip
    batches = _drain(it)
    assert [len(b) for b in batches] == [10, 10, 5]
    keys = [r["id"] for b in batches for r in b]
    assert keys == sorted(f"k{i:03d}" for i in range(0, 50, 2))
    assert all(r["n"] % 2 == 0 for b in batches for r in b)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        client.query_iterator("s", batch_size=0)


def test_iterators_read_one_snapshot(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, consistency_level="Strong")
    client.insert("c", [{"id": i, "vector": [1.0] * DIM} for i in range(30)])
    it = client.query_iterator("c", batch_size=10)
    first = it.next()
    client.insert("c", [{"id": 1000 + i, "vector": [1.0] * DIM} for i in range(5)])
    client.delete("c", ids=[29])
    rest = _drain(it)
    seen = [r["id"] for r in first] + [r["id"] for b in rest for r in b]
    assert seen == list(range(30))  # neither the new rows nor the delete


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_search_iterator_pages_past_one_topk_by_range(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, metric: str
) -> None:
    monkeypatch.setattr(iterators, "MAX_TOPK", 30)  # page past "one search" early
    vec = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    client.create_collection("v", dimension=DIM, metric_type=metric)
    client.insert("v", [{"id": i, "vector": vec[i]} for i in range(N)])
    q = vec[5] + 0.05
    it = client.search_iterator("v", data=q, batch_size=7, limit=100)
    batches = _drain(it)
    got = [h["id"] for b in batches for h in b]
    assert all(len(b) <= 7 for b in batches)
    assert len(got) == len(set(got)) == 100
    _, want, _ = ref_knn(vec, q[None, :], 100, metric)
    assert got == want[0].tolist()
    dists = [h["distance"] for b in batches for h in b]
    assert dists == sorted(dists, reverse=metric != "L2")


def test_search_iterator_takes_one_vector_and_closes(client: MilvusClient) -> None:
    client.create_collection("v", dimension=DIM)
    client.insert("v", [{"id": i, "vector": [float(i + 1), 1.0, 0.0, 0.0]} for i in range(5)])
    with pytest.raises(InvalidArgumentError, match="exactly one query vector"):
        client.search_iterator("v", data=[[1.0] * DIM, [2.0] * DIM])
    it = client.search_iterator("v", data=[[1.0] * DIM], batch_size=2)
    assert len(it.next()) == 2
    it.close()
    assert it.next() == []
