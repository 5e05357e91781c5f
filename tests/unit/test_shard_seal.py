"""``Shard.seal`` in three phases (plan under the shard lock, object-store write outside it,
commit and swap under it): writes and deletes proceed while a seal writes, a delete of a
frozen row hides it at once and is kept for the next delta log, a failed seal loses
nothing, and concurrent seals serialise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import gpuvec.streaming.shard as shard_mod
from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.streaming.shard import Shard

CFG = Config(
    dashboard_address="",
    datanode_processes=False,
    index_min_rows=1 << 30,
    seal_idle_s=3600,
    compaction_interval_s=3600,
)
NAME = "c"
WAIT = 10.0  # seconds any gate or thread is waited for before the test fails


def rows(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [float(i), 1.0, 2.0, 3.0]} for i in range(start, stop)]


def ids(c: MilvusClient) -> list[int]:
    got = c.query(NAME, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    return [r["id"] for r in got]


def open_client(path: Path) -> MilvusClient:
    return MilvusClient(str(path / "db"), config=CFG)


def assert_reopened(client: MilvusClient, tmp_path: Path, want: list[int]) -> None:
    """Close ``client`` and check a fresh engine on its directory reads ``want``."""
    client.close()
    c = open_client(tmp_path)
    try:
        assert ids(c) == want
    finally:
        c.close()


def shard_of(c: MilvusClient) -> Shard:
    return c._engine.get(NAME).shards[0]


class Gate:
    """Replaces ``write_segment`` in the shard module: each call announces itself and
    waits for the gate to open (so the test acts while a seal is in its write phase), then
    writes for real. ``fail`` makes the first that many calls raise instead."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: int = 0, closed: bool = True):
        self.real = shard_mod.write_segment
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.finished = threading.Event()
        self.fail, self.calls = fail, 0
        if not closed:
            self.opened.set()
        monkeypatch.setattr(shard_mod, "write_segment", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        self.opened.wait(WAIT)
        if self.calls <= self.fail:
            raise OSError("object store unavailable (injected)")
        try:
            return self.real(*args, **kwargs)
        finally:
            self.finished.set()


class Background:
    """Runs ``fn`` in a thread; ``result()`` joins it and returns or re-raises."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:  # handed to the test thread
            self.error = e

    def done(self, timeout: float = WAIT) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def result(self, timeout: float = WAIT) -> Any:
        assert self.done(timeout), "background call did not finish"
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MilvusClient]:
    c = open_client(tmp_path)
    c.create_collection(NAME, dimension=4, num_shards=1)
    try:
        yield c
    finally:
        c.close()


def test_writes_and_reads_proceed_while_a_seal_writes(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client.insert(NAME, rows(0, 100))
    shard = shard_of(client)
    gate = Gate(monkeypatch)
    seal = Background(shard.seal)
    assert gate.entered.wait(WAIT)
    # the seal is in its write phase: an insert, a read and a tick do not wait for it
    insert = Background(lambda: client.insert(NAME, rows(100, 150)))
    assert insert.done(2.0), "insert blocked by the seal's object-store write"
    assert not gate.finished.is_set()
    assert ids(client) == list(range(150))  # frozen rows still served, new ones too
    assert Background(shard.tick).done(2.0)
    assert not shard.should_seal()  # the running seal took every row so far
    assert not shard.release_idle_wal()
    frozen = [s for s in shard.growing.values() if s.n == 100]
    assert len(frozen) == 1 and len(shard.growing) == 2  # frozen one + the fresh one
    gate.opened.set()
    metas = seal.result()
    assert [m.rows for m in metas] == [100]
    assert [s.n for s in shard.growing.values()] == [50]  # only the rows after the plan
    assert shard.checkpoint == metas[0].checkpoint
    assert ids(client) == list(range(150))
    client.flush(NAME)
    assert not shard.growing and ids(client) == list(range(150))
    assert_reopened(client, tmp_path, list(range(150)))


def test_delete_mid_seal_hides_the_row_and_goes_to_the_next_delta_log(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client.insert(NAME, rows(0, 50))
    client.delete(NAME, ids=[3])  # before the checkpoint: in the delta log being written
    shard = shard_of(client)
    gate = Gate(monkeypatch)
    seal = Background(shard.seal)
    assert gate.entered.wait(WAIT)
    delete = Background(lambda: client.delete(NAME, ids=[7]))  # a row of the frozen segment
    assert delete.done(2.0), "delete blocked by the seal's object-store write"
    assert not gate.finished.is_set()
    live = [i for i in range(50) if i not in (3, 7)]
    assert ids(client) == live  # hidden at once
    assert client.get(NAME, ids=[7], consistency_level="Strong") == []
    pending = shard.pending_deletes()
    assert [(p.tolist(), t > 0) for p, t in pending] == [([3], True), ([7], True)]
    gate.opened.set()
    seal.result()
    assert ids(client) == live
    # the frozen delete is committed; the one after the checkpoint is pending
    assert [p.tolist() for p, _ in shard.pending_deletes()] == [[7]]
    assert [p.tolist() for p, _ in shard._deletes] == [[7]]
    cid = client._engine.get(NAME).meta.id
    assert len(client._engine.catalog.delta_logs(cid)) == 1
    client.close()
    c = open_client(tmp_path)  # the WAL after the checkpoint replays the delete
    try:
        assert ids(c) == live
        assert [p.tolist() for p, _ in shard_of(c).pending_deletes()] == [[7]]
        c.flush(NAME)  # now it goes to a delta log
        assert shard_of(c).pending_deletes() == []
        assert len(c._engine.catalog.delta_logs(cid)) == 2
    finally:
        c.close()
    c = open_client(tmp_path)
    try:
        assert ids(c) == live
    finally:
        c.close()


def test_failed_segment_write_loses_nothing(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client.insert(NAME, rows(0, 40))
    client.delete(NAME, ids=[5])
    shard = shard_of(client)
    gate = Gate(monkeypatch, fail=1, closed=False)
    with pytest.raises(OSError, match="injected"):
        shard.seal()
    live = [i for i in range(40) if i != 5]
    assert ids(client) == live
    assert [p.tolist() for p, _ in shard.pending_deletes()] == [[5]]
    assert shard.checkpoint == 0 and shard._sealing is None
    client.insert(NAME, rows(40, 60))  # writes keep working
    client.delete(NAME, ids=[45])
    live = [i for i in live + list(range(40, 60)) if i != 45]
    assert ids(client) == live
    metas = shard.seal()
    assert gate.calls == 3 and sorted(m.rows for m in metas) == [20, 40]
    assert not shard.growing and shard.pending_deletes() == []
    assert ids(client) == live
    assert_reopened(client, tmp_path, live)


@pytest.mark.parametrize("where", ["commit", "after-write", "partial-write"])
def test_retry_after_the_segments_reached_the_store(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """A seal that failed after writing (all or part of) a segment: the retry reuses the
    complete segment or removes the partial one instead of refusing an existing path."""
    client.insert(NAME, rows(0, 30))
    shard = shard_of(client)
    real_write, real_commit = shard_mod.write_segment, shard.catalog.commit_seal
    failed = []

    def write(store: Any, path: str, **kw: Any) -> Any:
        if not failed and where == "partial-write":
            failed.append(path)
            zarr.create_array(store, name=f"{path}/pk", data=np.arange(3))
            raise OSError("torn write (injected)")
        info = real_write(store, path, **kw)
        if not failed and where == "after-write":
            failed.append(path)
            raise OSError("lost reply (injected)")
        return info

    def commit(*args: Any) -> None:
        if not failed and where == "commit":
            failed.append(args)
            raise OSError("meta store unavailable (injected)")
        real_commit(*args)

    monkeypatch.setattr(shard_mod, "write_segment", write)
    monkeypatch.setattr(shard.catalog, "commit_seal", commit)
    with pytest.raises(OSError, match="injected"):
        shard.seal()
    assert failed and ids(client) == list(range(30))
    client.insert(NAME, rows(30, 35))
    assert sorted(m.rows for m in shard.seal()) == [5, 30]
    assert ids(client) == list(range(35))
    assert_reopened(client, tmp_path, list(range(35)))


def test_concurrent_seals_run_one_at_a_time(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client.insert(NAME, rows(0, 60))
    shard = shard_of(client)
    gate = Gate(monkeypatch)
    first = Background(shard.seal)
    assert gate.entered.wait(WAIT)
    client.insert(NAME, rows(60, 80))
    second = Background(shard.seal)  # waits for the first, then seals the 20 new rows
    third = Background(shard.seal)
    time.sleep(0.2)
    assert gate.calls == 1 and not second.done(0) and not third.done(0)
    assert ids(client) == list(range(80))
    gate.opened.set()
    results = [first.result(), second.result(), third.result()]
    sealed = sorted(m.rows for r in results for m in r)
    assert sealed == [20, 60]
    assert [m.rows for m in results[0]] == [60]
    cid = client._engine.get(NAME).meta.id
    segs = client._engine.catalog.segments(cid)
    assert sorted(s.rows for s in segs) == [20, 60] and len({s.id for s in segs}) == 2
    assert not shard.growing and ids(client) == list(range(80))
    assert_reopened(client, tmp_path, list(range(80)))


def test_close_waits_for_a_running_seal(
    client: MilvusClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client.insert(NAME, rows(0, 10))
    shard = shard_of(client)
    gate = Gate(monkeypatch)
    seal = Background(shard.seal)
    assert gate.entered.wait(WAIT)
    close = Background(shard.close)
    time.sleep(0.2)
    assert not close.done(0)
    gate.opened.set()
    assert [m.rows for m in seal.result()] == [10]
    close.result()
    assert shard.seal() == []  # a closed shard does not seal
