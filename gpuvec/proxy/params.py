"""Validation of read-request parameters in the client facade (and so for the gRPC server
and the cluster proxy, which run the same facade): query vectors, metric, vector field,
result window and primary-key arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.records import CollectionView
from gpuvec.schema import CollectionSchema, FieldSchema

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
    index = next((i for i in coll.meta.index_params if i["field_name"] == field), None)
    indexed = index["metric_type"] if index else "COSINE"
    asked = str((search_params or {}).get("metric_type") or indexed).upper()
    if asked != indexed:
        raise InvalidArgumentError(
            f"metric type not match: the index of {field!r} uses {indexed}, "
            f"the search asked {asked}"
        )
    return asked


def query_vectors(data: Any, dim: int) -> np.ndarray:
    if data is None:
        raise InvalidArgumentError("search needs data (query vectors)")
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


def index_search_params(search_params: dict | None) -> dict[str, Any]:
    """The index knobs of pymilvus ``search_params``: its ``params`` dict (``nprobe``,
    ``ef`` ...) merged over any given at the top level."""
    sp = dict(search_params or {})
    inner = sp.pop("params", None)
    if inner is not None and not isinstance(inner, dict):
        raise InvalidArgumentError(f"search_params['params'] must be a dict, got {inner!r}")
    return {**sp, **(inner or {})}
