"""Column data ⇄ one validated Arrow table, vectorised: the columnar twin of
:func:`gpuvec.rows.rows_to_table`.

Column data is a ``pyarrow.Table``/``RecordBatch``, a pandas ``DataFrame`` or a dict of
columns (NumPy arrays — ``np.memmap`` included, a vector field as one 2-D ``[n, dim]``
array —, pyarrow arrays, pandas Series or Python lists). :func:`columns_to_table` returns
exactly what ``rows_to_table`` returns for the same data given as rows, and refuses what it
refuses, with messages in its style (``insert row 3, field 'age': ...``; with
``source="data.parquet"``: ``data.parquet row 1003, field 'age': ...``).

Invariants:

- Numeric, bool, string and vector columns held in NumPy or Arrow are checked with NumPy
  and ``pyarrow.compute`` over whole columns, never a Python loop per row. A vector array
  is copied exactly once, block by block, into the float32 buffer the Arrow column wraps
  (a memory-mapped array is read once and never materialised twice).
- The *rules* live in :mod:`gpuvec.rows`: a vectorised check only finds the first bad
  index; the reason is then produced by running that one value through
  :func:`~gpuvec.rows.rows_to_table`, and columns it cannot vectorise (Python lists of
  mixed types, JSON, ARRAY, object arrays) go through ``rows_to_table`` whole. Either way
  the error is re-addressed to ``<source or op> row <row_offset + i>``.
- Column-level problems (unknown or missing column, wrong dtype of a whole column,
  vector dimension, unequal lengths) name the column, the expected and the actual.
- Nothing is returned on error: the whole batch is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuvec import vectors as vk
from gpuvec.arrays import one_array
from gpuvec.columns_rules import (
    check_columns,
    column_data_rows,
    column_type_problem,
    is_column_data,
    is_frame,
    is_series,
    is_vector_column,
    pandas_module,
    vector_dim_problem,
)
from gpuvec.datatypes import INT_RANGES, DataType
from gpuvec.errors import DataError, InvalidArgumentError, SchemaError
from gpuvec.functions import apply_functions
from gpuvec.rows import rows_to_table
from gpuvec.rows_json import json_text, load_json
from gpuvec.schema import (
    DYNAMIC_FIELD_NAME,
    FLOAT32_MAX,
    CollectionSchema,
    FieldSchema,
    arrow_schema,
    arrow_type,
)
from gpuvec.vector_input import matrix_from_2d, matrix_from_values

__all__ = [  # the column rules are re-exported from gpuvec.columns_rules
    "check_columns",
    "column_data_rows",
    "column_type_problem",
    "columns_to_table",
    "is_column_data",
    "vector_dim_problem",
]

_FLOATS = (DataType.FLOAT, DataType.DOUBLE)
_NUMPY: dict[DataType, type] = {DataType.BOOL: np.bool_, DataType.FLOAT: np.float32}
_NUMPY |= {DataType.DOUBLE: np.float64}
_NUMPY |= {t: np.dtype(f"int{8 << i}").type for i, t in enumerate(INT_RANGES)}
_BLOCK_BYTES = 1 << 24  # vectors are copied and checked in blocks of about 16 MiB
_ROW = re.compile(r"(?:insert|upsert) row (\d+)")
_PK = "$pk"  # the stand-in primary key of the one-field schemas (never a valid field name)


# -- column data -> table -----------------------------------------------------------------
class _Ctx:
    """Where errors point: ``<source or op> row <offset + i>, field 'x'``."""

    def __init__(self, op: str, source: str, offset: int) -> None:
        self.op, self.prefix, self.offset = op, source or op, offset
        self.where = source or f"{op} data"

    def column(self, name: str, problem: str) -> NoReturn:
        raise DataError(f"{self.where}, column {name!r}: {problem}")

    def readdress(self, e: DataError, base: int = 0) -> DataError:
        """rows_to_table's error for rows numbered from 0 → rows of this batch."""
        m = _ROW.match(e.message)
        if m is None:
            return e
        row = self.offset + base + int(m.group(1))
        return DataError(f"{self.prefix} row {row}{e.message[m.end() :]}", code=e.code)

    def rows(self, field: FieldSchema, values: list[Any], base: int = 0) -> pa.Array:
        """One column through rows_to_table (every rule, rows' messages)."""
        pk = field.is_primary
        f = FieldSchema.from_dict({**field.to_dict(), "auto_id": False, "is_primary": pk})
        stand_in = [] if pk else [FieldSchema(_PK, DataType.INT64, is_primary=True, auto_id=True)]
        schema = CollectionSchema([*stand_in, f])
        try:
            table = rows_to_table(schema, [{field.name: v} for v in values])
        except DataError as e:
            raise self.readdress(e, base) from None
        return one_array(table.column(field.name))

    def refuse(self, field: FieldSchema, value: Any, i: int) -> NoReturn:
        """Raise rows_to_table's error for ``value`` as row ``i`` of ``field``."""
        self.rows(field, [value], base=i)
        raise DataError(f"{self.prefix} row {self.offset + i}, field {field.name!r}: invalid")


def columns_to_table(
    schema: CollectionSchema,
    data: Any,
    *,
    operation: str = "insert",
    auto_ids: Sequence[int] | np.ndarray | None = None,
    row_offset: int = 0,
    source: str = "",
    allow_insert_auto_id: bool = False,
) -> pa.Table:
    """Validate column data against a validated schema; return what
    :func:`~gpuvec.rows.rows_to_table` returns for the same rows (columns of
    :func:`~gpuvec.schema.arrow_schema`, auto ids, defaults, nulls, ``$meta``).

    Columns that are not fields become keys of the dynamic field ``$meta`` (a null value
    leaves the key out of that row); a ``$meta`` column (JSON objects, as text or dicts:
    pymilvus's bulk files) is merged in first. In a pandas float column NaN is a missing
    value (null); elsewhere NaN is refused as rows refuse it. Errors name ``source``
    (else the operation), the row ``row_offset + i``, the field and the reason."""
    if operation not in ("insert", "upsert"):
        raise InvalidArgumentError(f"operation must be 'insert' or 'upsert', got {operation!r}")
    ctx = _Ctx(operation, source, row_offset)
    cols = _columns(data, ctx)
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    if auto_ids is not None and not pk.auto_id:
        raise InvalidArgumentError("auto_ids is only for inserts into auto_id collections")
    n = _row_count(cols, ctx)
    generated = check_columns(
        schema, cols, ctx.where, operation=operation, allow_insert_auto_id=allow_insert_auto_id
    )
    arrays: list[pa.Array] = []
    for field in schema.fields:
        if field.is_primary and generated:
            if auto_ids is not None:
                ids = np.asarray(auto_ids, dtype=np.int64)
                if ids.shape != (n,):
                    raise InvalidArgumentError(f"auto_ids has shape {ids.shape}, need ({n},)")
                arrays.append(pa.array(ids if field.dtype == DataType.INT64 else ids.astype(str)))
            continue
        if field.name not in cols:  # nullable, defaulted or a function's output
            empty = pa.nulls(n, arrow_type(field))
            default = field.default_value
            arrays.append(empty if default is None else empty.fill_null(default))
            continue
        arrays.append(_field_array(field, cols[field.name], n, ctx))
    if schema.enable_dynamic_field:
        extra = {k: v for k, v in cols.items() if k not in schema}
        arrays.append(_meta_column(extra, n, ctx))
    include_pk = not generated or auto_ids is not None
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(schema, include_pk=include_pk))
    return apply_functions(schema, table) if schema.functions else table


Column = np.ndarray | pa.Array | pa.ChunkedArray | list


def _columns(data: Any, ctx: _Ctx) -> dict[str, Column]:
    if isinstance(data, pa.Table | pa.RecordBatch):
        items = list(zip(data.column_names, data.columns, strict=True))
    elif isinstance(data, dict) or is_frame(data):
        items = list(data.items())
    else:
        raise DataError(
            f"{ctx.where} must be a pyarrow Table, a pandas DataFrame or a dict of columns, "
            f"got {type(data).__name__}"
        )
    out: dict[str, Column] = {}
    for name, col in items:
        if name in out:
            ctx.column(name, "appears twice")
        out[name] = _normalise(name, col, ctx)
    return out


def _normalise(name: Any, col: Any, ctx: _Ctx) -> Column:
    if is_series(col):
        if pandas_module().api.types.is_extension_array_dtype(col.dtype):
            col = pa.array(col)  # nullable ints, strings, categories: pd.NA becomes null
        elif col.dtype == object:
            return col.astype(object).where(col.notna(), None).tolist()
        elif col.dtype.kind == "f":
            col = pa.Array.from_pandas(col)  # pandas' missing values (NaN) become null
        else:
            return col.to_numpy()
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            col = col.chunk(0)
        elif not is_vector_column(col):
            col = one_array(col)
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col.dictionary_decode() if pa.types.is_dictionary(col.type) else col
    if isinstance(col, np.ma.MaskedArray) and col.ndim == 1:
        return pa.array(np.asarray(col.data), mask=np.ma.getmaskarray(col))
    if isinstance(col, np.ndarray) and col.ndim >= 1:
        return col
    if isinstance(col, list | tuple):
        return list(col)
    ctx.column(str(name), f"expects an array, a list or a Series, got {type(col).__name__}")


def _row_count(cols: dict[str, Column], ctx: _Ctx) -> int:
    if not cols:
        raise DataError(f"{ctx.where} is empty: no columns to {ctx.op}")
    first = next(iter(cols))
    n = len(cols[first])
    for name, col in cols.items():
        if len(col) != n:
            ctx.column(name, f"has {len(col)} rows, column {first!r} has {n}")
    if n == 0:
        raise DataError(f"{ctx.where} is empty: no rows to {ctx.op}")
    return n


def _field_array(field: FieldSchema, col: Column, n: int, ctx: _Ctx) -> pa.Array:
    dt = field.dtype
    if dt == DataType.SPARSE_FLOAT_VECTOR:  # gpuvec.sparse checks and encodes each row
        values = col.to_pylist() if isinstance(col, pa.ChunkedArray | pa.Array) else list(col)
        return ctx.rows(field, values)
    if dt in vk.KINDS and dt != DataType.FLOAT_VECTOR:
        return _typed_vectors(field, col, ctx)
    if isinstance(col, pa.ChunkedArray | pa.Array):
        problem = column_type_problem(field, col.type)
        if problem:
            ctx.column(field.name, problem)
        if dt == DataType.FLOAT_VECTOR and not pa.types.is_null(col.type):
            chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
            return _arrow_vectors(field, chunks, n, ctx)
        if dt in _NUMPY:
            if pa.types.is_null(col.type):  # all null
                return _numeric(field, np.zeros(n, _NUMPY[dt]), np.ones(n, bool), ctx)
            mask = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
            zero = pa.scalar(False if dt == DataType.BOOL else 0, col.type)
            filled = col if mask is None else col.fill_null(zero)
            return _numeric(field, filled.to_numpy(zero_copy_only=False), mask, ctx)
        if dt == DataType.VARCHAR:
            return _strings(field, col.cast(pa.string()), ctx)
        return ctx.rows(field, col.to_pylist())
    if isinstance(col, np.ndarray):
        if col.dtype == object:  # Python objects, one per row
            return _list_column(field, list(col), ctx)
        if dt in (DataType.JSON, DataType.ARRAY):
            return ctx.rows(field, list(col) if col.ndim > 1 else col.tolist())
        problem = column_type_problem(field, col.dtype, col.ndim)
        if problem:
            ctx.column(field.name, problem)
        if dt == DataType.FLOAT_VECTOR:
            if (problem := vector_dim_problem(field, col.shape[1])) is not None:
                ctx.column(field.name, problem)
            return _np_vectors(field, col, ctx)
        if dt == DataType.VARCHAR:
            try:
                arr = pa.array(col, pa.string())
            except (pa.ArrowException, UnicodeError):  # e.g. surrogates: rows says which
                return ctx.rows(field, col.tolist())
            return _strings(field, arr, ctx)
        return _numeric(field, col, None, ctx)
    return _list_column(field, col, ctx)


def _typed_vectors(field: FieldSchema, col: Column, ctx: _Ctx) -> pa.Array:
    """A FLOAT16 / BFLOAT16 / INT8 / BINARY column (:mod:`gpuvec.vector_input`): a 2-D
    array (memory-mapped too) converted whole, an Arrow list column through its values,
    anything else (lists of bytes or arrays) row by row."""

    def locate(i: int) -> str:
        return f"{ctx.prefix} row {ctx.offset + i}, field {field.name!r}"

    if isinstance(col, pa.ChunkedArray | pa.Array):
        t = col.type
        if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
            arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            if arr.null_count == 0 and len(arr) and (lengths == lengths[0]).all():
                flat = arr.flatten().to_numpy(zero_copy_only=False)
                if t.value_type == vk.arrow_value_type(field.dtype):  # gpuvec's own layout
                    mat = vk.storage_matrix(field.dtype, flat, len(arr))  # bfloat16: its bits
                else:
                    mat = flat.reshape(len(arr), -1)
                return vk.column(field.dtype, matrix_from_2d(field, mat, locate))
        return ctx.rows(field, col.to_pylist())
    if isinstance(col, np.ndarray) and col.ndim == 2:
        return vk.column(field.dtype, matrix_from_2d(field, col, locate))
    return vk.column(field.dtype, matrix_from_values(field, list(col), locate))


def _list_column(field: FieldSchema, values: list[Any], ctx: _Ctx) -> pa.Array:
    """Python values: NumPy/Arrow for the plain cases, rows_to_table for the rest."""
    dt = field.dtype
    types = set(map(type, values))
    if dt == DataType.BOOL and types == {bool}:
        return _numeric(field, np.array(values, dtype=bool), None, ctx)
    if (dt in INT_RANGES and types == {int}) or (dt in _FLOATS and types <= {int, float}):
        try:
            arr = np.array(values, dtype=np.int64 if types == {int} else np.float64)
        except OverflowError:  # past int64: rows says which
            return ctx.rows(field, values)
        return _numeric(field, arr, None, ctx)
    if dt == DataType.FLOAT_VECTOR and types == {np.ndarray}:  # e.g. a pandas column
        try:
            arr = np.stack(values)
        except ValueError:  # ragged: rows says which row
            return ctx.rows(field, values)
        if arr.ndim == 2 and arr.dtype.kind in "fiu" and arr.shape[1] == field.dim:
            return _np_vectors(field, arr, ctx)
        return ctx.rows(field, values)
    if dt == DataType.VARCHAR and types == {str}:
        try:
            return _strings(field, pa.array(values, pa.string()), ctx)
        except (pa.ArrowException, UnicodeError):
            return ctx.rows(field, values)
    return ctx.rows(field, values)


def _numeric(
    field: FieldSchema, values: np.ndarray, mask: np.ndarray | None, ctx: _Ctx
) -> pa.Array:
    """A numeric/bool column (nulls in ``mask``) → checked Arrow array, one copy."""
    dt = field.dtype
    fill = False
    if mask is not None and mask.any():
        if field.default_value is not None:
            fill = True
        elif not field.nullable:
            ctx.refuse(field, None, int(np.argmax(mask)))
    else:
        mask = None
    kind = values.dtype.kind
    bad = None
    with np.errstate(all="ignore"):
        if dt in INT_RANGES:
            lo, hi = INT_RANGES[dt]
            info = np.iinfo(values.dtype)
            if info.min < lo or info.max > hi:
                bad = values > hi if kind == "u" else (values < lo) | (values > hi)
        elif dt in _FLOATS and kind == "f":
            bad = ~np.isfinite(values)
            if dt == DataType.FLOAT and values.dtype.itemsize > 4:
                bad |= np.abs(values) > FLOAT32_MAX
    if bad is not None:
        if mask is not None:
            bad &= ~mask
        if bad.any():
            i = int(np.argmax(bad))
            ctx.refuse(field, values[i].item(), i)
    out = values.astype(_NUMPY[dt])  # the one copy: the table never aliases caller memory
    if fill:
        out[mask] = field.default_value
        mask = None
    return pa.array(out, mask=mask)


def _strings(field: FieldSchema, arr: pa.Array, ctx: _Ctx) -> pa.Array:
    """A string column: nulls, then max_length in UTF-8 bytes, with pyarrow.compute."""
    if arr.null_count:
        if field.default_value is not None:
            arr = arr.fill_null(field.default_value)
        elif not field.nullable:
            nulls = arr.is_null().to_numpy(zero_copy_only=False)
            ctx.refuse(field, None, int(np.argmax(nulls)))
    limit = field.max_length
    sizes = pc.binary_length(arr)
    if limit is not None and (pc.max(sizes).as_py() or 0) > limit:
        over = pc.greater(sizes, limit).fill_null(False).to_numpy(zero_copy_only=False)
        i = int(np.argmax(over))
        ctx.refuse(field, arr[i].as_py(), i)
    return arr


def _np_vectors(field: FieldSchema, arr: np.ndarray, ctx: _Ctx) -> pa.Array:
    """A numeric [n, dim] array → fixed_size_list<float32>[dim], copied once."""
    out = np.empty((len(arr), field.dim or 0), np.float32)
    _copy_vectors(field, arr, out, 0, ctx, lambda i: np.array(arr[i]))
    return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), field.dim)


def _copy_vectors(
    field: FieldSchema,
    src: np.ndarray,
    out: np.ndarray,
    base: int,
    ctx: _Ctx,
    original: Callable[[int], Any],
) -> None:
    """Copy ``src`` [m, dim] into ``out[base:base+m]`` as float32, block by block, refusing
    the first row with NaN/±inf (or past float32); ``original(i)`` is that row as given."""
    step = max(1, _BLOCK_BYTES // (4 * max(1, field.dim or 1)))
    for a in range(0, len(src), step):
        b = min(len(src), a + step)
        dst = out[base + a : base + b]
        with np.errstate(over="ignore", invalid="ignore"):
            dst[...] = src[a:b]
        if dst.size and np.isfinite(dst.min()) and np.isfinite(dst.max()):
            continue  # min and max are finite (NaN propagates): every value is
        finite = np.isfinite(dst).all(axis=1)
        if not finite.all():
            i = a + int(np.argmin(finite))
            ctx.refuse(field, original(i), base + i)


def _arrow_vectors(field: FieldSchema, chunks: list[pa.Array], n: int, ctx: _Ctx) -> pa.Array:
    dim = field.dim or 0
    out = np.empty((n, dim), np.float32)
    base = 0
    for ch in chunks:
        if ch.null_count:
            nulls = ch.is_null().to_numpy(zero_copy_only=False)
            ctx.refuse(field, None, base + int(np.argmax(nulls)))
        if pa.types.is_fixed_size_list(ch.type):
            lengths = np.full(len(ch), ch.type.list_size)
        else:
            lengths = pc.list_value_length(ch).to_numpy(zero_copy_only=False)
        if len(ch) and (lengths != dim).any():
            if (lengths == lengths[0]).all():
                ctx.column(field.name, vector_dim_problem(field, int(lengths[0])) or "")
            i = int(np.argmax(lengths != dim))
            ctx.refuse(field, ch[i].as_py(), base + i)
        flat = ch.flatten()
        if flat.null_count:
            j = int(np.argmax(flat.is_null().to_numpy(zero_copy_only=False)))
            ctx.refuse(field, ch[j // dim].as_py(), base + j // dim)
        values = flat.to_numpy(zero_copy_only=False).reshape(len(ch), dim)
        _copy_vectors(field, values, out, base, ctx, lambda i, ch=ch: ch[i].as_py())
        base += len(ch)
    return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), dim)


def _meta_column(extra: dict[str, Column], n: int, ctx: _Ctx) -> pa.Array:
    """``$meta`` JSON text per row: the ``$meta`` column's object, then the other extra
    columns' non-null values (per-row work: JSON only)."""
    meta = extra.pop(DYNAMIC_FIELD_NAME, None)
    if meta is None and not extra:
        return pa.array(np.full(n, "{}", dtype=object), pa.string())
    metas = _py_values(meta) if meta is not None else None
    values = {k: _py_values(v) for k, v in extra.items()}
    texts: list[str] = []
    for i in range(n):
        where = f"{ctx.prefix} row {ctx.offset + i}, dynamic fields"
        dyn: dict[str, Any] = {}
        if metas is not None and metas[i] is not None:
            m = metas[i]
            if isinstance(m, str | bytes):
                m = load_json(m, where)
            if not isinstance(m, dict):
                raise DataError(f"{where}: {DYNAMIC_FIELD_NAME} must hold a JSON object, got {m!r}")
            dyn.update(m)
        for k, col in values.items():
            if col[i] is not None:
                dyn[k] = col[i]
        texts.append(json_text(dyn, lambda _, w=where: w) or "{}")
    return pa.array(texts, pa.string())


def _py_values(col: Column) -> list[Any]:
    if isinstance(col, np.ndarray):
        return col.tolist() if col.dtype != object else list(col)
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col.to_pylist()
    return col
