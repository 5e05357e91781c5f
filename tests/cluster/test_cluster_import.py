"""Bulk import through the cluster's proxy (pymilvus ``utility.do_bulk_insert`` and friends):
the active coordinator plans and records the job, the Dask data node writes and indexes
its segments, one guarded transaction commits them, the query nodes serve them; and a job
whose coordinator is ``kill -9``-ed before the commit is resumed by the next active
coordinator and imports its rows exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import leader, log_tails, pid_index
from pymilvus import BulkInsertState, DataType, MilvusClient, connections, utility

from gpuvec.cluster.launcher import LocalCluster

pytestmark = [pytest.mark.etcd, pytest.mark.kafka, pytest.mark.slow]
DIM, N = 8, 3000


def _parquet(path: Path, first: int, vec: np.ndarray) -> Path:
    n = len(vec)
    ids = np.arange(first, first + n, dtype=np.int64)
    table = pa.table({"id": ids,
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
                      "tag": pa.array([f"t{i % 7}" for i in range(n)])})  # fmt: skip
    pq.write_table(table, path, row_group_size=1000)
    return path


@pytest.fixture
def alias(cluster: LocalCluster, milvus: MilvusClient) -> Iterator[str]:
    name = f"cimp-{uuid.uuid4().hex[:8]}"
    connections.connect(alias=name, uri=cluster.uri)
    try:
        yield name
    finally:
        connections.disconnect(name)


def _wait(task: int, alias: str, cluster: LocalCluster, timeout: float = 180) -> BulkInsertState:
    deadline = time.monotonic() + timeout
    while True:
        state = utility.get_bulk_insert_state(task, using=alias)
        if state.state in (BulkInsertState.ImportCompleted, BulkInsertState.ImportFailed):
            return state
        assert time.monotonic() < deadline, f"{state}\n{log_tails(cluster)}"
        time.sleep(0.2)


def _create(milvus: MilvusClient, name: str) -> None:
    schema = milvus.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = milvus.prepare_index_params()
    index.add_index("vector", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 16})
    milvus.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def test_bulk_insert_through_the_proxy(
    cluster: LocalCluster, milvus: MilvusClient, alias: str, tmp_path: Path
) -> None:
    _create(milvus, "cimp")
    vec = np.random.default_rng(3).random((N, DIM), dtype=np.float32)
    path = _parquet(tmp_path / "rows.parquet", 0, vec)
    task = utility.do_bulk_insert("cimp", files=[str(path)], using=alias)
    done = _wait(task, alias, cluster)
    assert done.state == BulkInsertState.ImportCompleted, done.failed_reason
    assert done.row_count == N and done.progress == 100
    # Completed through the proxy means served: every row is there at once
    res = milvus.query("cimp", filter="", output_fields=["count(*)"])
    assert res[0]["count(*)"] == N
    hits = milvus.search("cimp", data=[vec[42].tolist()], limit=1, output_fields=["tag"])
    assert hits[0][0]["id"] == 42 and hits[0][0]["entity"]["tag"] == "t0"
    info = milvus.describe_index("cimp", "vector")
    assert info["index_type"] == "IVF_FLAT" and int(info["indexed_rows"]) == N
    tasks = utility.list_bulk_insert_tasks(collection_name="cimp", using=alias)
    assert [t.task_id for t in tasks] == [task]
    with pytest.raises(Exception, match=r"nope\.parquet"):  # checked before anything is written
        utility.do_bulk_insert("cimp", files=[str(tmp_path / "nope.parquet")], using=alias)


def test_import_resumed_by_the_next_coordinator(
    cluster: LocalCluster, milvus: MilvusClient, alias: str, tmp_path: Path
) -> None:
    """The active coordinator pauses before the commit and is killed; the one that takes
    over runs the job from its record: the rows arrive exactly once."""
    _create(milvus, "cres")
    vec = np.random.default_rng(4).random((N, DIM), dtype=np.float32)
    path = _parquet(tmp_path / "rows.parquet", 10_000, vec)
    marker = tmp_path / "fault"
    saved = dict(cluster.env)
    # make a coordinator that pauses before commits the only one left
    cluster.env.update(GPUVEC_FAULT="import.before-commit", GPUVEC_FAULT_MARKER=str(marker))
    try:
        faulty = cluster.start("coordinator")
    finally:
        cluster.env.clear()
        cluster.env.update(saved)
    for i, p in enumerate(cluster.processes["coordinator"]):
        if i != faulty and not p.get("killed"):
            cluster.kill("coordinator", i)
    deadline = time.monotonic() + 60
    while leader(cluster).get("pid") != cluster.processes["coordinator"][faulty]["pid"]:
        assert time.monotonic() < deadline, log_tails(cluster)
        time.sleep(0.2)
    task = utility.do_bulk_insert("cres", files=[str(path)], using=alias)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, log_tails(cluster)
        time.sleep(0.1)
    state = utility.get_bulk_insert_state(task, using=alias)
    assert state.state != BulkInsertState.ImportCompleted
    assert milvus.query("cres", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
    cluster.kill("coordinator", pid_index(cluster, "coordinator", leader(cluster)["pid"]))
    cluster.start("coordinator")  # the next active coordinator resumes the job
    done = _wait(task, alias, cluster)
    assert done.state == BulkInsertState.ImportCompleted, done.failed_reason
    assert milvus.query("cres", filter="", output_fields=["count(*)"])[0]["count(*)"] == N
    got = milvus.query("cres", filter="id in [10000, 12999]", output_fields=["tag"])
    assert sorted(r["id"] for r in got) == [10_000, 12_999]
    cluster.start("coordinator")  # the fixture's standby again
