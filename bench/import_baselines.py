"""The import benchmark's baselines (``bench/import.py``): Milvus Lite's insert path and
this machine's raw sequential disk write rate, on the same data."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from import_data import BATCH, WAIT_S, MiB, add_fields, count, row_batch, settle
from rich.progress import Progress


def bench_lite(root: Path, data: dict[str, np.ndarray], bar: Progress) -> dict[str, Any] | str:
    try:
        from pymilvus import DataType, MilvusClient
    except ImportError as e:
        return f"skipped: pymilvus not importable ({e})"
    rows, dim = data["vector"].shape
    try:
        client = MilvusClient(str(root / "milvus_lite.db"))
    except Exception as e:  # milvus-lite missing or its server did not start
        return f"skipped: Milvus Lite unavailable ({type(e).__name__}: {e})"[:300]
    try:
        schema = MilvusClient.create_schema(auto_id=False)
        add_fields(schema, DataType, dim)
        idx = client.prepare_index_params()  # loaded at create: rows queryable as they land
        idx.add_index("vector", index_type="FLAT", metric_type="L2")
        client.create_collection("b", schema=schema, index_params=idx, consistency_level="Strong")
        task = bar.add_task("milvus-lite insert", total=rows, note="")
        settle()
        t0 = time.perf_counter()
        for s in range(0, rows, BATCH):
            e = min(s + BATCH, rows)
            client.insert("b", row_batch(data, s, e))
            bar.update(task, completed=e)
        insert_s = time.perf_counter() - t0
        bar.update(task, note="flush")
        client.flush("b")
        flush_s = time.perf_counter() - t0
        deadline = time.monotonic() + WAIT_S
        while (got := count(client, "b")) != rows:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{got:,} of {rows:,} rows visible after {WAIT_S} s")
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        bar.remove_task(task)
        return {"seconds": dt, "insert_s": insert_s, "flush_returned_s": flush_s,
                "index": "FLAT (loaded at create)"}  # fmt: skip
    except Exception as e:
        return f"skipped: Milvus Lite failed ({type(e).__name__}: {e})"[:300]
    finally:
        client.close()


def raw_disk_write(vec: np.ndarray, folder: Path, passes: int = 1, block: int = 64 * MiB,
                   fsync_each: bool = False) -> dict[str, Any]:  # fmt: skip
    """The vector bytes written ``passes`` times into ``folder/raw.bin`` with ``block``-byte
    ``write()`` calls: one ``fsync`` at the end, or with ``fsync_each`` one per block (every
    block's milliseconds kept). ``seconds`` is the last pass: past the disk's burst when
    there are several."""
    settle()
    buf = memoryview(np.ascontiguousarray(vec)).cast("B")
    path = folder / "raw.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    passes_s, blocks_ms = [], []
    try:
        for _ in range(passes):
            t0 = time.perf_counter()
            for s in range(0, len(buf), block):
                tb = time.perf_counter()
                chunk, done = buf[s : s + block], 0
                while done < len(chunk):
                    done += os.write(fd, chunk[done:])
                if fsync_each:
                    os.fsync(fd)
                    blocks_ms.append(round((time.perf_counter() - tb) * 1e3, 1))
            if not fsync_each:
                os.fsync(fd)
            passes_s.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    out: dict[str, Any] = {"seconds": passes_s[-1], "block_bytes": block,
                           "fsync": "after every block" if fsync_each else "once, at the end"}
    if passes > 1:
        out["passes_s"] = passes_s
    if fsync_each:
        out["blocks_ms"] = blocks_ms
    return out
