"""Compaction as Dask data-node tasks: small sealed segments merge, deleted rows are
dropped up to the horizon, reads (at the current and at older timestamps) see the same
rows before and after, old objects are collected, and indexes are rebuilt."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.schema import DataType

DIM = 8


def cfg(**kw: object) -> Config:
    base = {"seal_idle_s": 3600, "datanode_processes": False, "dashboard_address": "",
            "index_min_rows": 100, "compaction_interval_s": 3600}  # fmt: skip
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def fill(c: MilvusClient, segments: int, per: int, with_index: bool = False) -> np.ndarray:
    s = MilvusClient.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("tag", DataType.VARCHAR, max_length=16)
    idx = c.prepare_index_params()
    if with_index:
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
    else:
        idx.add_index("vector", index_type="FLAT", metric_type="L2")
    c.create_collection("c", schema=s, index_params=idx)
    vec = np.random.default_rng(0).standard_normal((segments * per, DIM)).astype(np.float32)
    for g in range(segments):
        rows = range(g * per, (g + 1) * per)
        c.insert("c", [{"id": i, "vector": vec[i], "tag": f"t{i}"} for i in rows])
        c.flush("c")
    return vec


def wait_job(c: MilvusClient, job: int) -> str:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        state = c.get_compaction_state(job)
        if state != "Executing":
            return state
        time.sleep(0.05)
    return "timeout"


def snapshot(c: MilvusClient, q: np.ndarray) -> tuple:
    hits = c.search("c", data=q, limit=7, output_fields=["tag"])
    rows = c.query("c", filter="id >= 0", output_fields=["tag"])
    return [[(h["id"], round(h["distance"], 4), h["entity"]["tag"]) for h in x] for x in hits], rows


def test_manual_compaction_merges_drops_and_collects(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=cfg(compaction_retention_s=0))
    try:
        fill(c, segments=4, per=300)
        c.delete("c", filter="id % 10 == 0")
        c.flush("c")  # deletes into a delta log
        q = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
        before = snapshot(c, q)
        seg_dirs = list((tmp_path / "db" / "objects" / "collections").rglob("v1"))
        assert c.get_collection_stats("c")["sealed_segments"] == 4
        job = c.compact("c")
        assert wait_job(c, job) == "Completed"
        stats = c.get_collection_stats("c")
        assert stats["sealed_segments"] == 1 and stats["sealed_rows"] == 1080  # dropped
        assert snapshot(c, q) == before
        assert not any(d.exists() for d in seg_dirs)  # old objects collected
        assert c.get_compaction_state(123) == "UndefiedState"
    finally:
        c.close()
    c = MilvusClient(str(tmp_path / "db"), config=cfg())
    try:  # reopened from meta + Zarr: the compacted segment serves the same results
        assert snapshot(c, q) == before
    finally:
        c.close()


def test_older_reads_see_the_same_rows(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=cfg(compaction_retention_s=3600))
    try:
        fill(c, segments=3, per=200)
        eng = c._engine
        coll = eng.get("c")
        old_ts = eng.tso.allocate()  # every row inserted, none deleted yet
        c.delete("c", filter="id < 50")
        c.flush("c")

        def visible(ts: int) -> list[int]:
            found = eng.match(coll, None, None, ts)
            return sorted(int(k) for seg, rows in found for k in seg.pks[rows])

        then, now = visible(old_ts), visible(eng.tso.allocate())
        assert len(then) == 600 and len(now) == 550
        assert wait_job(c, c.compact("c")) == "Completed"
        assert c.get_collection_stats("c")["sealed_rows"] == 600  # kept: inside retention
        assert visible(old_ts) == then and visible(eng.tso.allocate()) == now
    finally:
        c.close()


def test_automatic_policy_and_index_rebuild(tmp_path: Path) -> None:
    c = MilvusClient(
        str(tmp_path / "db"), config=cfg(compaction_interval_s=0.2, compaction_small_rows=1000)
    )
    try:
        vec = fill(c, segments=3, per=200, with_index=True)
        end = time.monotonic() + 60
        while c.get_collection_stats("c")["sealed_segments"] != 1 and time.monotonic() < end:
            time.sleep(0.1)
        assert c.get_collection_stats("c")["sealed_segments"] == 1
        assert c._engine.wait_for_indexes("c", timeout=60)
        info = c.describe_index("c", "vector")
        assert info["indexed_segments"] == 1 and "HNSW" in info["backend"]
        res = c.search("c", data=vec[:5], limit=1)
        assert [r[0]["id"] for r in res] == [0, 1, 2, 3, 4]
    finally:
        c.close()


def test_clustering_compaction_is_refused(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=cfg())
    try:
        fill(c, segments=1, per=10)
        with pytest.raises(Exception, match="clustering"):
            c.compact("c", is_clustering=True)
        assert wait_job(c, c.compact("c")) == "Completed"  # nothing to do
    finally:
        c.close()


def test_a_handful_of_deletes_keeps_the_segment_and_its_index(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=cfg(compaction_retention_s=0))
    try:
        fill(c, segments=1, per=400, with_index=True)
        assert c._engine.wait_for_indexes("c", timeout=60)
        (before,) = c.list_persistent_segments("c")
        c.delete("c", ids=[1, 2, 3])  # under 1 %: not worth a rewrite (Milvus's threshold)
        c.flush("c")
        assert wait_job(c, c.compact("c")) == "Completed"
        (after,) = c.list_persistent_segments("c")
        assert after.segment_id == before.segment_id
        assert c.describe_index("c", "vector")["indexed_segments"] == 1
        c.delete("c", filter="id < 150")  # now past the ratio: rewritten
        c.flush("c")
        assert wait_job(c, c.compact("c")) == "Completed"
        (again,) = c.list_persistent_segments("c")
        assert again.segment_id != before.segment_id and again.num_rows == 250
    finally:
        c.close()


def test_a_merged_segment_is_swapped_in_already_indexed(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=cfg(compaction_retention_s=0))
    try:
        vec = fill(c, segments=2, per=300, with_index=True)
        assert c._engine.wait_for_indexes("c", timeout=60)
        seen: list[tuple[int, int]] = []
        real = c._engine.query.replace

        def replace(cid: int, old: list[int], new: object) -> None:
            indexed = getattr(new, "indexes", {})
            seen.append((len(old), len(indexed)))  # the new segment's indexes at the swap
            real(cid, old, new)  # type: ignore[arg-type]

        c._engine.query.replace = replace  # type: ignore[method-assign]
        assert wait_job(c, c.compact("c")) == "Completed"
        assert seen == [(2, 1)]  # two segments out, one in, with its HNSW index attached
        info = c.describe_index("c", "vector")
        assert info["sealed_segments"] == 1 and info["indexed_segments"] == 1
        assert info["state"] == "Finished" and "HNSW" in info["backend"]
        res = c.search("c", data=vec[:3], limit=1)
        assert [r[0]["id"] for r in res] == [0, 1, 2]
    finally:
        c.close()
