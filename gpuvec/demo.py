"""The embedded demo (``gpuvec demo``): the three storage layers working together with no
servers — SQLite meta with a leader election, the local WAL, and a Zarr sealed segment.

It plays the write path by hand: a coordinator is elected, a streaming role appends insert
batches to a WAL channel, the batches are sealed into a Zarr segment that is committed in
meta with the WAL checkpoint it covers, and everything is reopened and checked. Vectors
are SYNTHETIC (Gaussian, labelled so in the report); the engine issue replaces this demo.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from gpuvec.storage.meta.base import Compare, Put
from gpuvec.storage.meta.election import Election
from gpuvec.storage.meta.sqlite import SqliteMetaStore
from gpuvec.storage.objects.segment import SegmentReader, write_segment
from gpuvec.storage.objects.stores import open_store
from gpuvec.storage.wal.local import LocalWAL
from gpuvec.storage.wal.record import Record, RecordKind

CHANNEL = "demo-dml_0"
SEGMENT = "collections/1/segments/1/v1"


def _batches(rows: int, dim: int, batch: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        vec = rng.standard_normal((n, dim), dtype=np.float32)
        yield pa.table(
            {
                "pk": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim),
                "title": pa.array([f"synthetic row {i}" for i in range(start, start + n)]),
            }
        )


def run_demo(directory: str, rows: int = 100_000, dim: int = 384, batch: int = 2_000) -> int:
    root = Path(directory)
    shutil.rmtree(root, ignore_errors=True)
    report: list[tuple[str, str]] = []
    rng = np.random.default_rng(7)

    meta = SqliteMetaStore(root / "meta.db")
    coord = Election(meta, "coordinator", ttl=10)
    token = coord.campaign(b"demo-coordinator", timeout=10)
    coord.guarded_txn(
        [Compare("collections/1", "version", "==", 0)],
        [Put("collections/1", json.dumps({"name": "demo", "dim": dim}).encode())],
    )
    report.append(("coordinator elected", f"fencing token {token}"))

    wal = LocalWAL(root / "wal", fsync="group", group_commit_ms=10)
    wal.create_channel(CHANNEL)
    writer = wal.writer(CHANNEL)
    t0, nbytes, ts = time.perf_counter(), 0, 1 << 18
    for table in tqdm(
        _batches(rows, dim, batch, rng), total=-(-rows // batch), desc="WAL inserts", unit="batch"
    ):
        rec = Record.from_arrow(RecordKind.INSERT, CHANNEL, ts, ts, table)
        writer.append(rec)
        nbytes += len(rec.payload)
        ts += 1
    writer.append(Record(RecordKind.TIME_TICK, CHANNEL, ts, ts))
    writer.sync()
    dt = time.perf_counter() - t0
    report.append(
        (
            "WAL append (group commit)",
            f"{rows:,} rows, {nbytes / 1e6:.0f} MB in {dt:.2f} s = {nbytes / dt / 1e6:.0f} MB/s",
        )
    )

    # seal: replay the channel from its start and write one Zarr segment
    t0 = time.perf_counter()
    reader = wal.reader(CHANNEL, 0)
    tables, tss, last = [], [], 0
    while recs := reader.poll(timeout=0.1, max_records=256):
        for pos, rec in recs:
            last = pos
            if rec.kind == RecordKind.INSERT:
                t = rec.table()
                tables.append(t)
                tss.append(np.full(t.num_rows, rec.ts_begin, np.uint64))
    data = pa.concat_tables(tables)
    vectors = data.column("vec").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    store = open_store(root / "objects")
    info = write_segment(
        store,
        SEGMENT,
        pk=data.column("pk").to_numpy(),
        ts=np.concatenate(tss),
        vectors={"vec": vectors},
        scalars=data.select(["title"]),
        checkpoint={CHANNEL: last + 1},
    )
    coord.guarded_txn(
        [],
        [
            Put(
                "collections/1/segments/1",
                json.dumps({"path": SEGMENT, "rows": info.row_count}).encode(),
            )
        ],
    )
    dt = time.perf_counter() - t0
    report.append(
        (
            "seal WAL -> Zarr segment",
            f"{info.row_count:,} rows in {dt:.2f} s; checkpoint {info.checkpoint}",
        )
    )
    coord.resign()
    reader.close()
    wal.close()
    meta.close()

    # reopen everything, as a restarted node would
    meta = SqliteMetaStore(root / "meta.db")
    pointer = json.loads(meta.get("collections/1/segments/1").value)  # type: ignore[union-attr]
    seg = SegmentReader(open_store(root / "objects", read_only=True), pointer["path"])
    t0 = time.perf_counter()
    loaded = seg.vectors("vec")
    dt = time.perf_counter() - t0
    report.append(
        (
            "Zarr segment load",
            f"{loaded.nbytes / 1e6:.0f} MB in {dt:.2f} s = {loaded.nbytes / dt / 1e9:.2f} GB/s",
        )
    )
    seg.verify()
    assert np.array_equal(loaded, vectors), "reopened segment differs from what was written"
    wal = LocalWAL(root / "wal")
    tail = wal.high_watermark(CHANNEL) - seg.info.checkpoint[CHANNEL]
    report.append(("restart check", f"segment verified; WAL records after checkpoint: {tail}"))

    picked = rng.integers(0, len(loaded), 5)
    q = loaded[picked] + 0.01
    d = (q * q).sum(1)[:, None] - 2 * q @ loaded.T + (loaded * loaded).sum(1)[None, :]
    pks = seg.pk()
    hits = [int(pks[i]) for i in np.argmin(d, axis=1)]
    want = [int(pks[i]) for i in picked]
    report.append(
        (
            "brute-force L2 top-1 of 5 perturbed rows",
            f"pks {hits} ({'all' if hits == want else 'NOT all'} their own rows)",
        )
    )
    wal.close()
    meta.close()

    print(f"\ngpuvec storage demo — SYNTHETIC Gaussian vectors, {rows:,} × {dim}-d, in {root}/")
    width = max(len(k) for k, _ in report)
    for k, v in report:
        print(f"  {k:<{width}}  {v}")
    return 0
