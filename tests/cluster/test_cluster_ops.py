"""Coordinator duties on the real local cluster: manual compaction through pymilvus (Dask
task on the data node, guarded switch, query nodes swap segments, results unchanged), the
deleted fractions query nodes report for the compaction policy, and the segment balance."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import log_tails
from pymilvus import MilvusClient

from gpuvec.cluster.launcher import LocalCluster
from gpuvec.cluster.sessions import segment_servers
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.cluster.streamingnode import SERVED
from gpuvec.coord.catalog import Catalog

pytestmark = [pytest.mark.etcd, pytest.mark.kafka, pytest.mark.slow]
DIM = 8


def _count(c: MilvusClient, name: str) -> int:
    return c.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]


def test_manual_compaction_merges_segments_and_keeps_results(
    cluster: LocalCluster, milvus: MilvusClient
) -> None:
    vecs = np.random.default_rng(5).random((1200, DIM), dtype=np.float32)
    milvus.create_collection(
        "cmp", dimension=DIM, metric_type="L2", consistency_level="Strong", num_shards=1
    )
    for s in range(0, 1200, 300):
        milvus.insert("cmp", [{"id": i, "vector": vecs[i].tolist()} for i in range(s, s + 300)])
        milvus.flush("cmp")
    milvus.delete("cmp", ids=list(range(0, 120)))  # 40 % of the first segment
    milvus.flush("cmp")  # the deletes go to a delta log
    q = [vecs[500].tolist(), vecs[1100].tolist()]
    before = milvus.search("cmp", q, limit=5)
    meta = ClusterSettings.load(cluster.config_path).open_meta()
    try:
        cid = milvus.describe_collection("cmp")["collection_id"]
        deadline = time.monotonic() + 20
        while True:  # the query nodes report the deleted fraction of the first segment
            kvs, _ = meta.range(f"{SERVED}{cid}/")
            fracs = [float(kv.value or b"0") for kv in kvs]
            if max(fracs, default=0) >= 0.39:
                break
            assert time.monotonic() < deadline, fracs
            time.sleep(0.2)
        assert len(Catalog(meta).segments(cid)) == 4
        time.sleep(1.5)  # past the MVCC retention (1 s in these tests): deletes are dropped
        job = milvus.compact("cmp")
        deadline = time.monotonic() + 120
        while milvus.get_compaction_state(job) != "Completed":
            assert time.monotonic() < deadline, log_tails(cluster)
            time.sleep(0.3)
        segs = Catalog(meta).segments(cid)
        assert len(segs) == 1 and segs[0].rows == 1080, segs  # deleted rows dropped
        deadline = time.monotonic() + 30
        while set(segment_servers(meta, cid)) != {segs[0].id}:
            assert time.monotonic() < deadline, segment_servers(meta, cid)
            time.sleep(0.2)
    finally:
        meta.close()
    assert _count(milvus, "cmp") == 1080
    after = milvus.search("cmp", q, limit=5)
    assert [[h["id"] for h in r] for r in after] == [[h["id"] for h in r] for r in before]


def test_sealed_segments_are_balanced_over_query_nodes(
    cluster: LocalCluster, milvus: MilvusClient
) -> None:
    vecs = np.random.default_rng(6).random((1600, DIM), dtype=np.float32)
    milvus.create_collection(
        "bal", dimension=DIM, metric_type="L2", consistency_level="Strong", num_shards=2
    )
    for s in range(0, 1600, 400):
        milvus.insert("bal", [{"id": i, "vector": vecs[i].tolist()} for i in range(s, s + 400)])
        milvus.flush("bal")
    meta = ClusterSettings.load(cluster.config_path).open_meta()
    try:
        cid = milvus.describe_collection("bal")["collection_id"]
        rows = {s.id: s.rows for s in Catalog(meta).segments(cid)}
        deadline = time.monotonic() + 20
        while set(segment_servers(meta, cid)) != set(rows):  # the coordinator places them
            assert time.monotonic() < deadline, (rows, segment_servers(meta, cid))
            time.sleep(0.1)
        per_node: dict[str, int] = {}
        for sid, nodes in segment_servers(meta, cid).items():
            assert len(nodes) == 1  # replicas = 1
            per_node[nodes[0]] = per_node.get(nodes[0], 0) + rows[sid]
    finally:
        meta.close()
    assert len(per_node) == 2, per_node
    assert sum(per_node.values()) == 1600
    assert max(per_node.values()) - min(per_node.values()) <= max(rows.values())
