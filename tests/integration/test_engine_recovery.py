"""Durability of the embedded engine: a process inserting and deleting is killed with
SIGKILL; reopening its directory replays the WAL from the checkpoint and serves every
acknowledged write, and nothing that was acknowledged as deleted."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from gpuvec import MilvusClient

_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from gpuvec import MilvusClient
    from gpuvec.config import Config
    c = MilvusClient(sys.argv[1], config=Config(seal_idle_s=3600))
    c.create_collection("c", dimension=8, metric_type="L2", num_shards=2)
    rng = np.random.default_rng(0)
    batch = 0
    while True:
        ids = list(range(batch * 20, batch * 20 + 20))
        rows = [{"id": i, "vector": np.full(8, i, np.float32), "n": i} for i in ids]
        c.insert("c", rows)
        print("ins", ids[0], len(ids), flush=True)
        if batch % 3 == 2:
            gone = [int(x) for x in rng.choice(batch * 20, 5, replace=False)]
            c.delete("c", ids=gone)
            print("del", *gone, flush=True)
        if batch % 10 == 9:
            c.flush("c")
            print("flush", flush=True)
        batch += 1
    """
)


def test_kill_9_mid_stream_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "db")], stdout=subprocess.PIPE, text=True
    )
    inserted: set[int] = set()
    deleted: set[int] = set()
    flushes = 0
    assert child.stdout is not None
    for line in child.stdout:
        kind, *args = line.split()
        if kind == "ins":
            first, n = int(args[0]), int(args[1])
            inserted.update(range(first, first + n))
        elif kind == "del":
            deleted.update(int(a) for a in args)
        else:
            flushes += 1
        if flushes >= 2 and len(inserted) >= 500:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()

    c = MilvusClient(str(tmp_path / "db"))
    try:
        alive = sorted(inserted - deleted)
        got = c.get("c", ids=alive, output_fields=["n"])
        assert sorted(r["id"] for r in got) == alive
        assert all(r["n"] == r["id"] for r in got)
        assert c.get("c", ids=sorted(deleted)) == [], "acknowledged deletes stay deleted"
        (hits,) = c.search("c", data=np.full(8, alive[-1], np.float32), limit=1)
        assert hits[0]["id"] == alive[-1] and hits[0]["distance"] == 0.0
        assert c.get_collection_stats("c")["sealed_rows"] > 0
    finally:
        c.close()
