"""Seals under load: a writer keeps inserting (and deleting) and a reader keeps reading
while seals write slowly to object storage. Writes are not held up for a seal's write,
reads never miss an acknowledged row nor see one twice, and the end state (and the state
after a restart) holds every acknowledged row exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import gpuvec.streaming.shard as shard_mod
from gpuvec import MilvusClient
from gpuvec.config import Config

CFG = Config(
    dashboard_address="",
    datanode_processes=False,
    index_min_rows=1 << 30,
    seal_idle_s=3600,
    compaction_interval_s=3600,
)
NAME = "c"
SLOW_S = 0.8  # each segment write sleeps this long first
SEALS = 3


def rows(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [float(i), 1.0, 2.0, 3.0]} for i in ids]


def all_ids(c: MilvusClient) -> list[int]:
    got = c.query(NAME, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    return [r["id"] for r in got]


@pytest.mark.parametrize("shards", [1, 2])
def test_seals_under_concurrent_writes_and_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    real = shard_mod.write_segment
    windows: list[tuple[float, float]] = []  # (start, end) of every slowed segment write

    def slow_write(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        time.sleep(SLOW_S)
        try:
            return real(*args, **kwargs)
        finally:
            windows.append((start, time.monotonic()))

    monkeypatch.setattr(shard_mod, "write_segment", slow_write)
    c = MilvusClient(str(tmp_path / "db"), config=CFG)
    c.create_collection(NAME, dimension=4, num_shards=shards)
    c.insert(NAME, rows(range(0, 200)))
    acked = set(range(200))
    deleting: set[int] = set()  # deletes issued (acknowledged or not)
    deleted: set[int] = set()  # deletes acknowledged
    inserts: list[tuple[float, float]] = []  # (issued, returned) of every insert
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        nxt = 200
        while not stop.is_set():
            t0 = time.monotonic()
            c.insert(NAME, rows(range(nxt, nxt + 5)))
            t1 = time.monotonic()
            with lock:
                acked.update(range(nxt, nxt + 5))
                inserts.append((t0, t1))
            if nxt % 50 == 0:  # delete a row sealed or being sealed by now
                victim = nxt - 150
                with lock:
                    deleting.add(victim)
                c.delete(NAME, ids=[victim])
                with lock:
                    deleted.add(victim)
            nxt += 5
            time.sleep(0.01)

    def reader() -> None:
        while not stop.is_set():
            with lock:
                must, gone = acked - deleting, set(deleted)
            got = all_ids(c)
            if len(got) != len(set(got)):
                errors.append(f"a row served twice: {len(got)} rows, {len(set(got))} ids")
            if missing := must - set(got):
                errors.append(f"acknowledged rows missing from a read: {sorted(missing)[:5]}")
            if back := gone & set(got):
                errors.append(f"deleted rows visible again: {sorted(back)[:5]}")
            time.sleep(0.005)

    threads = [threading.Thread(target=f, daemon=True) for f in (writer, reader)]
    try:
        for t in threads:
            t.start()
        for _ in range(SEALS):
            time.sleep(0.2)
            c.flush(NAME)  # seals every shard (in turn)
        stop.set()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors[:5]
        assert len(windows) >= SEALS
        # inserts issued during a segment write returned before that write finished
        for start, end in windows:
            inside = [(a, b) for a, b in inserts if a > start and b < end]
            assert inside, f"no insert completed during the write {start:.2f}..{end:.2f}"
        slowest = max(b - a for a, b in inserts)
        assert slowest < SLOW_S / 2, f"an insert took {slowest:.2f}s: blocked by a seal"
        c.flush(NAME)
        want = sorted(acked - deleted)
        assert all_ids(c) == want
        coll = c._engine.get(NAME)
        assert not any(s.growing for s in coll.shards)
        assert sum(s.rows for s in c._engine.catalog.segments(coll.meta.id)) == len(acked)
    finally:
        stop.set()
        c.close()
    c = MilvusClient(str(tmp_path / "db"), config=CFG)
    try:
        assert all_ids(c) == want
    finally:
        c.close()
