"""Readers and writers together, checked against a serial model (issue: concurrent writes
broke reads).

A bounded run (``GPUVEC_STRESS_S`` seconds, default 20) of 4 inserting writers, 2
deleters (by ids and by filter), an upserter, a flusher/compactor and 4 readers (filtered
query, ``count(*)``, filtered search), against the embedded client and against ``gpuvec
serve`` over a real gRPC socket through unmodified pymilvus. The engine's ``write`` /
``match`` / ``search`` are wrapped to learn each write's timestamp and each read's
timestamp (a read is tagged by a never-matching ``id != -<nonce>`` term in its filter).
Afterwards every read is replayed against the serial model — the acknowledged writes in
timestamp order, upsert = delete + insert at one timestamp — and must give exactly the id
set (and values, and top-k distances) visible at its read timestamp.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuvec.config import Config
from gpuvec.schema import DataType

DURATION = float(os.environ.get("GPUVEC_STRESS_S", "20"))
DIM, NAME, K = 8, "stress", 10
ROWS_PER_WRITER = 8000  # spread over the run: writers pause between batches
CONFIG = Config(
    dashboard_address="",
    datanode_processes=False,
    index_min_rows=256,
    seal_rows=2500,
    seal_idle_s=3600,
    compaction_interval_s=2.0,
)
NONCE = re.compile(r"id != -(\d+)")


class Recorder:
    """Wraps an engine's write and read entry points; records timestamps."""

    def __init__(self, engine: Any) -> None:
        self.lock = threading.Lock()
        self.writes: list[tuple[int, dict[int, tuple[int, np.ndarray]], list[int]]] = []
        self.read_ts: dict[int, set[int]] = {}
        write, match, search = engine.write, engine.match, engine.search

        def rec_write(coll: Any, *, inserts: Any, delete_pks: Any, partition: Any) -> int:
            ts = write(coll, inserts=inserts, delete_pks=delete_pks, partition=partition)
            ins: dict[int, tuple[int, np.ndarray]] = {}
            if inserts is not None:
                vecs = inserts.column("vector").combine_chunks()
                flat = vecs.flatten().to_numpy().reshape(len(vecs), DIM)
                for i, (pk, t) in enumerate(
                    zip(inserts["id"].to_pylist(), inserts["t"].to_pylist(), strict=True)
                ):
                    ins[pk] = (t, flat[i])
            dels = [] if delete_pks is None else [int(x) for x in delete_pks]
            with self.lock:
                self.writes.append((ts, ins, dels))
            return ts

        def note(flt: Any, read_ts: int) -> None:
            m = NONCE.search(getattr(flt, "text", "") or "") if flt is not None else None
            if m:
                with self.lock:
                    self.read_ts.setdefault(int(m.group(1)), set()).add(read_ts)

        def rec_match(coll: Any, flt: Any, partitions: Any, read_ts: int, *a: Any, **kw: Any):
            note(flt, read_ts)
            return match(coll, flt, partitions, read_ts, *a, **kw)

        def rec_search(coll: Any, field: Any, q: Any, k: Any, metric: Any, parts: Any,
                       read_ts: int, flt: Any = None, *a: Any, **kw: Any):  # fmt: skip
            note(flt, read_ts)
            return search(coll, field, q, k, metric, parts, read_ts, flt, *a, **kw)

        engine.write, engine.match, engine.search = rec_write, rec_match, rec_search


def create(client: Any) -> None:
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("t", DataType.INT64)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    idx = client.prepare_index_params()
    idx.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(
        NAME, schema=s, index_params=idx, num_shards=2, consistency_level="Strong"
    )


class Workload:
    """The threads of one run; ``reads`` holds what readers saw, tagged by nonce."""

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self.make_client = make_client
        self.lock = threading.Lock()
        self.acked: list[int] = []  # inserted ids (delete / upsert candidates)
        self.acked_ops: list[tuple[str, frozenset[int]]] = []
        self.reads: list[tuple[int, str, int, np.ndarray | None, Any]] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.nonce = itertools.count(1)
        self.stop_at = time.monotonic() + DURATION

    def running(self) -> bool:
        return time.monotonic() < self.stop_at and not self.errors

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _ack(self, kind: str, ids: list[int]) -> None:
        with self.lock:
            self.acked_ops.append((kind, frozenset(ids)))
            if kind == "insert":
                self.acked.extend(ids)
        self._count(kind)

    def _sample(self, rng: random.Random, n: int) -> list[int]:
        with self.lock:
            pool = list(self.acked[-5000:])
        return sorted(set(rng.sample(pool, min(n, len(pool))))) if pool else []

    def writer(self, w: int) -> None:
        c, rng = self.make_client(), np.random.default_rng(w)
        for start in range(0, ROWS_PER_WRITER, 20):
            if not self.running():
                return
            ids = [w * 10_000_000 + start + j for j in range(20)]
            vec = rng.standard_normal((20, DIM)).astype(np.float32)
            c.insert(
                NAME, [{"id": i, "t": i % 10, "vector": v} for i, v in zip(ids, vec, strict=True)]
            )
            self._ack("insert", ids)
            time.sleep(0.03)

    def deleter(self, seed: int) -> None:
        c, rng = self.make_client(), random.Random(seed)
        while self.running():
            ids = self._sample(rng, 5)
            if not ids:
                time.sleep(0.01)
                continue
            if rng.random() < 0.5:
                c.delete(NAME, ids=ids)
                self._ack("delete", ids)
            else:  # deletes only the ids still visible: the model checks it through reads
                c.delete(NAME, filter=f"id in {ids}")
                self._count("delete by filter")
            time.sleep(0.02)

    def upserter(self, seed: int) -> None:
        c, rng = self.make_client(), random.Random(seed)
        nrng = np.random.default_rng(seed)
        while self.running():
            ids = self._sample(rng, 10)
            if not ids:
                time.sleep(0.01)
                continue
            vec = nrng.standard_normal((len(ids), DIM)).astype(np.float32)
            rows = [
                {"id": i, "t": rng.randrange(10), "vector": v}
                for i, v in zip(ids, vec, strict=True)
            ]
            c.upsert(NAME, rows)
            self._ack("upsert", ids)
            time.sleep(0.01)

    def maintainer(self) -> None:
        c, turn = self.make_client(), 0
        while self.running():
            time.sleep(1.0)
            c.flush(NAME)
            self._count("flush")
            turn += 1
            if turn % 3 == 0:
                try:
                    c.compact(NAME)
                    self._count("compact")
                except Exception as e:  # the automatic policy may be compacting already
                    if "already running" not in str(e):
                        raise

    def reader(self, seed: int) -> None:
        c, rng = self.make_client(), random.Random(seed)
        nrng = np.random.default_rng(seed)
        while self.running():
            nonce, x = next(self.nonce), rng.randrange(10)
            kind = rng.choice(("query", "count", "search"))
            q = None
            if kind == "query":
                got: Any = c.query(NAME, filter=f"t == {x} and id != -{nonce}",
                                   output_fields=["t"], consistency_level="Strong")  # fmt: skip
                got = {int(r["id"]): int(r["t"]) for r in got}
            elif kind == "count":
                res = c.query(NAME, filter=f"id != -{nonce}", output_fields=["count(*)"],
                              consistency_level="Strong")  # fmt: skip
                got = int(res[0]["count(*)"])
            else:
                q = nrng.standard_normal(DIM).astype(np.float32)
                res = c.search(NAME, data=[q.tolist()], limit=K, output_fields=["t"],
                               filter=f"t == {x} and id != -{nonce}",
                               consistency_level="Strong")  # fmt: skip
                got = [(int(h["id"]), float(h["distance"]), int(h["entity"]["t"])) for h in res[0]]
            with self.lock:
                self.reads.append((nonce, kind, x, q, got))
            self._count(kind)

    def run(self) -> None:
        def guard(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
            def body() -> None:
                try:
                    fn(*args)
                except Exception as e:  # reported as the test's failure
                    with self.lock:
                        self.errors.append(f"{fn.__name__}{args}: {e!r}")

            return body

        jobs = [guard(self.writer, w) for w in range(4)]
        jobs += [guard(self.deleter, 100 + i) for i in range(2)]
        jobs += [guard(self.upserter, 200), guard(self.maintainer)]
        jobs += [guard(self.reader, 300 + i) for i in range(4)]
        threads = [threading.Thread(target=j, daemon=True) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DURATION + 120)
        assert not any(t.is_alive() for t in threads), "a stress thread hung"


def model_states(
    writes: list[tuple[int, dict[int, tuple[int, np.ndarray]], list[int]]], at: list[int]
) -> Iterator[tuple[int, dict[int, tuple[int, np.ndarray]]]]:
    """The serial model: for each read timestamp in ``at`` (ascending), the rows visible
    there — writes applied in timestamp order, each one's deletes before its inserts."""
    ordered = sorted(writes, key=lambda w: w[0])
    state: dict[int, tuple[int, np.ndarray]] = {}
    i = 0
    for ts in at:
        while i < len(ordered) and ordered[i][0] <= ts:
            _, ins, dels = ordered[i]
            for pk in dels:
                state.pop(pk, None)
            state.update(ins)
            i += 1
        yield ts, state


def check(work: Workload, rec: Recorder) -> dict[str, int]:
    """Replay every read against the model; returns how many of each were checked."""
    assert not work.errors, work.errors[:5]
    ts_of: dict[int, int] = {}
    for nonce, tss in rec.read_ts.items():
        assert len(tss) == 1, f"read {nonce} ran at several timestamps {tss}"
        ts_of[nonce] = next(iter(tss))
    reads = sorted(work.reads, key=lambda r: ts_of[r[0]])
    assert len(reads) == len(ts_of)
    by_ts: dict[int, list] = {}
    for r in reads:
        by_ts.setdefault(ts_of[r[0]], []).append(r)
    checked: dict[str, int] = {}
    for ts, state in model_states(rec.writes, sorted(by_ts)):
        for nonce, kind, x, q, got in by_ts[ts]:
            where = f"{kind} #{nonce} at ts {ts}"
            if kind == "count":
                assert got == len(state), f"{where}: count {got}, model {len(state)}"
            elif kind == "query":
                want = {pk: t for pk, (t, _) in state.items() if t == x}
                assert got == want, (
                    f"{where}: t == {x} gave {len(got)} rows, model {len(want)}; "
                    f"extra {sorted(set(got) - set(want))[:5]}, "
                    f"missing {sorted(set(want) - set(got))[:5]}"
                )
            else:
                rows = [(pk, v) for pk, (t, v) in state.items() if t == x]
                assert q is not None
                if not rows:
                    assert got == [], f"{where}: hits {got} but no row passes"
                    checked[kind] = checked.get(kind, 0) + 1
                    continue
                vecs = np.stack([v for _, v in rows])
                dist = ((vecs - q) ** 2).sum(1)
                want_d = np.sort(dist)[:K]
                d_of = {pk: float(d) for (pk, _), d in zip(rows, dist, strict=True)}
                assert len(got) == len(want_d), f"{where}: {len(got)} hits, want {len(want_d)}"
                for pk, d, t in got:
                    assert pk in d_of, f"{where}: hit {pk} is not visible/passing in the model"
                    assert t == x and abs(d - d_of[pk]) <= 1e-3 * (1 + d_of[pk]), where
                np.testing.assert_allclose(
                    sorted(d for _, d, _ in got), want_d, rtol=1e-3, atol=1e-3, err_msg=where
                )
            checked[kind] = checked.get(kind, 0) + 1
    # every acknowledged write reached the engine exactly as acknowledged
    logged_ins = [frozenset(ins) for _, ins, dels in rec.writes if ins and not dels]
    logged_ups = [frozenset(ins) for _, ins, dels in rec.writes if ins and dels]
    logged_del = [frozenset(dels) for _, ins, dels in rec.writes if dels and not ins]
    for kind, ids in work.acked_ops:
        pool = {"insert": logged_ins, "upsert": logged_ups, "delete": logged_del}[kind]
        assert ids in pool, f"acknowledged {kind} of {sorted(ids)[:5]}… not in the write log"
    return checked


def final_state_matches(client: Any, rec: Recorder) -> int:
    """The state after the run equals the model's (read per writer's id range: each stays
    under Milvus's 16,384-row query window)."""
    ((_, state),) = list(model_states(rec.writes, [1 << 63]))
    got: dict[int, int] = {}
    for w in range(4):
        lo, hi = w * 10_000_000, (w + 1) * 10_000_000
        rows = client.query(NAME, filter=f"id >= {lo} and id < {hi}", output_fields=["t"],
                            limit=16384, consistency_level="Strong")  # fmt: skip
        got.update({int(r["id"]): int(r["t"]) for r in rows})
    assert got == {pk: t for pk, (t, _) in state.items()}
    return len(state)


def report(label: str, work: Workload, checked: dict[str, int], rows: int) -> None:
    ops = ", ".join(f"{k} {v}" for k, v in sorted(work.counts.items()))
    print(f"\n[stress {label}] {DURATION:.0f} s: {ops}; reads checked against the model: "
          f"{checked}; final rows {rows}")  # fmt: skip
    for kind in ("insert", "delete", "upsert", "query", "count", "search", "flush"):
        assert work.counts.get(kind, 0) > 0, f"no {kind} ran: the run proves nothing"


def test_embedded_readers_and_writers_match_the_serial_model(tmp_path: Path) -> None:
    from gpuvec import MilvusClient

    client = MilvusClient(str(tmp_path / "db"), config=CONFIG)
    try:
        rec = Recorder(client._engine)
        create(client)
        work = Workload(lambda: client)
        work.run()
        checked = check(work, rec)
        report("embedded", work, checked, final_state_matches(client, rec))
    finally:
        client.close()


def test_grpc_readers_and_writers_match_the_serial_model(tmp_path: Path) -> None:
    from pymilvus import MilvusClient as PyMilvusClient

    from gpuvec.server.app import ServerOptions, start_server

    srv = start_server(str(tmp_path / "data"), ServerOptions(port=0), config=CONFIG)
    clients: list[Any] = []
    lock = threading.Lock()

    def make() -> Any:
        c = PyMilvusClient(uri=f"http://{srv.address}", timeout=60)
        with lock:
            clients.append(c)
        return c

    try:
        rec = Recorder(srv.client._engine)
        admin = make()
        create(admin)
        work = Workload(make)
        work.run()
        checked = check(work, rec)
        report("gRPC", work, checked, final_state_matches(admin, rec))
    finally:
        for c in clients:
            c.close()
        srv.stop(grace=1)


def test_model_replay_is_exact_on_a_quiet_collection(tmp_path: Path) -> None:
    """The checker itself: a serial history replayed through it must pass, and a read
    result with one row too many must fail it (so a green stress run means something)."""
    from gpuvec import MilvusClient

    client = MilvusClient(str(tmp_path / "db"), config=CONFIG)
    try:
        rec = Recorder(client._engine)
        create(client)
        work = Workload(lambda: client)
        work.stop_at = time.monotonic() + 3600
        vec = np.ones((30, DIM), np.float32)
        client.insert(NAME, [{"id": i, "t": i % 10, "vector": vec[i]} for i in range(30)])
        work._ack("insert", list(range(30)))
        client.delete(NAME, ids=[3, 13])
        work._ack("delete", [3, 13])
        got = client.query(NAME, filter="t == 3 and id != -1", output_fields=["t"])
        work.reads.append((1, "query", 3, None, {int(r["id"]): int(r["t"]) for r in got}))
        assert check(work, rec) == {"query": 1}
        work.reads[0][4][3] = 3  # a deleted row "seen": the checker must object
        with pytest.raises(AssertionError, match="extra \\[3\\]"):
            check(work, rec)
    finally:
        client.close()
