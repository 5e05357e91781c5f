"""Time ticks (DESIGN §3): every shard appends TimeTick(T) to its WAL channel every
``time_tick_ms``, every record before a tick has a smaller timestamp, and a channel with
nothing unsealed does not keep an ever-growing log of ticks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.storage.wal.record import RecordKind


def channel_records(c: MilvusClient, name: str) -> list:
    eng = c._engine
    shard = eng.get(name).shards[0]
    reader = eng.wal.reader(shard.channel, eng.wal.low_watermark(shard.channel))
    try:
        out = []
        while batch := reader.poll(timeout=0.0, max_records=1024):
            out += [rec for _, rec in batch]
        return out
    finally:
        reader.close()


def wait_for(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_ticks_follow_writes_in_timestamp_order(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(time_tick_ms=20, seal_idle_s=3600))
    try:
        c.create_collection("c", dimension=4)
        vec = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
        for i in range(3):
            c.insert("c", [{"id": i, "vector": vec[i]}])
            time.sleep(0.06)
        assert wait_for(
            lambda: sum(r.kind == RecordKind.TIME_TICK for r in channel_records(c, "c")) >= 6
        )
        recs = channel_records(c, "c")
        kinds = [r.kind for r in recs]
        assert kinds.count(RecordKind.INSERT) == 3
        ts = [r.ts_begin for r in recs]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)  # strictly increasing, ticks too
        last_insert = max(r.ts_end for r in recs if r.kind == RecordKind.INSERT)
        last_tick = max(r.ts_end for r in recs if r.kind == RecordKind.TIME_TICK)
        assert last_tick > last_insert
        assert c._engine.get("c").shards[0].serviceable >= last_tick
    finally:
        c.close()


def test_idle_channel_releases_its_ticks(tmp_path: Path) -> None:
    cfg = Config(time_tick_ms=10, idle_wal_records=20, seal_idle_s=3600)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        c.create_collection("c", dimension=4)
        c.insert("c", [{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0]}])
        shard = c._engine.get("c").shards[0]
        time.sleep(0.5)  # unsealed data: the checkpoint must not move past it
        assert shard.checkpoint == 0 and c._engine.wal.low_watermark(shard.channel) == 0
        c.flush("c")
        sealed_at = shard.checkpoint
        assert sealed_at > 0
        assert wait_for(lambda: shard.checkpoint > sealed_at, timeout=5.0)  # ticks released
        assert c._engine.catalog.checkpoint(shard.channel) == shard.checkpoint
        assert len(channel_records(c, "c")) < 3 * cfg.idle_wal_records
    finally:
        c.close()
    c = MilvusClient(str(tmp_path / "db"), config=cfg)  # reopen: the row is still served
    try:
        assert [r["id"] for r in c.get("c", ids=[1])] == [1]
    finally:
        c.close()
