"""Data nodes on a real ``distributed.LocalCluster`` with worker processes: index builds
run as tasks with readable keys, a worker killed mid-build is replaced and the build still
lands exactly once, and searches answer throughout."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.schema import DataType

DIM = 32


def test_worker_killed_mid_build(tmp_path: Path) -> None:
    cfg = Config(seal_idle_s=3600, datanode_processes=True, datanode_workers=2,
                 dashboard_address="", index_min_rows=100)  # fmt: skip
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        s = MilvusClient.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        idx = c.prepare_index_params()
        idx.add_index(
            "vector", index_type="HNSW", metric_type="L2", params={"M": 32, "efConstruction": 200}
        )  # fmt: skip (a slow build)
        c.create_collection("c", schema=s, index_params=idx)
        vec = np.random.default_rng(0).standard_normal((30_000, DIM)).astype(np.float32)
        for s0 in range(0, 30_000, 10_000):
            c.insert("c", [{"id": i, "vector": vec[i]} for i in range(s0, s0 + 10_000)])
        c.flush("c")
        dask = c._engine.datanodes.client  # the embedded cluster, worker processes
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            for addr, keys in dask.processing().items():
                if any(str(k).startswith("gpuvec-build-index-") for k in keys):
                    victim = addr
            time.sleep(0.05)
        assert victim is not None, "the build task never started"
        pid = dask.run(os.getpid, workers=[victim])[victim]
        assert pid != os.getpid()  # a real worker process
        os.kill(pid, signal.SIGKILL)
        hits = c.search("c", data=vec[:3], limit=1)  # brute force answers meanwhile
        assert [h[0]["id"] for h in hits] == [0, 1, 2]
        assert c._engine.wait_for_indexes("c", timeout=240)
        info = c.describe_index("c", "vector")
        assert info["indexed_segments"] == 1 and "HNSW32" in info["backend"], info
        records = c._engine.catalog.segment_indexes(c._engine.get("c").meta.id)
        assert len(records) == 1  # registered once
        assert c._engine.indexer.failed == {}
        hits = c.search("c", data=vec[:3], limit=1, search_params={"params": {"ef": 64}})
        assert [h[0]["id"] for h in hits] == [0, 1, 2]
    finally:
        c.close()


def test_close_mid_build_keeps_finished_builds_and_finishes_the_rest(tmp_path: Path) -> None:
    """Closing the client while a build runs loses no finished build and redoes none: on
    reopen the finished segment keeps its index record (the same file), and the interrupted
    one is built once."""
    cfg = Config(seal_idle_s=3600, dashboard_address="", index_min_rows=100)
    vec = np.random.default_rng(3).standard_normal((33_000, DIM)).astype(np.float32)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index(
            "vector", index_type="HNSW", metric_type="L2", params={"M": 32, "efConstruction": 200}
        )
        c.create_collection("c", dimension=DIM, index_params=idx)
        c.insert("c", [{"id": i, "vector": vec[i]} for i in range(3_000)])
        c.flush("c")
        c.wait_for_index("c", timeout=120)
        cid = c._engine.get("c").meta.id
        first = dict(c._engine.catalog.segment_indexes(cid))
        assert len(first) == 1
        for s0 in range(3_000, 33_000, 10_000):
            c.insert("c", [{"id": i, "vector": vec[i]} for i in range(s0, s0 + 10_000)])
        c.flush("c")
        deadline = time.monotonic() + 60
        while c._engine.indexer.pending() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c._engine.indexer.pending() > 0, "the second build never started"
    finally:
        c.close()  # mid-build
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        c.wait_for_index("c", timeout=240)
        assert c.describe_index("c", "vector")["state"] == "Finished"
        records = c._engine.catalog.segment_indexes(c._engine.get("c").meta.id)
        assert len(records) == 2
        for key, rec in first.items():
            assert records[key] == rec, "a finished build was redone or lost"
        rebuilt = [
            b for b in c._engine.indexer.recent() if b.get("segment") in {k[0] for k in first}
        ]
        assert rebuilt == [], rebuilt
        hits = c.search("c", data=vec[:3], limit=1, search_params={"params": {"ef": 64}})
        assert [h[0]["id"] for h in hits] == [0, 1, 2]
    finally:
        c.close()
