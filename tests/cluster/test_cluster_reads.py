"""The cluster proxy's read shortcuts against the real cluster, through a proxy started in
this process (so its counters can be read): the speculative query-node call is kept while
the collection only serves reads, redone when a delete moves the WAL positions or a flush
moves segments, and resumed after; every answer equals a brute-force reference over the
rows that should be visible. A Bounded read may reuse a recent read timestamp, but never
one below the caller's own writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient

from gpuvec.cluster import proxy as proxy_module
from gpuvec.cluster.launcher import LocalCluster
from gpuvec.cluster.proxy import ClusterEngine
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.server.app import ServerOptions, start_server
from gpuvec.testing.scenarios_support import brute_cosine

pytestmark = [pytest.mark.etcd, pytest.mark.kafka]

DIM = 8


@pytest.fixture
def local_proxy(cluster: LocalCluster, milvus: MilvusClient) -> Iterator[tuple[Any, Any]]:
    """(ClusterEngine, pymilvus client of a gpuvec server over it), in this process."""
    engine = ClusterEngine(ClusterSettings.load(cluster.config_path))
    server = start_server("cluster", ServerOptions(port=0, flush_on_stop=False), engine=engine)
    client = MilvusClient(uri=f"http://127.0.0.1:{server.port}", timeout=60)
    try:
        yield engine, client
    finally:
        client.close()
        server.stop(grace=1)  # closes the engine too


def _check(client: Any, vecs: np.ndarray, alive: np.ndarray, level: str, n: int = 8) -> None:
    rng = np.random.default_rng(n)
    for q in rng.standard_normal((n, DIM)).astype(np.float32):
        hits = client.search("r", [q.tolist()], limit=10, consistency_level=level)[0]
        assert [h["id"] for h in hits] == brute_cosine(vecs, q, 10, alive)


def test_speculative_reads_stay_exact_through_deletes_and_flushes(
    local_proxy: tuple[Any, Any], milvus: MilvusClient
) -> None:
    engine, client = local_proxy
    vecs = np.random.default_rng(0).standard_normal((400, DIM)).astype(np.float32)
    alive = np.ones(len(vecs), bool)
    client.create_collection("r", dimension=DIM, consistency_level="Strong", num_shards=2)
    rows = [{"id": i, "vector": v.tolist()} for i, v in enumerate(vecs)]
    client.insert("r", rows[:300])
    client.flush("r")  # sealed segments on the query nodes
    client.insert("r", rows[300:])  # growing rows on the streaming nodes
    spec = engine.scatter.speculation
    _check(client, vecs, alive, "Strong")
    kept = spec["kept"]
    assert kept >= 6, spec  # reads only: the guess holds from the second read on
    client.delete("r", ids=[5, 17, 250, 301, 333])  # new WAL positions: the guess fails
    alive[[5, 17, 250, 301, 333]] = False
    _check(client, vecs, alive, "Strong")
    assert spec["redone"] >= 1, spec
    assert spec["kept"] > kept, spec  # and guessing resumed once reads were alone again
    client.flush("r")  # the growing rows move to query nodes: segments change
    _check(client, vecs, alive, "Strong")
    milvus.delete("r", ids=[100])  # through the cluster's own proxy
    alive[100] = False
    _check(client, vecs, alive, "Strong")


def test_bounded_reads_see_the_callers_own_writes(
    local_proxy: tuple[Any, Any], milvus: MilvusClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, client = local_proxy
    monkeypatch.setattr(proxy_module, "READ_TS_REUSE_S", 60.0)  # reuse whatever is allowed
    client.create_collection("r", dimension=DIM, consistency_level="Bounded")
    vec = np.ones(DIM, np.float32)
    for i in range(5):  # each write is read back at once, though read timestamps are reused
        client.insert("r", [{"id": i, "vector": (vec * (i + 1)).tolist()}])
        got = client.query("r", filter="id >= 0", output_fields=["id"])
        assert sorted(r["id"] for r in got) == list(range(i + 1))
    taken = engine._recent_ts[0]
    for _ in range(5):
        client.query("r", filter="id >= 0")
    assert engine._recent_ts[0] == taken  # read-only: the timestamp was reused
