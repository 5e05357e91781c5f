"""Storage-layer benchmark: each gpuvec figure next to a raw baseline run in this process.

    python bench/storage.py [--quick] [--etcd 127.0.0.1:23790] [--kafka 127.0.0.1:19092]

* local WAL append MB/s, fsync each append vs group commit — baseline: raw ``os.write``
  (+ ``fsync`` for the fsync-each case) of the same bytes to a file;
* Kafka append MB/s on loopback (1 MiB records, transactions of 8) — baseline: the local
  WAL's group-commit figure (the issue's target is ≥ 50 MB/s);
* meta transaction latency (compare-and-swap), SQLite vs etcd — baseline: a bare sqlite3
  upsert+commit in the same durability mode;
* Zarr sealed-segment write/read MB/s (local, 384-d float32) — baseline: raw file
  write/read of the same array bytes.

Writes ``bench/results/storage.json`` and a bar chart ``bench/results/storage.png``.
Services that are not reachable are reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gpuvec.storage.meta.base import Compare, Put
from gpuvec.storage.meta.sqlite import SqliteMetaStore
from gpuvec.storage.objects.segment import SegmentReader, write_segment
from gpuvec.storage.objects.stores import open_store
from gpuvec.storage.wal.local import LocalWAL
from gpuvec.storage.wal.record import Record, RecordKind
from gpuvec.testing.services import reachable

MiB = 1 << 20
OUT = Path(__file__).parent / "results"


def _records(n: int, channel: str) -> list[Record]:
    payload = np.random.default_rng(1).bytes(MiB)
    return [Record(RecordKind.INSERT, channel, i, i, payload) for i in range(n)]


def raw_write(n: int, fsync_each: bool) -> float:
    data = np.random.default_rng(1).bytes(MiB)
    with tempfile.TemporaryDirectory() as d:
        fd = os.open(Path(d) / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, data)
            if fsync_each:
                os.fsync(fd)
        os.fsync(fd)
        dt = time.perf_counter() - t0
        os.close(fd)
    return n * MiB / dt / 1e6


def local_wal(n: int, policy: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        wal = LocalWAL(d, fsync=policy, group_commit_ms=10)  # type: ignore[arg-type]
        wal.create_channel("bench")
        w = wal.writer("bench")
        recs = _records(n, "bench")
        t0 = time.perf_counter()
        for r in tqdm(recs, desc=f"local WAL ({policy})", leave=False):
            w.append(r)
        w.sync()
        dt = time.perf_counter() - t0
        wal.close()
    return n * MiB / dt / 1e6


def kafka_wal(bootstrap: str, n: int) -> float:
    from gpuvec.storage.wal.kafka import KafkaWAL

    wal = KafkaWAL(bootstrap, topic_prefix=f"bench{os.getpid()}-")
    wal.create_channel("bench")
    try:
        w = wal.writer("bench")
        recs = _records(n, "bench")
        w.append_many(recs[:8])  # warm-up: transactions initialised, topic metadata cached
        t0 = time.perf_counter()
        for i in tqdm(range(0, n, 8), desc="Kafka WAL", leave=False):
            w.append_many(recs[i : i + 8])
        dt = time.perf_counter() - t0
        w.close()
    finally:
        wal.drop_channel("bench")
        wal.close()
    return n * MiB / dt / 1e6


def _lat(fn, n: int, desc: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    for i in tqdm(range(n), desc=desc, leave=False):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}


def meta_txn(store, n: int, desc: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    store.put("bench/cas", b"0")

    def cas(i: int) -> None:
        kv = store.get("bench/cas")
        res = store.txn(
            [Compare("bench/cas", "mod_revision", "==", kv.mod_revision)],
            [Put("bench/cas", str(i).encode())],
        )
        assert res.succeeded

    return _lat(cas, n, desc)


def raw_sqlite(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(Path(d) / "raw.db", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")

        def upsert(i: int) -> None:
            con.execute("BEGIN IMMEDIATE")
            con.execute("SELECT v FROM kv WHERE k='cas'").fetchone()
            con.execute("INSERT OR REPLACE INTO kv VALUES ('cas', ?)", (str(i).encode(),))
            con.execute("COMMIT")

        out = _lat(upsert, n, "raw sqlite3")
        con.close()
    return out


def zarr_segment(rows: int, dim: int) -> dict[str, float]:
    vec = np.random.default_rng(2).standard_normal((rows, dim), dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "raw.bin"
        t0 = time.perf_counter()
        vec.tofile(raw)
        raw_w = vec.nbytes / (time.perf_counter() - t0) / 1e6
        raw_r = max(
            vec.nbytes / _timed(lambda: np.fromfile(raw, np.float32)) / 1e6 for _ in range(3)
        )
        store = open_store(Path(d) / "z")
        t0 = time.perf_counter()
        write_segment(
            store, "seg", pk=np.arange(rows), ts=np.zeros(rows, np.uint64), vectors={"v": vec}
        )
        zw = vec.nbytes / (time.perf_counter() - t0) / 1e6
        reader = SegmentReader(store, "seg")
        zr = max(vec.nbytes / _timed(reader.vectors) / 1e6 for _ in range(3))
    return {"write_MBps": zw, "read_MBps": zr, "raw_write_MBps": raw_w, "raw_read_MBps": raw_r}


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ours, base = [], [], []
    for key, label in [
        ("wal_local_fsync_each", "WAL fsync each"),
        ("wal_local_group", "WAL group commit"),
        ("wal_kafka", "Kafka WAL"),
    ]:
        if isinstance(results.get(key), dict):
            labels.append(label)
            ours.append(results[key]["MBps"])
            base.append(results[key].get("baseline_MBps", 0))
    z = results["zarr"]
    labels += ["Zarr write", "Zarr read"]
    ours += [z["write_MBps"], z["read_MBps"]]
    base += [z["raw_write_MBps"], z["raw_read_MBps"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, ours, 0.4, label="gpuvec")
    ax.bar(x + 0.2, base, 0.4, label="raw baseline")
    ax.set_xticks(x, labels, rotation=15)
    ax.set_ylabel("MB/s")
    ax.set_title(f"gpuvec storage throughput ({results['machine']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--etcd", default=os.environ.get("GPUVEC_ETCD_ENDPOINT", "127.0.0.1:23790"))
    ap.add_argument("--kafka", default=os.environ.get("GPUVEC_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    args = ap.parse_args(argv)
    n_wal, n_txn, rows = (16, 50, 20_000) if args.quick else (256, 500, 200_000)
    res: dict = {"machine": f"{os.cpu_count()} cores", "record_bytes": MiB}

    res["wal_local_fsync_each"] = {
        "MBps": local_wal(n_wal, "always"),
        "baseline_MBps": raw_write(n_wal, True),
    }
    res["wal_local_group"] = {
        "MBps": local_wal(n_wal, "group"),
        "baseline_MBps": raw_write(n_wal, False),
    }
    if reachable(args.kafka):
        res["wal_kafka"] = {
            "MBps": kafka_wal(args.kafka, n_wal),
            "baseline_MBps": res["wal_local_group"]["MBps"],
        }
    else:
        res["wal_kafka"] = f"skipped: no broker at {args.kafka} (deploy/local/kafka.sh start)"

    with tempfile.TemporaryDirectory() as d:
        sq = SqliteMetaStore(Path(d) / "m.db")
        res["meta_sqlite"] = meta_txn(sq, n_txn, "SQLite txn")
        sq.close()
    res["meta_sqlite_raw"] = raw_sqlite(n_txn)
    if reachable(args.etcd):
        from gpuvec.storage.meta.etcd import EtcdMetaStore

        et = EtcdMetaStore(args.etcd, root=f"/bench{os.getpid()}/")
        res["meta_etcd"] = meta_txn(et, n_txn, "etcd txn")
        et.delete_prefix("")
        et.close()
    else:
        res["meta_etcd"] = f"skipped: no etcd at {args.etcd} (deploy/local/etcd.sh start)"
    res["zarr"] = zarr_segment(rows, 384)

    def mbps(key: str) -> str:
        v = res[key]
        if isinstance(v, str):
            return v
        return ratio(v["MBps"], v["baseline_MBps"], "baseline")

    def ratio(ours: float, base: float, name: str) -> str:
        return f"{ours:8.0f} MB/s   {name} {base:8.0f}   ratio {ours / base:.2f}"

    def lat(key: str) -> str:
        v = res[key]
        return v if isinstance(v, str) else f"p50 {v['p50_ms']:.2f} ms   p99 {v['p99_ms']:.2f} ms"

    z = res["zarr"]
    rows_out = [
        ("local WAL, fsync each (1 MiB records)", mbps("wal_local_fsync_each")),
        ("local WAL, group commit 10 ms", mbps("wal_local_group")),
        ("Kafka WAL, loopback, txn of 8", mbps("wal_kafka")),
        ("meta CAS txn, SQLite", lat("meta_sqlite")),
        ("meta upsert, raw sqlite3 baseline", lat("meta_sqlite_raw")),
        ("meta CAS txn, etcd", lat("meta_etcd")),
        (
            f"Zarr segment write, {rows}x384 f32",
            ratio(z["write_MBps"], z["raw_write_MBps"], "raw file"),
        ),
        (
            f"Zarr segment read,  {rows}x384 f32",
            ratio(z["read_MBps"], z["raw_read_MBps"], "raw file"),
        ),
    ]
    width = max(len(k) for k, _ in rows_out)
    print("\n| measurement | result |\n|---|---|")
    for k, v in rows_out:
        print(f"| {k:<{width}} | {v} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "storage.json").write_text(json.dumps(res, indent=2))
    plot(res, OUT / "storage.png")
    print(f"\nwrote {OUT / 'storage.json'} and {OUT / 'storage.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
