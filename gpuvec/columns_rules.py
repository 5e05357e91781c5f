"""Which column data gpuvec accepts, and the column-level rules: shared by
:func:`gpuvec.columns.columns_to_table` (client inserts) and the bulk-import pre-checks
(:mod:`gpuvec.pipelines.sources`), so that a file is refused for the same reasons, in the
same words, as the same columns given to ``insert``.

- :func:`is_column_data` tells column data (Arrow, pandas, a dict of columns) from rows;
- :func:`check_columns` says which columns a batch may carry (unknown ones, ``$meta``, the
  auto_id primary key, fields that are neither nullable nor defaulted);
- :func:`column_type_problem` / :func:`vector_dim_problem` judge a whole column's NumPy
  dtype or Arrow type, and a vector column's dimension, before any value is read.

pandas is never imported by these checks: they look at an object's class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.datatypes import INT_RANGES, DataType
from gpuvec.errors import DataError, InvalidArgumentError, SchemaError
from gpuvec.functions import refuse_given
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, FieldSchema

__all__ = [
    "check_columns",
    "column_data_rows",
    "column_type_problem",
    "is_column_data",
    "is_frame",
    "is_series",
    "is_vector_column",
    "pandas_module",
    "vector_dim_problem",
]

_FLOATS = (DataType.FLOAT, DataType.DOUBLE)
_KINDS = {DataType.BOOL: "b", DataType.FLOAT: "iuf", DataType.DOUBLE: "iuf"}
_KINDS |= {t: "iu" for t in INT_RANGES}
_WORDS = {DataType.BOOL: "bools", DataType.VARCHAR: "strings", DataType.JSON: "JSON values"}
_WORDS |= {DataType.FLOAT: "numbers", DataType.DOUBLE: "numbers", DataType.ARRAY: "lists"}
_WORDS |= {t: "integers" for t in INT_RANGES}


# -- what counts as column data -----------------------------------------------------------
def pandas_module() -> Any:
    """pandas, imported on demand: only called once a Series or DataFrame exists."""
    import pandas

    return pandas


def _is_pandas(v: Any, name: str) -> bool:
    """Is ``v`` a pandas ``name`` (Series, DataFrame)? Decided from its class alone, so
    pandas is never imported here, nor read from ``sys.modules`` half-initialised
    (another thread may be importing it)."""
    return any(
        c.__name__ == name and (c.__module__ == "pandas" or c.__module__.startswith("pandas."))
        for c in type(v).__mro__
    )


def is_series(v: Any) -> bool:
    return _is_pandas(v, "Series")


def is_frame(v: Any) -> bool:
    return _is_pandas(v, "DataFrame")


def _is_column(v: Any) -> bool:
    if isinstance(v, np.ndarray):
        return v.ndim >= 1
    return isinstance(v, list | tuple | pa.Array | pa.ChunkedArray) or is_series(v)


def is_vector_column(v: Any) -> bool:
    """A column of vectors: a 2-D array, or a list/Series/1-D object array of sequences."""
    if isinstance(v, pa.Array | pa.ChunkedArray):
        t = v.type
        return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if isinstance(v, np.ndarray):
        return v.ndim == 2 or (v.ndim == 1 and v.dtype == object and len(v) > 0 and _seq(v[0]))
    if isinstance(v, list | tuple):
        return len(v) > 0 and _seq(v[0])
    return is_series(v) and len(v) > 0 and _seq(v.iloc[0])


def _seq(v: Any) -> bool:
    return isinstance(v, list | tuple) or (isinstance(v, np.ndarray) and v.ndim == 1)


def is_column_data(schema: CollectionSchema, data: Any) -> bool:
    """Is ``data`` columns rather than rows? A pyarrow Table/RecordBatch or a pandas
    DataFrame always is; a dict is when its first vector field's value is 2-D and every
    value is a column (array, list, Series, pyarrow array). Any other dict is one row, as
    pymilvus treats a dict."""
    if isinstance(data, pa.Table | pa.RecordBatch) or is_frame(data):
        return True
    if not isinstance(data, dict) or not data or not schema.vector_fields:
        return False
    first = schema.vector_fields[0].name
    return first in data and is_vector_column(data[first]) and all(map(_is_column, data.values()))


def column_data_rows(data: Any) -> int:
    """Number of rows of column data (the length of its first column; 0 when empty)."""
    if isinstance(data, pa.Table | pa.RecordBatch):
        return data.num_rows
    if isinstance(data, dict):
        return len(next(iter(data.values()))) if data else 0
    return len(data)


# -- column-level rules (shared with the import pre-checks) -------------------------------
def check_columns(
    schema: CollectionSchema,
    names: Iterable[Any],
    where: str,
    *,
    operation: str = "insert",
    allow_insert_auto_id: bool = False,
) -> bool:
    """The rules on which columns a batch (or an import file) may carry, raising
    :class:`DataError` prefixed ``where``: no unknown column unless the dynamic field is
    enabled (``$meta`` is then the dynamic field itself), no auto_id primary key on an
    insert (unless ``allow_insert_auto_id``), every field that is neither nullable nor
    defaulted present. Returns whether the primary key is to be generated."""
    names = list(names)
    fields = set(schema.field_names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: invalid column name {name!r}")
        if name not in fields and not schema.enable_dynamic_field:
            why = "" if name == DYNAMIC_FIELD_NAME else "the collection has no such field and "
            raise DataError(
                f"{where}: unexpected field {name!r}: {why}its dynamic field is not enabled"
            )
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    generated = pk.auto_id and operation == "insert"
    if generated and pk.name in names:
        if not allow_insert_auto_id:
            raise DataError(
                f"{where}: field {pk.name!r} is the auto_id primary key, do not pass it "
                "(Milvus: can not assign primary field data when auto id enabled)"
            )
        generated = False
    outputs = schema.function_outputs()
    for f in schema.fields:
        if f.name in outputs:  # computed by its function: never given
            if f.name in names:
                refuse_given(schema, f.name, where)
            continue
        if f.name in names or f.nullable or f.default_value is not None:
            continue
        if not (f.is_primary and generated):
            raise DataError(
                f"{where}: missing field {f.name!r}, which is not nullable and has no default_value"
            )
    return generated


def column_type_problem(
    field: FieldSchema, dtype: np.dtype | pa.DataType, ndim: int = 1
) -> str | None:
    """Why a whole column of this NumPy dtype (and ``ndim``) or Arrow type cannot fill
    ``field`` (``"expects integers (INT32), got float64"``), or None when it may."""
    dt = field.dtype
    if dt == DataType.SPARSE_FLOAT_VECTOR:  # dicts, pairs, cells or JSON text: row by row
        return None
    what = f"expects {_WORDS.get(dt, 'vectors')} ({dt.name}), got"
    if isinstance(dtype, pa.DataType):
        if pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        ok = _arrow_fits(dt, dtype)
        return None if ok else f"{what} Arrow type {dtype}"
    if dtype.kind == "O":
        return None  # Python objects: checked value by value
    if dt == DataType.FLOAT_VECTOR:
        if ndim != 2 or dtype.kind not in "fiu":
            return f"expects a 2-D array of numbers [rows, {field.dim}], got {ndim}-D {dtype}"
        return None
    if dt.is_vector:  # FLOAT16 / BFLOAT16 / INT8 / BINARY: values checked by vector_input
        numeric = dtype.kind in "fiub" or dtype.name == "bfloat16"
        if ndim != 2 or not numeric:
            cols = f"{field.dim // 8} bytes" if dt == DataType.BINARY_VECTOR else field.dim
            return f"expects a 2-D array of numbers [rows, {cols}], got {ndim}-D {dtype}"
        return None
    if dt == DataType.ARRAY:
        return None if ndim == 2 and dtype.kind != "U" else f"{what} {ndim}-D {dtype}"
    if ndim != 1:
        return f"{what} a {ndim}-D array; a scalar column must be 1-D"
    kinds = _KINDS.get(dt, "U")
    return None if dtype.kind in kinds else f"{what} {dtype}"


def _arrow_fits(dt: DataType, t: pa.DataType) -> bool:
    if pa.types.is_null(t) or dt == DataType.JSON:
        return True  # all nulls; JSON values are checked one by one
    if dt == DataType.BOOL:
        return pa.types.is_boolean(t)
    if dt in INT_RANGES:
        return pa.types.is_integer(t)
    if dt in _FLOATS:
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    if dt == DataType.VARCHAR:
        view = getattr(pa.types, "is_string_view", lambda _: False)(t)
        return pa.types.is_string(t) or pa.types.is_large_string(t) or view
    listy = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if dt == DataType.ARRAY:
        return listy
    vt = t.value_type if listy else None
    if dt.is_vector and dt != DataType.FLOAT_VECTOR and pa.types.is_binary(t):
        return True  # raw vector bytes, one value per row
    if dt.is_vector and dt != DataType.FLOAT_VECTOR and pa.types.is_fixed_size_binary(t):
        return True
    return vt is not None and (pa.types.is_integer(vt) or pa.types.is_floating(vt))


def vector_dim_problem(field: FieldSchema, got: int) -> str | None:
    """The message for vectors of dimension ``got`` (columns of a 2-D array: bytes for a
    BINARY_VECTOR field) in ``field``, or None when it fits."""
    want = (field.dim or 0) // 8 if field.dtype == DataType.BINARY_VECTOR else field.dim
    if got == want:
        return None
    if field.dtype in (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR) and got == 2 * want:
        return None  # the rows' raw bytes (pymilvus's bulk writer); checked with the values
    if field.dtype == DataType.BINARY_VECTOR:
        return f"binary vectors have {got} bytes, the field's dim {field.dim} takes {want}"
    return f"vectors have dim {got}, the field's dim is {field.dim}"


def last_of_each_key(op: str, table: Any, ids: list[Any]) -> Any:
    """A batch that repeats a primary key: an upsert is refused (as Milvus refuses it);
    an insert keeps each key's last row (a key written twice is one entity, the newest)."""
    if len(set(ids)) == len(ids):
        return table
    if op == "upsert":
        seen: set[Any] = set()
        dup = next(k for k in ids if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidArgumentError(
            f"duplicate primary keys are not allowed in the same batch (primary key {dup!r} "
            "appears more than once)"
        )
    last = {k: i for i, k in enumerate(ids)}
    return table.take(sorted(last.values()))
