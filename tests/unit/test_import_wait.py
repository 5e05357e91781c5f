"""Waiting on a bulk-import job (:meth:`gpuvec.coord.imports.ImportJobs.state_after`): a
waiter is woken by the next change of the job's record, gets the record unchanged after
its timeout when nothing changed, and is never kept waiting on a finished job; the
client's ``wait_for_bulk_insert`` reports each state it sees."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from gpuvec import MilvusClient
from gpuvec.config import Config


def test_state_after_wakes_on_change_and_times_out_without_one(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address=""))
    try:
        jobs = c._engine.imports  # type: ignore[attr-defined]
        job = {"id": 424242, "state": "Importing", "progress": 10, "collection": "x"}
        jobs._put(job)
        first = jobs.state(424242)
        t0 = time.monotonic()
        same = jobs.state_after(424242, first["updated"], 0.3)
        assert same == first and time.monotonic() - t0 >= 0.29  # nothing changed

        def later() -> None:
            time.sleep(0.2)
            jobs._put({**job, "progress": 50})

        threading.Thread(target=later, daemon=True).start()
        got = jobs.state_after(424242, first["updated"], 30.0)
        assert got["progress"] == 50 and got["updated"] != first["updated"]
        jobs._put({**job, "state": "Completed", "progress": 100})
        done = jobs.state(424242)
        t0 = time.monotonic()
        assert jobs.state_after(424242, done["updated"], 30.0)["state"] == "Completed"
        assert time.monotonic() - t0 < 10  # a finished job is answered at once
    finally:
        c.close()


def test_wait_for_bulk_insert_reports_each_state(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address=""))
    try:
        c.create_collection("c", dimension=4, auto_id=False)
        folder = tmp_path / "npy"
        folder.mkdir()
        np.save(folder / "id.npy", np.arange(300, dtype=np.int64))
        np.save(folder / "vector.npy", np.random.default_rng(0).random((300, 4), np.float32))
        seen: list[str] = []
        job = c.do_bulk_insert("c", [str(folder)])
        final = c.wait_for_bulk_insert(job, timeout=120,
                                       progress=lambda s: seen.append(s["state"]))  # fmt: skip
        assert final["state"] == "Completed" and final["row_count"] == 300
        assert seen[-1] == "Completed" and seen.count("Completed") == 1
        assert c.query("c", output_fields=["count(*)"])[0]["count(*)"] == 300
    finally:
        c.close()
