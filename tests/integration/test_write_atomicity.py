"""The "logged but not yet acknowledged" window of a write, by fault injection.

A user's unguarded script (``python -c``) inserts one large batch — split into several WAL
records that are appended as one batch — into the embedded engine; the process was started
with a fault point armed (:mod:`gpuvec.faults`), so it parks there, and the test
``kill -9``-s it. After a restart the batch must be wholly present or wholly absent, never
partial: parked after the WAL append (before apply and acknowledgement) it is all there;
parked with half the batch's bytes written it is all gone (the torn tail is dropped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config

BASE, BATCH, DIM = 100, 20_000, 64  # 20k × 64 float32 ≈ 5 MB: two WAL records
CONFIG = Config(dashboard_address="", datanode_processes=False, seal_idle_s=3600)

SETUP = f"""
import numpy as np
from gpuvec import MilvusClient
c = MilvusClient(__DIR__)
c.create_collection("w", dimension={DIM}, consistency_level="Strong")
v = np.random.default_rng(0).standard_normal(({BASE}, {DIM})).astype("float32")
c.insert("w", [{{"id": i, "vector": v[i]}} for i in range({BASE})])
c.close()
"""

INSERT = f"""
import numpy as np
from gpuvec import MilvusClient
c = MilvusClient(__DIR__)
v = np.random.default_rng(1).standard_normal(({BATCH}, {DIM})).astype("float32")
c.insert("w", [{{"id": {BASE} + i, "vector": v[i]}} for i in range({BATCH})])
print("ACKNOWLEDGED", flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, GPUVEC_DASHBOARD_ADDRESS="", GPUVEC_DATANODE_PROCESSES="0", **extra)


def _crash_at(point: str, data: Path, tmp: Path) -> str:
    """Run the insert script with ``point`` armed; kill -9 it once it parks there."""
    marker = tmp / f"{point}.reached"
    log = tmp / f"{point}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", INSERT.replace("__DIR__", repr(str(data)))],
            env=_env(GPUVEC_FAULT=point, GPUVEC_FAULT_MARKER=str(marker)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never reached {point}: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return log.read_text(errors="replace")


@pytest.mark.parametrize(
    ("point", "present"),
    [("shard.after-wal-append", True), ("wal.torn-batch", False)],
)
def test_a_batch_killed_before_its_ack_is_all_or_nothing(
    tmp_path: Path, point: str, present: bool
) -> None:
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-c", SETUP.replace("__DIR__", repr(str(data)))],
        env=_env(),
        check=True,
        timeout=120,
    )
    out = _crash_at(point, data, tmp_path)
    assert "ACKNOWLEDGED" not in out, "the kill must land before the acknowledgement"
    client = MilvusClient(str(data), config=CONFIG)
    try:
        got = client.query("w", filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"]
        batch = client.query("w", filter=f"id >= {BASE}", output_fields=["count(*)"])
        assert got in (BASE, BASE + BATCH), f"partial batch after {point}: {got} rows"
        assert got == (BASE + BATCH if present else BASE)
        assert batch[0]["count(*)"] == (BATCH if present else 0)
        if present:  # the replayed rows are the written ones, not garbage
            v = np.random.default_rng(1).standard_normal((BATCH, DIM)).astype(np.float32)
            row = client.get("w", ids=[BASE + 123])[0]
            np.testing.assert_allclose(row["vector"], v[123], rtol=1e-6)
        client.insert("w", [{"id": 10**9, "vector": [0.0] * DIM}])  # writable again
        assert client.get("w", ids=[10**9])
    finally:
        client.close()
