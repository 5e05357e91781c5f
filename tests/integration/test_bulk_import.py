"""Bulk import end to end on the embedded runtime: Parquet and NumPy sources become sealed,
indexed, searchable segments all at once; bad input fails before anything is written or
names file, row and field; an idempotency key never imports twice; a process killed mid-job
resumes on reopen and imports exactly once, leaving no orphan objects; Dask worker
processes (one killed mid-import) finish the job exactly once; the CLI imports a file with
one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import GpuvecError, ImportJobError
from gpuvec.observability.pageformat import import_status
from gpuvec.observability.snapshot import snapshot
from gpuvec.schema import DataType
from gpuvec.storage.objects import handoff

DIM, N = 8, 5000
ROOT = Path(__file__).resolve().parents[2]


def config(**kw: object) -> Config:
    base = {"dashboard_address": "", "index_min_rows": 500, "import_chunk_rows": 1000}
    return Config(**(base | kw))  # type: ignore[arg-type]


def vectors(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def write_parquet(path: Path, vec: np.ndarray, start: int = 0) -> Path:
    n = len(vec)
    table = pa.table({
        "id": np.arange(start, start + n, dtype=np.int64),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
        "n": np.arange(n, dtype=np.int64) % 97,
        "tag": [f"t{i % 7}" for i in range(n)],
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=1000)
    return path


def make_collection(client: MilvusClient, name: str = "docs", auto_id: bool = False) -> None:
    schema = client.create_schema(auto_id=auto_id)
    schema.add_field("id", DataType.INT64, is_primary=True, auto_id=auto_id)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    idx = client.prepare_index_params()
    idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
    client.create_collection(name, schema=schema, index_params=idx, num_shards=2)


def count(client: MilvusClient, name: str = "docs") -> int:
    return int(client.query(name, output_fields=["count(*)"])[0]["count(*)"])


def segment_dirs(root: Path) -> set[str]:
    """``<cid>/segments/<sid>`` of every segment that has objects in the store."""
    base = root / "objects" / "collections"
    found = base.glob("*/segments/*") if base.exists() else []
    return {str(p.relative_to(base)) for p in found
            if p.name.isdigit() and any(f.is_file() for f in p.rglob("*"))}  # fmt: skip


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MilvusClient]:
    c = MilvusClient(str(tmp_path / "db"), config=config())
    try:
        yield c
    finally:
        c.close()


def test_parquet_import_is_atomic_indexed_and_searchable(
    client: MilvusClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[str] = []
    real_take = handoff.take

    def spy(store: object, path: str) -> object:
        got = real_take(store, path)
        if got is not None:
            taken.append(path)
        return got

    monkeypatch.setattr(handoff, "take", spy)
    make_collection(client)
    vec = vectors()
    path = write_parquet(tmp_path / "data.parquet", vec)
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # the rows appear all at once: never a part of them
        while not stop.is_set():
            seen.append(count(client))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        state = client.bulk_import("docs", [str(path)], timeout=300)
    finally:
        stop.set()
        watcher.join()
    assert set(seen) <= {0, N}, sorted(set(seen))
    assert state["state"] == "Completed" and state["row_count"] == N
    assert len(state["segments"]) == 10  # 5 chunks x 2 shards
    # the in-process workers handed every segment to the loader: none was read back
    assert len(set(taken)) == 10, taken
    assert count(client) == N
    info = client.describe_index("docs", "vector")
    assert info["state"] == "Finished" and info["indexed_rows"] == N
    hits = client.search("docs", data=[vec[1234]], limit=1, output_fields=["n", "tag"])
    assert hits[0][0]["id"] == 1234 and hits[0][0]["entity"] == {"n": 1234 % 97, "tag": "t2"}
    assert client.list_bulk_insert_tasks(collection_name="docs")[-1]["job_id"] == state["job_id"]
    jobs = snapshot([client._engine])["imports"]  # the dashboard page's import table
    top = jobs[0]
    assert (top["job"], top["state"], top["progress"]) == (state["job_id"], "Completed", 1.0)
    assert import_status(jobs[0]).startswith(f"#{state['job_id']} Completed 100% (5,000")


def test_npy_group_auto_id_and_idempotency_key(client: MilvusClient, tmp_path: Path) -> None:
    make_collection(client, auto_id=True)
    group = tmp_path / "npy"
    group.mkdir()
    vec = vectors(3000, seed=1)
    np.save(group / "vector.npy", vec)
    np.save(group / "n.npy", np.arange(3000, dtype=np.int64))
    np.save(group / "tag.npy", np.array([f"x{i % 3}" for i in range(3000)]))
    first = client.do_bulk_insert("docs", [str(group)], idempotency_key="nightly-1")
    again = client.do_bulk_insert("docs", [str(group)], idempotency_key="nightly-1")
    assert again == first
    client.wait_for_bulk_insert(first, timeout=300)
    assert client.do_bulk_insert("docs", [str(group)], idempotency_key="nightly-1") == first
    assert count(client) == 3000
    rows = client.query("docs", filter="n < 3000", output_fields=["id", "n"])
    assert len({r["id"] for r in rows}) == 3000  # auto ids, unique


def test_bad_input_is_refused_before_writing(client: MilvusClient, tmp_path: Path) -> None:
    make_collection(client)
    with pytest.raises(GpuvecError, match=r"missing\.parquet"):
        client.do_bulk_insert("docs", [str(tmp_path / "missing.parquet")])
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"id": [1], "n": [1], "tag": ["a"],
                             "vector": pa.FixedSizeListArray.from_arrays(
                                 pa.array(np.zeros(4, np.float32)), 4)}), wrong)  # fmt: skip
    with pytest.raises(GpuvecError, match=r"(?s)wrong.parquet.*(dim|dimension)"):
        client.do_bulk_insert("docs", [str(wrong)])
    assert client.list_bulk_insert_tasks() == []
    assert segment_dirs(tmp_path / "db") == set()


def test_a_bad_row_fails_the_job_naming_file_row_and_field(
    client: MilvusClient, tmp_path: Path
) -> None:
    make_collection(client)
    vec = vectors()
    vec[3456, 2] = np.nan
    path = write_parquet(tmp_path / "nan.parquet", vec)
    job = client.do_bulk_insert("docs", [str(path)])
    with pytest.raises(ImportJobError) as err:
        client.wait_for_bulk_insert(job, timeout=300)
    assert err.value.code == 2100
    text = str(err.value)
    assert "nan.parquet" in text and "3456" in text and "vector" in text, text
    assert client.get_bulk_insert_state(job)["state"] == "Failed"
    assert count(client) == 0
    deadline = time.monotonic() + 10
    while segment_dirs(tmp_path / "db") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert segment_dirs(tmp_path / "db") == set(), "a failed job left segment objects"
    state = client.bulk_import("docs", [str(path)], on_error="skip", timeout=300)
    assert (state["row_count"], state["rejected_rows"]) == (N - 1, 1)
    rejected = list((tmp_path / "db" / "objects" / "imports" / str(state["job_id"])).glob("*"))
    assert rejected and "3456" in rejected[0].read_text()
    assert count(client) == N - 1


IMPORT_SCRIPT = """
import sys
from gpuvec import MilvusClient
from gpuvec.config import Config
sys.path.insert(0, {tests!r})
from test_bulk_import import config, make_collection
c = MilvusClient({db!r}, config=config())
make_collection(c)
job = c.do_bulk_insert("docs", [{path!r}])
print("JOB", job, flush=True)
c.wait_for_bulk_insert(job, timeout=300)
print("DONE", flush=True)
"""


def test_kill_9_before_commit_resumes_and_imports_exactly_once(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.parquet", vectors())
    db, marker = tmp_path / "db", tmp_path / "parked"
    env = {**os.environ, "GPUVEC_FAULT": "import.before-commit",
           "GPUVEC_FAULT_MARKER": str(marker), "GPUVEC_FAULT_PAUSE_S": "120"}  # fmt: skip
    script = IMPORT_SCRIPT.format(tests=str(Path(__file__).parent), db=str(db), path=str(path))
    argv = [sys.executable, "-c", textwrap.dedent(script)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.1)
        written = segment_dirs(db)
        assert written, "the job was parked before writing anything"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    c = MilvusClient(str(db), config=config())
    try:
        (job,) = c.list_bulk_insert_tasks()
        assert job["state"] != "Completed"
        done = c.wait_for_bulk_insert(job["job_id"], timeout=300)  # resumed at open
        assert done["row_count"] == N and count(c) == N
        committed = {f"{cid}/segments/{s}" for cid in [c.describe_collection("docs")[
            "collection_id"]] for s in done["segments"]}  # fmt: skip
        assert segment_dirs(db) == committed, "orphan or missing segment objects"
    finally:
        c.close()


def test_dask_worker_processes_one_killed_finish_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every chunk task sleeps 1 s in the worker programs (they read GPUVEC_FAULT at start)
    monkeypatch.setenv("GPUVEC_FAULT", "import.chunk")
    monkeypatch.setenv("GPUVEC_FAULT_PAUSE_S", "1")
    c = MilvusClient(str(tmp_path / "db"),
                     config=config(datanode_processes=True, datanode_workers=2))  # fmt: skip
    try:
        make_collection(c)
        path = write_parquet(tmp_path / "data.parquet", vectors())
        job = c.do_bulk_insert("docs", [str(path)])
        dask = c._engine.datanodes.client
        deadline = time.monotonic() + 60
        while c.get_bulk_insert_state(job)["state"] == "Pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # tasks are running on both workers
        pids = dask.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        done = c.wait_for_bulk_insert(job, timeout=300)
        assert done["row_count"] == N and count(c) == N
        ids = [r["id"] for r in c.query("docs", filter="id >= 0", output_fields=["id"])]
        assert sorted(ids) == list(range(N))  # exactly once
    finally:
        c.close()


def test_cli_imports_a_parquet_file_with_one_command(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.parquet", vectors())
    db = tmp_path / "db"
    out = subprocess.run(
        [sys.executable, "-m", "gpuvec", "import", "--data", str(db), "--collection", "docs",
         "--create", "--metric", "L2", str(path)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "GPUVEC_DASHBOARD_ADDRESS": "", "GPUVEC_INDEX_MIN_ROWS": "500"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "created collection 'docs'" in out.stdout and f"{N:,} rows" in out.stdout, out.stdout
    c = MilvusClient(str(db), config=config())
    try:
        assert count(c) == N
        assert c.describe_index("docs", "vector")["state"] == "Finished"
    finally:
        c.close()
    bad = subprocess.run([sys.executable, "-m", "gpuvec", "import", "--data", str(db),
                          "--collection", "nope", str(path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "no collection 'nope'" in bad.stderr


def test_skipped_rows_keep_dynamic_fields(client: MilvusClient, tmp_path: Path) -> None:
    client.create_collection("dyn", dimension=DIM, metric_type="L2")  # dynamic field on
    vec = vectors(1200, seed=3)
    vec[7, 0] = np.inf
    table = pa.table({"id": np.arange(1200, dtype=np.int64),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
                      "color": [f"c{i % 5}" for i in range(1200)]})  # fmt: skip
    pq.write_table(table, tmp_path / "dyn.parquet", row_group_size=1000)
    state = client.bulk_import("dyn", [str(tmp_path / "dyn.parquet")], on_error="skip",
                               timeout=300)  # fmt: skip
    assert (state["row_count"], state["rejected_rows"]) == (1199, 1)
    rows = client.query("dyn", filter='color == "c3"', output_fields=["color"])
    assert len(rows) == 240 and all(r["color"] == "c3" for r in rows)
    assert client.query("dyn", filter="id == 7", output_fields=["id"]) == []
