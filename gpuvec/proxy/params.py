"""Validation of read-request parameters in the client facade (and so for the gRPC server
and the cluster proxy, which run the same facade): query vectors, metric, vector field,
result window and primary-key arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec import sparse, vectors
from gpuvec.datatypes import DataType
from gpuvec.errors import DataError, InvalidArgumentError
from gpuvec.records import CollectionView
from gpuvec.schema import CollectionSchema, FieldSchema
from gpuvec.sparse import SparseRows
from gpuvec.vector_input import matrix_from_2d, matrix_from_values

MAX_TOPK = 16384


def window(limit: Any, offset: Any, op: str) -> tuple[int | None, int]:
    """Validated (limit, offset) of a query: offset + limit within Milvus's result window."""
    for name, v in (("limit", limit), ("offset", offset)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)):
            raise InvalidArgumentError(f"{op} {name} must be an integer, got {v!r}")
    off = int(offset or 0)
    if off < 0 or (limit is not None and int(limit) < 0):
        raise InvalidArgumentError(f"{op} limit and offset must be >= 0, got {limit!r}, {offset!r}")
    if limit is not None and off + int(limit) > MAX_TOPK:
        raise InvalidArgumentError(
            f"invalid max query result window: offset {off} + limit {limit} must be in "
            f"[1, {MAX_TOPK}]"
        )
    return (None if limit is None else int(limit)), off


def np_keys(keys: list[Any]) -> np.ndarray:
    if keys and isinstance(keys[0], str):
        return np.array(keys, object)
    return np.asarray(keys, np.int64)


def vector_field(schema: CollectionSchema, anns_field: str | None) -> FieldSchema:
    vecs = schema.vector_fields
    if anns_field:
        f = schema.field(anns_field)
        if not f.is_vector:
            raise InvalidArgumentError(f"anns_field {anns_field!r} is not a vector field")
        return f
    if len(vecs) != 1:
        raise InvalidArgumentError(
            f"the collection has {len(vecs)} vector fields: name one with anns_field"
        )
    return vecs[0]


def metric_of(coll: CollectionView, field: str, search_params: dict | None) -> str:
    """The search's metric: the field's index's (Milvus's default for the field's type —
    COSINE, or HAMMING for binary vectors — without one); a different one asked for is
    refused as Milvus refuses it."""
    index = next((i for i in coll.meta.index_params if i["field_name"] == field), None)
    f = coll.schema.field(field)
    default = vectors.kind(f.dtype).default_metric if f.dtype in vectors.KINDS else "COSINE"
    indexed = index["metric_type"] if index else default
    asked = str((search_params or {}).get("metric_type") or indexed).upper()
    if asked != indexed:
        raise InvalidArgumentError(
            f"metric type not match: the index of {field!r} uses {indexed}, "
            f"the search asked {asked}"
        )
    return asked


def query_vectors(data: Any, field: FieldSchema | int) -> np.ndarray:
    """Search data as the matrix a segment search takes: float32 [nq, dim] for the dense
    vector types (FLOAT16 / BFLOAT16 / INT8 values converted), packed uint8 [nq, dim / 8]
    for BINARY_VECTOR. ``field`` may be a bare dim (a FLOAT_VECTOR field)."""
    if data is None:
        raise InvalidArgumentError("search needs data (query vectors)")
    if isinstance(field, FieldSchema) and field.dtype != DataType.FLOAT_VECTOR:
        return _typed_queries(data, field)
    dim = int(field if isinstance(field, int) else field.dim or 0)
    arr = data if isinstance(data, np.ndarray) else None
    if arr is None:
        items = list(data)
        if items and not isinstance(items[0], list | tuple | np.ndarray):
            items = [items]
        try:
            arr = np.asarray(items, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"search data must be vectors of {dim} floats: {e}") from e
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidArgumentError(
            f"search data has shape {arr.shape}; the vector field's dimension is {dim}"
        )
    if len(arr) == 0:
        raise InvalidArgumentError("search data is empty")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidArgumentError(f"search data[{bad}] contains NaN or infinity")
    return arr


def sparse_queries(data: Any, field: FieldSchema) -> SparseRows:
    """Search data of a SPARSE_FLOAT_VECTOR field: one sparse vector (a dict, a SciPy row)
    or a list of them, or a SciPy matrix of several rows → :class:`SparseRows`."""
    if isinstance(data, dict) or (hasattr(data, "tocoo") and getattr(data, "shape", (1,))[0] == 1):
        items = [data]
    elif hasattr(data, "tocsr") and hasattr(data, "shape"):  # a SciPy matrix: its rows
        csr = data.tocsr()
        items = [csr[i] for i in range(csr.shape[0])]
    else:
        items = list(data)
    try:
        cells = [sparse.encode(v, f"search data[{i}]") for i, v in enumerate(items)]
    except DataError as e:
        raise InvalidArgumentError(f"{e} (field {field.name!r}, SPARSE_FLOAT_VECTOR)") from None
    if not cells:
        raise InvalidArgumentError("search data is empty")
    return SparseRows.from_cells(cells)


def _typed_queries(data: Any, field: FieldSchema) -> Any:
    if field.dtype == DataType.SPARSE_FLOAT_VECTOR:
        return sparse_queries(data, field)
    k = vectors.kind(field.dtype)
    try:
        if isinstance(data, np.ndarray) and data.ndim == 2:
            mat = matrix_from_2d(field, data, lambda i: f"search data[{i}]")
        else:
            items = [data] if isinstance(data, bytes | bytearray | np.ndarray) else list(data)
            if items and not k.binary and not isinstance(items[0], list | tuple | np.ndarray
                                                         | bytes | bytearray):  # fmt: skip
                items = [items]  # one vector as a flat list of numbers
            mat = matrix_from_values(field, items, lambda i: f"search data[{i}]")
    except DataError as e:
        raise InvalidArgumentError(f"{e} (field {field.name!r}, {k.name})") from None
    if len(mat) == 0:
        raise InvalidArgumentError("search data is empty")
    return mat if k.binary else mat.astype(np.float32)


def index_search_params(search_params: dict | None) -> dict[str, Any]:
    """The index knobs of pymilvus ``search_params``: its ``params`` dict (``nprobe``,
    ``ef`` ...) merged over any given at the top level."""
    sp = dict(search_params or {})
    inner = sp.pop("params", None)
    if inner is not None and not isinstance(inner, dict):
        raise InvalidArgumentError(f"search_params['params'] must be a dict, got {inner!r}")
    return {**sp, **(inner or {})}
