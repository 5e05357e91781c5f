"""Leadership under a stalled process (issue: a long pause cost ``gpuvec serve`` its
leadership silently and for good).

``gpuvec serve`` runs as a subprocess; ``SIGSTOP`` freezes it for longer than its 3 s
lease TTL — what a long GIL-holding call or a paused VM does — while this process opens the
same meta store, which reaps the expired lease (the election key is gone). After
``SIGCONT`` the server either reclaims its leadership and serves data RPCs again (nobody
else led meanwhile), or — when another candidate led in between — reports itself unhealthy
through ``CheckHealth`` and fails data RPCs with an error naming the cause, never 65535.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc
from serve_process import spawn_serve  # type: ignore[import-not-found]

from gpuvec.storage.meta.election import Election
from gpuvec.storage.meta.sqlite import SqliteMetaStore

STALL_S = 5.0  # > the embedded lease TTL (3 s) and the TSO window (3 s)
ROWS = [{"id": i, "vector": [float(i), 1.0, 0.0, 0.5]} for i in range(20)]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[int, int, Path, Path]]:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    proc, port = spawn_serve(data, log)
    try:
        yield proc.pid, port, data, log
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)


def health(port: int) -> tuple[bool, list[str]]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = milvus_pb2_grpc.MilvusServiceStub(ch)
        res = stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=10)
    return res.isHealthy, list(res.reasons)


def stall(pid: int, data: Path) -> SqliteMetaStore:
    """Freeze the server past its lease; returns this process's handle on its meta store
    after it reaped the expired lease."""
    os.kill(pid, signal.SIGSTOP)
    time.sleep(STALL_S)
    meta = SqliteMetaStore(data / "meta.db")
    assert meta.get("election/coordinator") is None, "the stalled server's lease must lapse"
    return meta


def test_stall_past_the_lease_then_data_rpcs_succeed(serve: tuple[int, int, Path, Path]) -> None:
    pid, port, data, log = serve
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=60)
    client.create_collection("s", dimension=4, consistency_level="Strong")
    client.insert("s", ROWS[:10])
    meta = stall(pid, data)
    meta.close()
    os.kill(pid, signal.SIGCONT)
    client.insert("s", ROWS[10:])  # waits for the reclaim rather than failing
    got = client.query("s", filter="id >= 0", output_fields=["count(*)"])
    assert got[0]["count(*)"] == 20
    hits = client.search("s", data=[[19.0, 1.0, 0.0, 0.5]], limit=1)
    assert hits[0][0]["id"] == 19
    client.create_collection("after", dimension=4)  # DDL (guarded catalog writes) too
    assert health(port) == (True, [])
    text = log.read_text(errors="replace")
    assert "lapsed" in text and "re-elected" in text, "the lapse and the reclaim are logged"
    client.close()


def test_stall_while_another_leads_is_reported_not_silent(
    serve: tuple[int, int, Path, Path],
) -> None:
    pid, port, data, log = serve
    client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=60)
    client.create_collection("s", dimension=4, consistency_level="Strong")
    client.insert("s", ROWS[:10])
    meta = stall(pid, data)
    intruder = Election(meta, "coordinator", ttl=30)
    intruder.campaign(b"intruder-process", timeout=5)
    os.kill(pid, signal.SIGCONT)
    try:
        deadline = time.monotonic() + 20
        healthy, reasons = health(port)
        # first "lapsed", then — once the reclaim is refused — the other leader's name
        while not any("intruder-process" in r for r in reasons) and time.monotonic() < deadline:
            time.sleep(0.2)
            healthy, reasons = health(port)
        assert not healthy and any("intruder-process" in r for r in reasons), reasons
        with pytest.raises(MilvusException) as err:
            client.insert("s", ROWS[10:])
        assert err.value.code != 65535 and "intruder-process" in err.value.message
        intruder.resign()  # vacant again: the server still must not resume (stale state)
        time.sleep(1.0)
        assert health(port)[0] is False
    finally:
        intruder.resign()
        meta.close()
    assert "restart this process" in log.read_text(errors="replace")
    client.close()
