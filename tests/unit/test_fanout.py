"""Segments searched side by side (gpuvec.query.fanout): the work estimate, answers in the
segments' order, the large segments of a small batch really run at once, large batches and
lone segments stay in the caller's thread, errors surface after every call ended; and an
embedded search over several sealed segments, forced onto the parallel path, equals brute
force (with a filter and deletes)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuvec.query import fanout
from gpuvec.query.fanout import PARALLEL_MIN_WORK, map_segments, search_work
from gpuvec.testing.scenarios_support import brute_cosine

BIG = PARALLEL_MIN_WORK


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def test_work_counts_every_row_of_a_scan_and_a_share_of_an_index() -> None:
    assert search_work(50_000, 1, indexed=False) == 50_000  # a batch-1 scan: parallel
    assert search_work(50_000, 1, indexed=True) < PARALLEL_MIN_WORK  # one graph walk: not
    assert search_work(50_000, 8, indexed=True) >= PARALLEL_MIN_WORK  # eight walks: yes
    assert search_work(300, 8, indexed=True) == 2_400  # never more than the rows


def test_answers_keep_the_segments_order() -> None:
    sizes = [BIG, 10, BIG, BIG, 5]
    assert map_segments(lambda i: i * i, len(sizes), sizes.__getitem__, 1) == [0, 1, 4, 9, 16]


def test_large_segments_of_a_small_batch_run_at_once() -> None:
    if _cores() < 2:
        pytest.skip(f"one core ({_cores()}): map_segments stays sequential by design")
    barrier = threading.Barrier(2, timeout=10)  # passes only if two calls overlap

    def fn(i: int) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = map_segments(fn, 2, lambda i: BIG, 1)
    assert names[0] == threading.current_thread().name  # the first runs in the caller
    assert names[1].startswith("gpuvec-segsearch")


@pytest.mark.parametrize(("sizes", "nq"), [([BIG, BIG], 16), ([BIG, 100, 100], 1), ([BIG], 1)])
def test_stays_in_the_callers_thread_where_threads_do_not_pay(sizes: list[int], nq: int) -> None:
    me = threading.current_thread().name
    got = map_segments(lambda i: threading.current_thread().name, len(sizes), sizes.__getitem__, nq)
    assert got == [me] * len(sizes)


def test_an_error_surfaces_after_every_call_ended() -> None:
    if _cores() < 2:
        pytest.skip(f"one core ({_cores()}): no pool to wait for")
    ended: list[int] = []

    def fn(i: int) -> int:
        if i == 0:
            raise ValueError("segment 0 failed")
        time.sleep(0.05)
        ended.append(i)
        return i

    with pytest.raises(ValueError, match="segment 0 failed"):
        map_segments(fn, 3, lambda i: BIG, 1)
    assert sorted(ended) == [1, 2]


def test_embedded_search_over_parallel_segments_equals_brute_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpuvec import MilvusClient
    from gpuvec.config import Config

    monkeypatch.setattr(fanout, "PARALLEL_MIN_WORK", 100)  # every segment here is "large"
    calls: list[str] = []
    real = fanout.map_segments

    def spy(fn: Any, n: int, work_of: Any, nq: int) -> Any:
        calls.append(f"{n}:{nq}")
        return real(fn, n, work_of, nq)

    monkeypatch.setattr("gpuvec.runtime.reads.map_segments", spy)
    m = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address="",
                                                         datanode_processes=False))  # fmt: skip
    try:
        dim, rng = 8, np.random.default_rng(3)
        vecs = rng.standard_normal((1200, dim)).astype(np.float32)
        m.create_collection("p", dimension=dim, consistency_level="Strong")
        for lo in range(0, 1200, 300):  # four sealed segments
            m.insert("p", [{"id": i, "vector": vecs[i].tolist(), "even": i % 2 == 0}
                           for i in range(lo, lo + 300)])  # fmt: skip
            m.flush("p")
        m.delete("p", ids=list(range(0, 1200, 7)))
        alive = np.ones(1200, bool)
        alive[::7] = False
        even = alive & (np.arange(1200) % 2 == 0)
        for q in rng.standard_normal((10, dim)).astype(np.float32):
            hits = m.search("p", [q.tolist()], limit=10)[0]
            assert [h["id"] for h in hits] == brute_cosine(vecs, q, 10, alive)
            hits = m.search("p", [q.tolist()], limit=10, filter="even == true")[0]
            assert [h["id"] for h in hits] == brute_cosine(vecs, q, 10, even)
        assert any(c.startswith("4:") for c in calls), calls  # the four segments fanned out
    finally:
        m.close()
