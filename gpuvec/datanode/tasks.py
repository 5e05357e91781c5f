"""Task bodies of the data nodes: pure functions of their arguments, safe to retry.

Each reads what it needs from object storage, computes, writes its outputs under
deterministic paths (a retried or duplicated task overwrites the same objects with the
same bytes) and returns a small dict describing them. Nothing here touches meta storage:
the coordinator commits a task's result in a guarded transaction after it returns, so a
task that fails or whose worker dies never leaves a half-registered index.

An index build running on a Dask worker reports its progress (rows added so far) as
scheduler events under :data:`PROGRESS_TOPIC` (``{"key", "done", "total"}``, at most a few
per second), which the gpuvec dashboard page and ``gpuvec demo`` read; run outside a worker
it reports nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.errors import GpuvecError
from gpuvec.index.registry import build_index, dump
from gpuvec.index.threads import faiss_module
from gpuvec.observability.datanode import observed
from gpuvec.storage.objects.deltas import read_delta
from gpuvec.storage.objects.paths import index_path
from gpuvec.storage.objects.segment import SegmentReader, write_segment
from gpuvec.storage.objects.stores import delete_prefix, exists, open_store, put_bytes


@dataclass(frozen=True)
class StoreSpec:
    """How a worker process opens the object store (picklable, no live handles)."""

    uri: str
    endpoint_url: str | None = None

    def open(self) -> Any:
        return open_store(self.uri, endpoint_url=self.endpoint_url)


PROGRESS_TOPIC = "gpuvec-build-progress"
PROGRESS_EVERY_S = 0.25  # the least time between two progress events of one build


def progress_reporter() -> Callable[[int, int], None] | None:
    """``report(done, total)`` that logs the running task's progress on the scheduler
    (throttled; the last step is always sent); None outside a Dask worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
        key = str(worker.get_current_task())
    except (ImportError, ValueError, KeyError):
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        worker.log_event(PROGRESS_TOPIC, {"key": key, "done": int(done), "total": int(total)})

    return report


def build_progress(events: Iterable[tuple[float, Any]]) -> dict[str, tuple[int, int]]:
    """The latest ``(done, total)`` rows of each build key in the scheduler's progress
    events (``(time, {"key", "done", "total"})`` pairs, oldest first)."""
    out: dict[str, tuple[int, int]] = {}
    for _, msg in events:
        if isinstance(msg, dict) and "key" in msg:
            out[str(msg["key"])] = (int(msg.get("done", 0)), int(msg.get("total", 0)))
    return out


@observed("index_build", rows=lambda out: out["rows"])
def build_index_task(
    store: StoreSpec,
    segment_path: str,
    field: str,
    index_id: int,
    index_type: str,
    metric: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Read a sealed segment's vectors, build the index, write its file; return where
    it is, its size, the serving description and the build time (timed and counted in
    the data node's ``gpuvec_datanode_task_*`` metrics, as is a compaction)."""
    t0 = time.perf_counter()
    st = store.open()
    vectors = SegmentReader(st, segment_path).vectors(field)
    # Dask's nanny starts workers with OMP_NUM_THREADS=1: give the build the machine's cores
    # (GPUVEC_BUILD_THREADS overrides), or faiss builds HNSW/IVF on one thread
    threads = int(os.environ.get("GPUVEC_BUILD_THREADS", "0")) or (os.cpu_count() or 1)
    faiss_module().omp_set_num_threads(threads)
    report = progress_reporter()
    if report is not None:
        report(0, len(vectors))
    index = build_index(vectors, metric, index_type, params, report)
    data = dump(index)  # type: ignore[arg-type]
    path = index_path(segment_path, index_id, field)
    put_bytes(st, path, data)
    return {
        "path": path,
        "nbytes": len(data),
        "rows": int(index.ntotal),
        "describe": index.describe() if hasattr(index, "describe") else {},
        "seconds": time.perf_counter() - t0,
    }


def _deletes(st: Any, delta_paths: list[str], pk_is_int: bool) -> tuple[np.ndarray, np.ndarray]:
    """All (pk, delete ts) pairs of the given delta logs."""
    parts = [read_delta(st, path, pk_is_int) for path in delta_paths]
    pks, tss = [p for p, _ in parts], [t for _, t in parts]
    if not pks:
        return np.empty(0, np.int64 if pk_is_int else object), np.empty(0, np.uint64)
    return np.concatenate(pks), np.concatenate(tss)


def _latest(pks: np.ndarray, tss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the latest delete timestamp of each."""
    if len(pks) == 0:
        return pks, tss
    order = np.argsort(pks, kind="stable")
    pks, tss = pks[order], tss[order]
    starts = np.flatnonzero(np.r_[True, pks[1:] != pks[:-1]])
    return pks[starts], np.maximum.reduceat(tss, starts)


def _deleted(pk: np.ndarray, ts: np.ndarray, keys: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """Rows hidden by a delete of their key issued after their insert (vectorised)."""
    if len(keys) == 0 or len(pk) == 0:
        return np.zeros(len(pk), bool)
    pos = np.clip(np.searchsorted(keys, pk), 0, len(keys) - 1)
    return (keys[pos] == pk) & (ts < latest[pos])


@observed("compaction", rows=lambda out: out["rows"] + max(out["dropped"], 0))
def compact_task(
    store: StoreSpec,
    segment_paths: list[str],
    delta_paths: list[str],
    horizon: int,
    new_path: str,
    pk_field: str,
    pk_is_int: bool,
    chunk_rows: int = 8192,
) -> dict[str, Any]:
    """Merge sealed segments into one at ``new_path``, dropping rows deleted at or before
    ``horizon`` (a delete at T hides rows of its key inserted before T). Rows deleted later
    are kept: the delta logs still hide them from reads after their delete, so a read at
    any timestamp after ``horizon`` sees exactly what it saw before. Idempotent: a retry
    after a complete write returns the same segment; a partial one is removed first."""
    t0 = time.perf_counter()
    st = store.open()
    if exists(st, f"{new_path}/zarr.json"):
        try:
            info = SegmentReader(st, new_path).info
            return {"path": new_path, "rows": info.row_count, "ts_min": info.ts_min,
                    "ts_max": info.ts_max, "dropped": -1, "seconds": 0.0}  # fmt: skip
        except GpuvecError:
            delete_prefix(st, new_path)  # an interrupted attempt
    del_pk, del_ts = _deletes(st, delta_paths, pk_is_int)
    old = del_ts <= np.uint64(horizon)
    keys, latest = _latest(del_pk[old], del_ts[old])
    pks, tss, vecs, tables = [], [], {}, []
    dropped = 0
    for path in segment_paths:
        r = SegmentReader(st, path)
        pk_col = r.pk()
        pk = pk_col if pk_is_int else np.array(pk_col.to_pylist(), object)
        ts = r.ts()
        gone = _deleted(pk, ts, keys, latest)
        keep = np.flatnonzero(~gone)
        dropped += int(gone.sum())
        pks.append(pk[keep])
        tss.append(ts[keep])
        for f in r.info.vector_fields():
            vecs.setdefault(f, []).append(r.vectors(f)[keep])
        tables.append(r.table().take(pa.array(keep, pa.int64())))
    pk_all = np.concatenate(pks)
    if len(pk_all) == 0:
        return {"path": None, "rows": 0, "dropped": dropped, "seconds": time.perf_counter() - t0}
    info = write_segment(
        st,
        new_path,
        pk=pk_all if pk_is_int else pa.array(list(pk_all), pa.string()),
        ts=np.concatenate(tss),
        vectors={f: np.concatenate(v) for f, v in vecs.items()},
        scalars=pa.concat_tables(tables),
        chunk_rows=chunk_rows,
    )
    return {"path": new_path, "rows": info.row_count, "ts_min": info.ts_min,
            "ts_max": info.ts_max, "dropped": dropped,
            "seconds": time.perf_counter() - t0}  # fmt: skip
