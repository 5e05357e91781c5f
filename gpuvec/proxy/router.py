"""Routing rows to shards by primary-key hash (stable across processes and restarts), and
splitting one write into its per-shard parts."""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def shard_of(pks: np.ndarray, num_shards: int) -> np.ndarray:
    """Shard index of each primary key (int64 keys: Fibonacci hash; strings: CRC32)."""
    if num_shards == 1:
        return np.zeros(len(pks), np.int64)
    if pks.dtype.kind in "iu":
        with np.errstate(over="ignore"):
            h = pks.astype(np.uint64) * _GOLDEN
        return ((h >> np.uint64(33)) % np.uint64(num_shards)).astype(np.int64)
    return np.fromiter(
        (zlib.crc32(str(p).encode()) % num_shards for p in pks), np.int64, count=len(pks)
    )


def split_write(
    pk_name: str,
    num_shards: int,
    inserts: pa.Table | None,
    delete_pks: np.ndarray | None,
) -> list[tuple[int, pa.Table | None, pa.Table | None]]:
    """``(shard, its inserted rows, its deleted keys as a one-column table)`` for every
    shard the write touches."""
    ins_shard = del_shard = None
    if inserts is not None:
        col = inserts.column(pk_name).combine_chunks()
        pks = col.to_numpy() if pa.types.is_integer(col.type) else np.array(col.to_pylist(), object)
        ins_shard = shard_of(pks, num_shards)
    if delete_pks is not None:
        del_shard = shard_of(delete_pks, num_shards)
    out = []
    for i in range(num_shards):
        ins = dels = None
        if ins_shard is not None:
            sel = np.flatnonzero(ins_shard == i)
            ins = inserts.take(pa.array(sel)) if len(sel) else None  # type: ignore[union-attr]
        if del_shard is not None:
            sel_pks = delete_pks[del_shard == i]  # type: ignore[index]
            if len(sel_pks):
                arr = pa.array(list(sel_pks)) if sel_pks.dtype == object else pa.array(sel_pks)
                dels = pa.table({pk_name: arr})
        if ins is not None or dels is not None:
            out.append((i, ins, dels))
    return out
