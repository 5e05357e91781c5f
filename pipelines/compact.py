"""The compaction job body: merge sealed segments into one new segment, dropping rows
deleted at or before the horizon. Pure and idempotent (a retry after a complete write
returns the same segment; a partial one is removed first); the coordinator commits the
switch."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
from gpuvec.pipelines.common import StoreSpec

from gpuvec.errors import GpuvecError
from gpuvec.observability.datanode import observed
from gpuvec.storage.objects.deltas import read_delta
from gpuvec.storage.objects.segment import SegmentReader, write_segment
from gpuvec.storage.objects.stores import delete_prefix, exists


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
