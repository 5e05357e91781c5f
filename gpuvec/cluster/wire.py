"""Wire forms of what roles exchange besides Arrow tables: meta transactions (a node's
catalog change executed by the active coordinator under its leader guard) and numpy
arrays as Arrow columns."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.arrays import one_array
from gpuvec.sparse import SparseRows
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    Get,
    KeyValue,
    Op,
    Put,
    TxnResult,
)


def _b(v: bytes) -> str:
    return base64.b64encode(v).decode()


def _unb(s: str) -> bytes:
    return base64.b64decode(s)


def dump_compare(c: Compare) -> dict[str, Any]:
    if isinstance(c.value, bytes):
        return {"key": c.key, "target": c.target, "op": c.op, "bytes": _b(c.value)}
    return {"key": c.key, "target": c.target, "op": c.op, "int": int(c.value)}


def load_compare(d: dict[str, Any]) -> Compare:
    value = _unb(d["bytes"]) if "bytes" in d else int(d["int"])
    return Compare(d["key"], d["target"], d["op"], value)


def dump_op(op: Op) -> dict[str, Any]:
    if isinstance(op, Put):
        return {"put": op.key, "value": _b(op.value), "lease": op.lease}
    if isinstance(op, Delete):
        return {"delete": op.key}
    if isinstance(op, DeletePrefix):
        return {"delete_prefix": op.prefix}
    if isinstance(op, Get):
        return {"get": op.key}
    raise TypeError(f"not a meta op: {op!r}")


def load_op(d: dict[str, Any]) -> Op:
    if "put" in d:
        return Put(d["put"], _unb(d["value"]), int(d.get("lease", 0)))
    if "delete" in d:
        return Delete(d["delete"])
    if "delete_prefix" in d:
        return DeletePrefix(d["delete_prefix"])
    if "get" in d:
        return Get(d["get"])
    raise ValueError(f"not a meta op: {d!r}")


def dump_result(r: TxnResult) -> dict[str, Any]:
    resp = []
    for kv in r.responses:
        if kv is None:
            resp.append(None)
        else:
            resp.append(
                {
                    "key": kv.key,
                    "value": _b(kv.value),
                    "c": kv.create_revision,
                    "m": kv.mod_revision,
                    "v": kv.version,
                    "l": kv.lease,
                }
            )
    return {"succeeded": r.succeeded, "revision": r.revision, "responses": resp}


def load_result(d: dict[str, Any]) -> TxnResult:
    resp = [
        None
        if kv is None
        else KeyValue(kv["key"], _unb(kv["value"]), kv["c"], kv["m"], kv["v"], kv["l"])
        for kv in d["responses"]
    ]
    return TxnResult(d["succeeded"], d["revision"], resp)


def array_table(name: str, arr: np.ndarray) -> pa.Table:
    """A 1-D array as a one-column table, a 2-D float array as fixed-size lists."""
    if arr.ndim == 2:
        flat = pa.array(np.ascontiguousarray(arr).ravel())
        return pa.table({name: pa.FixedSizeListArray.from_arrays(flat, arr.shape[1])})
    if arr.dtype == object:
        return pa.table({name: pa.array(arr.tolist())})
    return pa.table({name: pa.array(arr)})


def query_matrix(table: pa.Table) -> Any:
    """A search's query vectors from their wire table: float32 rows, the packed uint8
    rows of a BINARY_VECTOR search, as sent, or a SPARSE_FLOAT_VECTOR search's cells as
    :class:`~gpuvec.sparse.SparseRows`."""
    col = table.column("q")
    if pa.types.is_binary(col.type):
        return SparseRows.from_cells(col)
    q = table_array(table, "q")
    return q if q.dtype == np.uint8 else q.astype(np.float32, copy=False)


def table_array(table: pa.Table, name: str) -> np.ndarray:
    col = one_array(table.column(name))
    if pa.types.is_fixed_size_list(col.type):
        return col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy()
    return np.array(col.to_pylist(), object)
