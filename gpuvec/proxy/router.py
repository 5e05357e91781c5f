"""Splitting one write into its per-shard parts (the hash itself, :func:`shard_of`, is in
:mod:`gpuvec.records`: bulk import routes with the same rule)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpuvec.arrays import one_array
from gpuvec.records import shard_of

__all__ = ["shard_of", "split_write"]


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
        col = one_array(inserts.column(pk_name))
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
