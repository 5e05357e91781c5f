"""User rows ⇄ validated Arrow tables, output-field resolution and primary-key lists.

This module owns the conversion of pymilvus-style rows (``list[dict]``) into one Arrow
table shaped by :func:`gpuvec.schema.arrow_schema`, and of result tables back into the
entity dicts pymilvus returns.

Invariants:

- :func:`rows_to_table` validates the whole batch before it returns anything: a rejected
  batch raises :class:`~gpuvec.errors.DataError` naming the row index, the field and the
  value's type, and has no effect. Callers never see a partial table.
- Vectors become one ``fixed_size_list`` column (:mod:`gpuvec.vectors`: float32, float16,
  bfloat16 bits, int8 or packed bits) built from a single NumPy array (no per-element
  Python work when rows carry NumPy arrays); NaN/±inf are refused, as the Milvus server
  refuses them (:mod:`gpuvec.vector_input` for the types other than FLOAT_VECTOR).
- JSON fields and the dynamic field ``$meta`` hold compact JSON text; ``$meta`` is always
  an object (``{}`` for a row without extra keys). One JSON value is bounded in length
  and nesting (:mod:`gpuvec.rows_json` owns those rules).
- VARCHAR ``max_length`` counts UTF-8 bytes, as the Milvus server does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuvec import sparse, vectors
from gpuvec.arrays import one_array
from gpuvec.datatypes import INT_RANGES, DataType
from gpuvec.errors import DataError, FieldNotFoundError, InvalidArgumentError, SchemaError
from gpuvec.functions import apply_functions, refuse_given
from gpuvec.rows_json import JSON_MAX_DEPTH as JSON_MAX_DEPTH  # re-exported
from gpuvec.rows_json import JSON_MAX_LENGTH as JSON_MAX_LENGTH  # re-exported
from gpuvec.rows_json import json_text
from gpuvec.schema import (
    DYNAMIC_FIELD_NAME,
    FLOAT32_MAX,
    CollectionSchema,
    FieldSchema,
    arrow_schema,
    arrow_type,
)
from gpuvec.vector_input import matrix_from_values, one_vector

Locate = Callable[[int], str]  # index -> "insert row 3, field 'age'" for error messages


class _Missing:
    """Marks a key absent from a row (unlike an explicit None)."""


_MISSING = _Missing()
_NONE = type(None)
_FLOATS = (DataType.FLOAT, DataType.DOUBLE)
_NUMPY = {DataType.FLOAT: np.float32, DataType.DOUBLE: np.float64}
_NUMPY |= {t: np.dtype(f"int{8 << i}").type for i, t in enumerate(INT_RANGES)}


def _accepts(dtype: DataType, t: type) -> bool:
    """May a value of Python type t go into a column of dtype? (bool is never a number.)"""
    if dtype == DataType.BOOL:
        return t is bool or t is np.bool_
    if dtype == DataType.VARCHAR:
        return issubclass(t, str)
    if issubclass(t, bool | np.bool_):
        return False
    if dtype in INT_RANGES:
        return issubclass(t, int | np.integer)
    return issubclass(t, int | float | np.integer | np.floating)


def _expects(dtype: DataType) -> str:
    words = {DataType.BOOL: "a bool", DataType.VARCHAR: "a string"}
    return words.get(dtype, "an integer" if dtype in INT_RANGES else "a number")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# -- rows -> table ------------------------------------------------------------------------
def rows_to_table(
    schema: CollectionSchema,
    data: dict[str, Any] | Sequence[dict[str, Any]],
    *,
    operation: str = "insert",
    auto_ids: Sequence[int] | np.ndarray | None = None,
    allow_insert_auto_id: bool = False,
) -> pa.Table:
    """Validate pymilvus-style rows against a validated schema; return one Arrow table.

    Columns follow :func:`arrow_schema`. On an insert into an ``auto_id`` collection the
    rows must not carry the primary key (Milvus refuses it unless the collection sets
    ``allow_insert_auto_id``, and then all rows or none carry it); the key column is built
    from ``auto_ids`` (one id per row), or left out when ``auto_ids`` is None. Upserts
    always need the key. A missing or None value takes the field's default_value, else
    null when the field is nullable, else the batch is refused.
    """
    if operation not in ("insert", "upsert"):
        raise InvalidArgumentError(f"operation must be 'insert' or 'upsert', got {operation!r}")
    op = operation
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list | tuple):
        raise DataError(f"{op} data must be a dict or a list of dicts, got {type(data).__name__}")
    if not rows:
        raise DataError(f"{op} data is empty: no rows to {op}")
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    if auto_ids is not None and not pk.auto_id:
        raise InvalidArgumentError("auto_ids is only for inserts into auto_id collections")
    names = set(schema.field_names)
    metas: list[str] | None = [] if schema.enable_dynamic_field else None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{op} row {i}: expected a dict, got {type(row).__name__}")
        if names.issuperset(row):  # the common case, without building a set per row
            if metas is not None:
                metas.append("{}")
            continue
        extra = row.keys() - names
        bad = [k for k in extra if not isinstance(k, str) or k == DYNAMIC_FIELD_NAME]
        if bad:
            raise DataError(f"{op} row {i}: invalid or reserved key {bad[0]!r}")
        if metas is None:
            raise DataError(
                f"{op} row {i}: unexpected field {sorted(extra)[0]!r}: the collection has "
                "no such field and its dynamic field is not enabled"
            )
        dyn = {k: v for k, v in row.items() if k in extra}
        metas.append(json_text(dyn, lambda _, i=i: f"{op} row {i}, dynamic fields") or "{}")
    with_pk = sum(pk.name in row for row in rows) if pk.auto_id else 0
    generated = pk.auto_id and op == "insert"
    if generated and with_pk:
        first = next(i for i, r in enumerate(rows) if pk.name in r)
        if not allow_insert_auto_id or with_pk != len(rows):
            why = "all rows must carry it or none" if allow_insert_auto_id else "do not pass it"
            raise DataError(
                f"{op} row {first}: field {pk.name!r} is the auto_id primary key, {why} "
                "(Milvus: can not assign primary field data when auto id enabled)"
            )
        generated = False  # the rows carry their keys: auto_ids are not needed
    arrays: list[pa.Array] = []
    outputs = schema.function_outputs()
    for field in schema.fields:
        if field.name in outputs:  # computed below from its function's input
            if any(field.name in row for row in rows):
                refuse_given(schema, field.name, op)
            arrays.append(pa.nulls(len(rows), pa.binary()))
            continue
        if field.is_primary and generated:
            if auto_ids is not None:
                ids = np.asarray(auto_ids, dtype=np.int64)
                if ids.shape != (len(rows),):
                    raise InvalidArgumentError(
                        f"auto_ids has shape {ids.shape}, need ({len(rows)},)"
                    )
                arrays.append(pa.array(ids if field.dtype == DataType.INT64 else ids.astype(str)))
            continue
        arrays.append(_column(field, [row.get(field.name, _MISSING) for row in rows], op))
    if metas is not None:
        arrays.append(pa.array(metas, pa.string()))
    include_pk = not generated or auto_ids is not None
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(schema, include_pk=include_pk))
    return apply_functions(schema, table) if outputs else table


def _column(field: FieldSchema, values: list[Any], op: str) -> pa.Array:
    """One field's values (with _MISSING/None) → validated Arrow array, or DataError."""
    name, dt = field.name, field.dtype

    def locate(i: int) -> str:
        return f"{op} row {i}, field {name!r}"

    types = set(map(type, values))
    if _Missing in types or _NONE in types:
        for i, v in enumerate(values):
            if v is not _MISSING and v is not None:
                continue
            if field.default_value is not None:
                values[i] = field.default_value
            elif field.nullable:
                values[i] = None
            elif v is None:
                raise DataError(f"{locate(i)}: None is not allowed (not nullable, no default)")
            else:
                raise DataError(
                    f"{op} row {i}: missing field {name!r}, which is not nullable and has no "
                    "default_value"
                )
        types = set(map(type, values))
    if dt == DataType.FLOAT_VECTOR:
        return _vector_column(field.dim or 0, values, types, locate)
    if dt == DataType.SPARSE_FLOAT_VECTOR:
        return sparse.column(values, locate)
    if dt.is_vector:  # FLOAT16, BFLOAT16, INT8, BINARY (gpuvec.vector_input)
        return vectors.column(dt, matrix_from_values(field, values, locate))
    if dt == DataType.JSON:
        texts = [json_text(v, locate, i, raw_str=True) for i, v in enumerate(values)]
        return pa.array(texts, pa.string())
    if dt == DataType.ARRAY:
        return _array_column(field, values, types, locate)
    return _scalar_array(field, dt, values, types, locate)


def _scalar_array(
    field: FieldSchema, dt: DataType, values: list[Any], types: set[type], locate: Locate
) -> pa.Array:
    """Scalars of one type (None only where nullable) → Arrow array, or DataError."""
    if not all(t is _NONE or _accepts(dt, t) for t in types):
        i = next(i for i, v in enumerate(values) if v is not None and not _accepts(dt, type(v)))
        v = values[i]
        raise DataError(
            f"{locate(i)}: expects {_expects(dt)} ({dt.name}), got {type(v).__name__} {_show(v)}"
        )
    if dt == DataType.VARCHAR:
        return _string_array(field.max_length, values, locate)
    mask = None
    if _NONE in types:
        mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        values = [0 if v is None else v for v in values]
    if dt == DataType.BOOL:
        return pa.array(np.array(values, dtype=bool), mask=mask)
    try:
        arr = np.array(values, dtype=np.float64 if dt in _FLOATS else np.int64)
    except OverflowError:
        lo, hi = INT_RANGES[DataType.INT64]
        i = next(i for i, v in enumerate(values) if not lo <= v <= hi)
        raise DataError(f"{locate(i)}: {_show(values[i])} is out of range for {dt.name}") from None
    if dt in _FLOATS:
        limit = FLOAT32_MAX if dt == DataType.FLOAT else np.inf
        bad = ~np.isfinite(arr) | (np.abs(arr) > limit)
        what = "NaN, infinite or out of range"
    else:
        lo, hi = INT_RANGES[dt]
        bad = (arr < lo) | (arr > hi)
        what = f"out of range [{lo}, {hi}]"
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{locate(i)}: value {values[i]!r} is {what} for {dt.name}")
    return pa.array(arr.astype(_NUMPY[dt]), mask=mask)


def _string_array(limit: int | None, values: list[Any], locate: Locate) -> pa.Array:
    try:
        arr = pa.array(values, pa.string())
    except (pa.ArrowException, UnicodeError):
        for i, v in enumerate(values):
            try:
                v.encode("utf-8")
            except UnicodeError:
                raise DataError(f"{locate(i)}: string {_show(v)} is not valid UTF-8") from None
        raise
    sizes = pc.binary_length(arr)
    if limit is not None and (pc.max(sizes).as_py() or 0) > limit:
        i = int(np.argmax(pc.greater(sizes, limit).fill_null(False)))
        size = len(values[i].encode("utf-8"))
        raise DataError(f"{locate(i)}: string of {size} bytes exceeds max_length {limit} bytes")
    return arr


def _vector_column(dim: int, values: list[Any], types: set[type], locate: Locate) -> pa.Array:
    """All vectors → one float32 [n, dim] array → a fixed_size_list column.

    NumPy rows are stacked as they are. List rows go through one ``np.asarray(dtype=
    float32)``; their element type is checked on each row's first element only (a full
    check costs as much as the conversion), so a numeric string further in converts the
    way NumPy converts it, while any other non-number fails the conversion."""
    arr = None
    only_arrays = types == {np.ndarray}  # stacked as they are, dtype checked once below
    if types <= {list, tuple, np.ndarray} and (only_arrays or all(map(_plausible_vector, values))):
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                arr = np.asarray(values, dtype=None if only_arrays else np.float32)
        except (ValueError, TypeError):
            arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != dim or arr.dtype.kind not in "fiu":
        _diagnose_vectors(dim, values, locate)
        raise DataError(f"{locate(0)}: vectors must be lists or arrays of {dim} numbers")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        i = int(np.argmin(finite.all(axis=1)))
        _diagnose_vectors(dim, values[i : i + 1], lambda _: locate(i))
        raise DataError(f"{locate(i)}: vector contains NaN or infinity (or exceeds float32)")
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), dim)


def _plausible_vector(v: Any) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "fiu"
    return len(v) > 0 and _accepts(DataType.FLOAT, type(v[0]))


def _diagnose_vectors(dim: int, values: list[Any], locate: Locate) -> None:
    """Raise the precise DataError for the first bad vector (the slow path)."""
    for i, v in enumerate(values):
        if not isinstance(v, list | tuple | np.ndarray):
            got = type(v).__name__
            raise DataError(f"{locate(i)}: expects a list or array of {dim} floats, got {got}")
        a = one_vector(v, locate, i)
        if a.shape[0] != dim:
            raise DataError(f"{locate(i)}: vector has dim {a.shape[0]}, the field's dim is {dim}")
        if isinstance(v, np.ndarray):
            what = "" if a.dtype.kind in "fiu" else f"dtype {a.dtype}"
        else:
            bad = next((x for x in v if not _accepts(DataType.FLOAT, type(x))), _MISSING)
            what = "" if bad is _MISSING else type(bad).__name__
        if what:
            raise DataError(f"{locate(i)}: vector elements must be numbers, got {what}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DataError(f"{locate(i)}: vector contains NaN or infinity")


def _array_column(
    field: FieldSchema, values: list[Any], types: set[type], locate: Locate
) -> pa.Array:
    et, cap = field.element_type, field.max_capacity or 0
    assert et is not None, "validated ARRAY fields have an element type"
    offsets, flat, owner = [0], [], []
    for i, v in enumerate(values):
        if v is not None:
            if not isinstance(v, list | tuple | np.ndarray) or getattr(v, "ndim", 1) != 1:
                got = f"{type(v).__name__} {_show(v)}"
                raise DataError(f"{locate(i)}: expects a list for an ARRAY field, got {got}")
            if len(v) > cap:
                raise DataError(f"{locate(i)}: {len(v)} elements exceed max_capacity {cap}")
            items = v.tolist() if isinstance(v, np.ndarray) else list(v)
            flat.extend(items)
            owner.extend([i] * len(items))
        offsets.append(len(flat))

    def where(j: int) -> str:
        return f"{locate(owner[j])}, element {j - offsets[owner[j]]}"

    if any(x is None for x in flat):
        j = next(j for j, x in enumerate(flat) if x is None)
        raise DataError(f"{where(j)}: array elements cannot be None")
    elements = _scalar_array(field, et, flat, set(map(type, flat)), where)
    mask = pa.array([v is None for v in values]) if _NONE in types else None
    offs = pa.array(offsets, pa.int32())
    return pa.ListArray.from_arrays(offs, elements, arrow_type(field), mask=mask)


# -- output fields and table -> rows ------------------------------------------------------
@dataclass(frozen=True)
class OutputFields:
    """Resolved output fields: schema fields in schema order (the primary key always
    among them) plus either named dynamic keys or all of them (``*`` or ``$meta``)."""

    fields: tuple[str, ...]
    dynamic_keys: tuple[str, ...] = ()
    all_dynamic: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The table columns these outputs are made from."""
        wants_meta = self.all_dynamic or bool(self.dynamic_keys)
        return self.fields + ((DYNAMIC_FIELD_NAME,) if wants_meta else ())


def resolve_output_fields(
    schema: CollectionSchema, output_fields: Sequence[str] | None
) -> OutputFields:
    """Milvus's output-field rules. None or [] → the primary key only (the server's rule;
    pymilvus's MilvusClient.query/get send ``["*"]`` when given none); ``*`` → every field
    and every dynamic key; ``$meta`` → every dynamic key; any other name that is not a
    field is a dynamic key when the dynamic field is enabled, else FieldNotFoundError."""
    if isinstance(output_fields, str) or not isinstance(output_fields, Sequence | _NONE):
        raise InvalidArgumentError(f"output_fields must be a list of names, got {output_fields!r}")
    pk = schema.primary_field
    chosen = {pk.name} if pk is not None else set()
    dynamic: list[str] = []
    all_dynamic = False
    for raw in output_fields or ():
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidArgumentError(f"output field names must be non-empty strings: {raw!r}")
        name = raw.strip()
        if name == "*":
            chosen.update(schema.field_names)
            all_dynamic = schema.enable_dynamic_field
        elif name in schema:
            chosen.add(name)
        elif not schema.enable_dynamic_field:
            raise FieldNotFoundError(f"field {name} not exist")
        elif name == DYNAMIC_FIELD_NAME:
            all_dynamic = True
        elif name not in dynamic:
            dynamic.append(name)
    fields = tuple(n for n in schema.field_names if n in chosen)
    return OutputFields(fields, () if all_dynamic else tuple(dynamic), all_dynamic)


def table_to_rows(
    table: pa.Table,
    schema: CollectionSchema,
    output_fields: Sequence[str] | None = None,
    *,
    include_pk: bool = True,
    wrap_bytes: bool = True,
) -> list[dict[str, Any]]:
    """Entity dicts as pymilvus returns them: FLOAT_VECTOR as lists of Python floats, the
    byte-backed vectors (FLOAT16, BFLOAT16, INT8, BINARY) as their raw bytes — wrapped in a
    one-element list in query results, bare in search hits (``wrap_bytes=False``), exactly
    as pymilvus decodes them from Milvus —, JSON as Python objects, dynamic keys flattened
    into the entity.
    ``output_fields=None`` keeps every column the table has; a list goes through
    :func:`resolve_output_fields` (so ``[]`` means the primary key only).
    ``include_pk=False`` drops the primary key (search hits carry it beside the entity)."""
    if output_fields is None:
        present = set(table.column_names)
        fields = tuple(n for n in schema.field_names if n in present)
        spec = OutputFields(fields, all_dynamic=DYNAMIC_FIELD_NAME in present)
    else:
        spec = resolve_output_fields(schema, output_fields)
    names = [n for n in spec.fields if include_pk or not schema.field(n).is_primary]
    columns = []
    for name in names:
        if name not in table.column_names:
            raise FieldNotFoundError(f"field {name!r} is not in the result table")
        columns.append(_column_to_py(schema.field(name), table.column(name), wrap_bytes))
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
    rows = rows if columns else [{} for _ in range(table.num_rows)]
    if (spec.all_dynamic or spec.dynamic_keys) and DYNAMIC_FIELD_NAME in table.column_names:
        keys = spec.dynamic_keys
        for row, text in zip(rows, table.column(DYNAMIC_FIELD_NAME).to_pylist(), strict=True):
            if text and text != "{}":
                obj = json.loads(text)
                row.update(obj if spec.all_dynamic else {k: obj[k] for k in keys if k in obj})
    return rows


def _column_to_py(field: FieldSchema, column: pa.ChunkedArray, wrap: bool) -> list[Any]:
    if field.dtype == DataType.FLOAT_VECTOR:
        arr = one_array(column)
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(arr), field.dim or 0).tolist()
    if field.dtype == DataType.SPARSE_FLOAT_VECTOR:
        return [sparse.to_dict(c) for c in column.to_pylist()]
    if field.dtype.is_vector:
        mat = vectors.matrix(field.dtype, column, int(field.dim or 0))
        raw = [r.tobytes() for r in mat]
        return [[b] for b in raw] if wrap else raw
    if field.dtype == DataType.JSON:
        return [None if s is None else json.loads(s) for s in column.to_pylist()]
    return column.to_pylist()


def pks_from_ids(schema: CollectionSchema, ids: Any) -> list[int] | list[str]:
    """Normalise the ``ids`` argument of get/delete: one key or a list of keys of the
    primary key's type (INT64 → int, VARCHAR → str). [] stays [] (callers return early,
    as pymilvus does). DataError names the offending value and its position."""
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    elif isinstance(ids, str | int | np.integer):
        ids = [ids]
    elif not isinstance(ids, list | tuple | range):
        raise DataError(f"ids must be a primary key or a list of them, got {type(ids).__name__}")
    lo, hi = INT_RANGES[DataType.INT64]
    out: list[Any] = []
    for i, v in enumerate(ids):
        if pk.dtype == DataType.VARCHAR:
            ok = isinstance(v, str)
        else:
            ok = isinstance(v, int | np.integer) and not isinstance(v, bool)
            if ok and not lo <= int(v) <= hi:
                raise DataError(f"ids[{i}]: {v} is out of range for the INT64 primary key")
        if not ok:
            raise DataError(
                f"ids[{i}]: {_show(v)} ({type(v).__name__}) does not match the primary key "
                f"{pk.name!r} of type {pk.dtype.name}"
            )
        out.append(str(v) if pk.dtype == DataType.VARCHAR else int(v))
    return out
