"""Delta logs: the deletes a channel saw between two seals, as one Parquet object of
``(pk, ts)`` rows beside the sealed segments. Owns their writing and reading (their path is in
:mod:`gpuvec.storage.objects.paths`)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from zarr.abc.store import Store

from gpuvec.arrays import one_array
from gpuvec.storage.objects.paths import delta_path
from gpuvec.storage.objects.stores import get_bytes, put_bytes

__all__ = ["delta_path", "read_delta", "write_delta"]  # delta_path: see paths.py


def write_delta(store: Store, path: str, pks: np.ndarray, tss: np.ndarray, pk_is_int: bool) -> None:
    pk_arr = pa.array(pks) if pk_is_int else pa.array(list(pks), pa.string())
    buf = io.BytesIO()
    pq.write_table(pa.table({"pk": pk_arr, "ts": np.asarray(tss, np.uint64)}), buf)
    put_bytes(store, path, buf.getvalue())


def read_delta(store: Store, path: str, pk_is_int: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(pks, delete timestamps)``; string keys come back as an object array."""
    t = pq.read_table(io.BytesIO(get_bytes(store, path)))
    col = one_array(t.column("pk"))
    pks = col.to_numpy() if pk_is_int else np.array(col.to_pylist(), object)
    return pks, t.column("ts").to_numpy().astype(np.uint64)
