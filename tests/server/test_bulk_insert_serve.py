"""pymilvus's bulk-insert calls (``utility.do_bulk_insert``, ``get_bulk_insert_state``,
``list_bulk_insert_tasks``) against ``gpuvec serve``: a Parquet file and a NumPy column group
import, and a failing file's reason comes back in ``infos``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pymilvus import BulkInsertState, MilvusClient, connections, utility

from gpuvec.server.app import Server

DIM, N = 4, 2500


def _wait(task: int, alias: str) -> BulkInsertState:
    deadline = time.monotonic() + 300
    while True:
        state = utility.get_bulk_insert_state(task, using=alias)
        if state.state in (BulkInsertState.ImportCompleted, BulkInsertState.ImportFailed):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_pymilvus_bulk_insert_calls(server: Server, milvus: MilvusClient, tmp_path: Path) -> None:
    milvus.create_collection("bulk", dimension=DIM, metric_type="L2", auto_id=False)
    vec = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": np.arange(N, dtype=np.int64),
                             "vector": pa.FixedSizeListArray.from_arrays(
                                 pa.array(vec.ravel()), DIM)}), path)  # fmt: skip
    group = tmp_path / "cols"
    group.mkdir()
    np.save(group / "id.npy", np.arange(N, 2 * N, dtype=np.int64))
    np.save(group / "vector.npy", vec)
    alias = f"bulk-{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, uri=f"http://{server.address}")
    try:
        first = utility.do_bulk_insert("bulk", files=[str(path)], using=alias)
        done = _wait(first, alias)
        assert done.state == BulkInsertState.ImportCompleted and done.row_count == N
        assert done.state_name == "Completed" and done.progress == 100
        second = utility.do_bulk_insert(
            "bulk", files=[str(group / "id.npy"), str(group / "vector.npy")], using=alias
        )
        assert _wait(second, alias).row_count == N
        tasks = utility.list_bulk_insert_tasks(collection_name="bulk", using=alias)
        assert {t.task_id for t in tasks} == {first, second}
        missing = tmp_path / "nope.parquet"
        try:
            utility.do_bulk_insert("bulk", files=[str(missing)], using=alias)
            raise AssertionError("a missing file was accepted")
        except Exception as e:
            assert "nope.parquet" in str(e)
    finally:
        connections.disconnect(alias)
    res = milvus.query("bulk", output_fields=["count(*)"])
    assert res[0]["count(*)"] == 2 * N
    hit = milvus.search("bulk", data=[vec[7].tolist()], limit=1)
    assert hit[0][0]["id"] in (7, N + 7)
