"""Bulk import on a real Dask deployment: a ``dask scheduler`` process and two ``dask
worker`` processes (each its own nanny, as an operator starts them), which the embedded
runtime reaches through ``scheduler_address``. One worker is ``kill -9``-ed (with its nanny)
while chunks run on both: the job still completes with every row exactly once. Then the
CLI imports with ``--scheduler`` on the same deployment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bulk_import import N, config, count, make_collection, vectors, write_parquet

from gpuvec import MilvusClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - kept open for the process's life
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                     "127.0.0.1", "--port", str(port), "--no-dashboard"],
                    tmp_path / "scheduler.log", env)]  # fmt: skip
    # every chunk task pauses 1 s in the workers, so both are busy when one is killed
    wenv = env | {"GPUVEC_FAULT": "import.chunk", "GPUVEC_FAULT_PAUSE_S": "1"}
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
              "--no-dashboard", "--death-timeout", "60"]  # fmt: skip
    workers = [_start([*worker, "--name", f"w{i}"], tmp_path / f"worker{i}.log", wenv)
               for i in range(2)]  # fmt: skip
    procs += workers
    try:
        from distributed import Client

        deadline = time.monotonic() + 90
        with Client(address, timeout="30s") as c:
            while len(c.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, (tmp_path / "worker0.log").read_text()[-2000:]
                time.sleep(0.2)
        yield address, workers
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def test_import_on_scheduler_and_workers_one_killed(deployment: tuple, tmp_path: Path) -> None:
    address, workers = deployment
    path = write_parquet(tmp_path / "data.parquet", vectors())
    c = MilvusClient(str(tmp_path / "db"), config=config(scheduler_address=address))
    try:
        make_collection(c)
        job = c.do_bulk_insert("docs", [str(path)])
        deadline = time.monotonic() + 60
        while c.get_bulk_insert_state(job)["state"] == "Pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # chunk tasks are running on both workers
        os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its nanny: gone for good
        done = c.wait_for_bulk_insert(job, timeout=300)
        assert done["state"] == "Completed" and done["row_count"] == N
        assert count(c) == N
        ids = [r["id"] for r in c.query("docs", filter="id >= 0", output_fields=["id"])]
        assert sorted(ids) == list(range(N))  # exactly once
        assert c.describe_index("docs", "vector")["state"] == "Finished"
    finally:
        c.close()
    out = subprocess.run(
        [sys.executable, "-m", "gpuvec", "import", "--data", str(tmp_path / "db2"),
         "--collection", "docs", "--create", "--metric", "L2", "--scheduler", address,
         str(path)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "GPUVEC_DASHBOARD_ADDRESS": "", "GPUVEC_INDEX_MIN_ROWS": "500"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{N:,} rows" in out.stdout, out.stdout
