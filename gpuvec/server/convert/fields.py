"""Entity data on the wire: columnar ``schema_pb2.FieldData`` ⇄ the embedded client's rows.

This module owns the two directions of entity data of the gRPC endpoint:

- :func:`rows_from_field_data` turns the columns of an Insert/Upsert request, as pymilvus
  packs them (``Prepare._parse_row_request`` / ``entity_helper.entity_to_field_data``),
  into the ``list[dict]`` rows :meth:`gpuvec.MilvusClient.insert` takes (it has no columnar
  input, so one dict per row is built, from whole columns at a time). A nullable column's
  ``valid_data`` marks nulls; its values may be compact (valid rows only: what pymilvus
  sends) or full length. A null becomes ``None`` in the row, which the client turns into
  the field's default value or a null. The dynamic field's JSON column (``is_dynamic``)
  is spread into the rows' extra keys.
- :func:`field_data_from_rows` turns query rows / search entities back into columns the
  way Milvus returns them, which pymilvus's result parsers read: scalar columns full length
  with ``valid_data`` for nullable fields, vectors with their ``dim``, requested dynamic
  keys packed into one ``$meta`` JSON column (``is_dynamic``), ``count(*)`` as one INT64
  column of that name, and an (empty) column per output field when there are no rows.

Errors are :class:`~gpuvec.errors.DataError` (an ``InvalidArgumentError``) naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus.grpc_gen import schema_pb2

from gpuvec import sparse
from gpuvec import vectors as vk
from gpuvec.datatypes import DataType
from gpuvec.errors import DataError
from gpuvec.rows import OutputFields, resolve_output_fields
from gpuvec.rows_json import load_json
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, FieldSchema
from gpuvec.server.convert.schema import VALUE_SLOTS
from gpuvec.sparse import SparseRows

__all__ = [
    "COUNT_FIELD",
    "field_data_from_rows",
    "fields_to_proto",
    "is_count",
    "rows_from_field_data",
    "user_output_fields",
]

COUNT_FIELD = "count(*)"
# ScalarField slot of each type (also of ARRAY elements, in each row's ScalarField)
SLOTS = {**VALUE_SLOTS, DataType.JSON: "json_data", DataType.ARRAY: "array_data"}
_PLACEHOLDER = {"bool_data": False, "string_data": "", "json_data": b""}  # others: 0


def _type_name(value: int) -> str:
    try:
        return DataType(value).name
    except ValueError:
        return str(value)


# -- request columns -> rows ----------------------------------------------------------------
def rows_from_field_data(
    fields_data: Sequence[schema_pb2.FieldData],
    num_rows: int,
    schema: CollectionSchema,
    *,
    operation: str | None = None,
) -> list[dict[str, Any]]:
    """An Insert/Upsert request's columns → the rows ``MilvusClient.insert/upsert`` take.

    ``num_rows`` is the request's ``num_rows`` (0: taken from the first column); every
    column must carry exactly that many rows. A field the request leaves out stays out of
    the rows (the client applies its default, null or "missing field" error); with
    ``operation`` ("insert" / "upsert") a field no row can do without (no default, not
    nullable, not generated) is refused here already. Types, lengths and required fields
    are checked from the message alone, before any value is converted or row built."""
    n = _count_rows(fields_data, int(num_rows))
    seen: set[str] = set()
    dynamic: schema_pb2.FieldData | None = None
    plain: list[tuple[schema_pb2.FieldData, FieldSchema]] = []
    for fd in fields_data:
        name = fd.field_name
        if name in seen:
            raise DataError(f"field {name!r} is sent more than once")
        seen.add(name)
        if fd.is_dynamic or name == DYNAMIC_FIELD_NAME:
            if not schema.enable_dynamic_field:
                raise DataError(
                    f"field {name!r}: dynamic field data sent, but the collection's dynamic "
                    "field is not enabled"
                )
            dynamic = fd
        elif name not in schema:
            raise DataError(f"field {name!r} does not exist in the collection schema")
        else:
            plain.append((fd, schema.field(name)))
    if operation is not None:
        _require_fields(schema, seen, operation)
    for fd, field in plain:
        _check_shape(fd, field, n)
    names = [field.name for _, field in plain]
    columns = [_column(fd, field, n) for fd, field in plain]
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
    if not columns:
        rows = [{} for _ in range(n)]
    if dynamic is not None:
        for row, extra in zip(rows, _dynamic_column(dynamic, n, schema), strict=True):
            if extra:
                row.update(extra)
    return rows


def _count_rows(fields_data: Sequence[schema_pb2.FieldData], declared: int) -> int:
    """The request's number of rows: its first column's (``num_rows``, when set, must
    agree)."""
    if declared < 0:
        raise DataError(f"num_rows must not be negative, got {declared}")
    for fd in fields_data:
        name = fd.field_name
        if len(fd.valid_data):
            n = len(fd.valid_data)
        elif fd.HasField("vectors"):
            n = _vector_rows(fd)
        else:
            kind = fd.scalars.WhichOneof("data")
            if kind is None:
                continue
            n = len(getattr(fd.scalars, kind).data)
        if declared and n != declared:
            raise DataError(f"field {name!r}: {n} values for {declared} rows (num_rows)")
        return n
    raise DataError("the request carries no field data: cannot tell its number of rows")


_VECTOR_SLOTS = {k.slot: k.dtype for k in vk.KINDS.values()}
_SERVED_VECTORS = ", ".join(k.name for k in vk.KINDS.values())
_FLOAT_INPUT = (DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR)


def _vector_rows(fd: schema_pb2.FieldData) -> int:
    name, dim = fd.field_name, int(fd.vectors.dim)
    kind = fd.vectors.WhichOneof("data")
    if kind == "sparse_float_vector":  # one cell of (index, value) pairs per row
        return len(fd.vectors.sparse_float_vector.contents)
    if kind is None or kind not in _VECTOR_SLOTS:
        what = "no vector data" if kind is None else f"{kind} data"
        raise DataError(f"field {name!r}: {what}; gpuvec serves {_SERVED_VECTORS} fields")
    if dim <= 0:
        raise DataError(f"field {name!r}: the vectors' dim must be positive, got {dim}")
    if fd.type in vk.KINDS:
        slot = vk.kind(fd.type).slot
        takes = (slot, "float_vector") if fd.type in _FLOAT_INPUT else (slot,)
        if kind not in takes:
            raise DataError(
                f"field {name!r}: {DataType(fd.type).name} data belongs in {slot}, got {kind}"
            )
    if kind == "float_vector":
        size = len(fd.vectors.float_vector.data)
        if size % dim:
            raise DataError(
                f"field {name!r}: {size} floats are not a whole number of vectors of dim {dim}"
            )
        return size // dim
    dtype = _VECTOR_SLOTS[kind]
    return len(vk.from_bytes(dtype, getattr(fd.vectors, kind), dim, f"field {name!r}"))


def _require_fields(schema: CollectionSchema, present: set[str], operation: str) -> None:
    """Refuse a request that leaves out a field no row could do without."""
    outputs = schema.function_outputs()
    for field in schema.fields:
        if field.name in present or field.nullable or field.default_value is not None:
            continue
        if field.name in outputs:  # a function computes it
            continue
        if field.is_primary and field.auto_id and operation == "insert":
            continue
        raise DataError(
            f"{operation}: missing field {field.name!r}, which is not nullable and has no "
            "default_value"
        )


def _check_shape(fd: schema_pb2.FieldData, field: FieldSchema, n: int) -> None:
    """A column's type and length, from the message alone (no values converted yet)."""
    name, dt = field.name, field.dtype
    if fd.type != dt:
        raise DataError(
            f"field {name!r}: the request sends {_type_name(fd.type)} data, the field is {dt.name}"
        )
    valid = len(fd.valid_data)
    if valid and valid != n:
        raise DataError(f"field {name!r}: valid_data has {valid} entries for {n} rows")
    if dt == DataType.SPARSE_FLOAT_VECTOR:
        kind = fd.vectors.WhichOneof("data")
        if kind not in (None, "sparse_float_vector"):
            raise DataError(f"field {name!r}: {dt.name} data belongs in sparse_float_vector, "
                            f"got {kind}")  # fmt: skip
        got = len(fd.vectors.sparse_float_vector.contents)
        if got != n:
            raise DataError(f"field {name!r}: {got} sparse vectors for {n} rows")
        return
    if dt in vk.KINDS:
        if valid:
            raise DataError(f"field {name!r}: nullable vector fields are not supported")
        kind = fd.vectors.WhichOneof("data")
        slot = vk.kind(dt).slot
        # pymilvus sends float32 values for a FLOAT16/BFLOAT16 field given float lists
        takes = (slot, "float_vector") if dt in _FLOAT_INPUT else (slot,)
        if kind not in (None, *takes):
            raise DataError(f"field {name!r}: {dt.name} data belongs in {slot}, got {kind}")
        dim = int(fd.vectors.dim)
        if dim != field.dim:
            raise DataError(
                f"field {name!r}: vectors of dim {dim} sent, the field's is {field.dim}"
            )
        if kind in (None, "float_vector"):
            size = len(fd.vectors.float_vector.data)
            if size != n * dim:
                raise DataError(f"field {name!r}: {size} floats are not {n} vectors of dim {dim}")
        else:
            got = len(vk.from_bytes(dt, getattr(fd.vectors, kind), dim, f"field {name!r}"))
            if got != n:
                raise DataError(f"field {name!r}: {got} vectors for {n} rows")
        return
    slot = SLOTS[dt]
    kind = fd.scalars.WhichOneof("data")
    if kind not in (None, slot):
        raise DataError(f"field {name!r}: {dt.name} data belongs in scalars.{slot}, got {kind}")
    size = len(getattr(fd.scalars, slot).data)
    if not valid and size != n:
        raise DataError(f"field {name!r}: {size} values for {n} rows")
    if valid and size != n and size != sum(fd.valid_data):
        raise DataError(
            f"field {name!r}: {size} values for {n} rows of which {sum(fd.valid_data)} are valid"
        )


def _column(fd: schema_pb2.FieldData, field: FieldSchema, n: int) -> list[Any]:
    """A column's values (checked by :func:`_check_shape`), None where null."""
    name, dt = field.name, field.dtype
    if dt == DataType.SPARSE_FLOAT_VECTOR:  # the cells as sent (checked by the insert)
        return list(fd.vectors.sparse_float_vector.contents)
    if dt in vk.KINDS:
        if fd.vectors.WhichOneof("data") in (None, "float_vector"):
            flat = np.array(fd.vectors.float_vector.data, dtype=np.float32)
            return list(flat.reshape(n, int(fd.vectors.dim)))
        raw = getattr(fd.vectors, vk.kind(dt).slot)
        return list(vk.from_bytes(dt, raw, int(fd.vectors.dim), f"field {name!r}"))
    data = getattr(fd.scalars, SLOTS[dt]).data
    if dt == DataType.JSON:
        values: list[Any] = [_text(b, name, i) for i, b in enumerate(data)]
    elif dt == DataType.ARRAY:
        values = [_array_cell(cell, field, i) for i, cell in enumerate(data)]
    else:
        values = list(data)
    valid = list(fd.valid_data)
    if not valid:
        return values
    if len(values) == n:  # full length: placeholders under the nulls
        return [v if ok else None for v, ok in zip(values, valid, strict=True)]
    it = iter(values)  # compact (pymilvus): values of the valid rows only
    return [next(it) if ok else None for ok in valid]


def _text(raw: bytes, name: str, i: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"field {name!r}, row {i}: JSON value is not valid UTF-8") from None


def _array_cell(cell: schema_pb2.ScalarField, field: FieldSchema, i: int) -> list[Any]:
    et = field.element_type
    assert et is not None, "a validated ARRAY field has an element type"
    kind = cell.WhichOneof("data")
    if kind is None:
        return []
    if kind != SLOTS.get(et):
        raise DataError(
            f"field {field.name!r}, row {i}: ARRAY of {et.name} elements belong in "
            f"{SLOTS.get(et)}, got {kind}"
        )
    return list(getattr(cell, kind).data)


def _dynamic_column(
    fd: schema_pb2.FieldData, n: int, schema: CollectionSchema
) -> list[dict[str, Any] | None]:
    where = f"dynamic field {fd.field_name!r}"
    kind = fd.scalars.WhichOneof("data")
    if fd.type != DataType.JSON or kind not in (None, "json_data"):
        raise DataError(f"{where}: must be a JSON column, got {_type_name(fd.type)} / {kind}")
    data = fd.scalars.json_data.data
    if len(data) != n:
        raise DataError(f"{where}: {len(data)} values for {n} rows")
    names = set(schema.field_names)
    out: list[dict[str, Any] | None] = []
    for i, raw in enumerate(data):
        if raw in (b"", b"{}"):
            out.append(None)
            continue
        obj = load_json(raw, f"{where}, row {i}")
        if not isinstance(obj, dict):
            raise DataError(f"{where}, row {i}: must be a JSON object, got {type(obj).__name__}")
        clash = sorted(obj.keys() & names)
        if clash:
            raise DataError(
                f"{where}, row {i}: key {clash[0]!r} is a field of the schema; "
                "a dynamic key cannot carry a field's name"
            )
        out.append(obj)
    return out


# -- result rows -> columns -----------------------------------------------------------------
def is_count(output_fields: Sequence[str] | None) -> bool:
    """Do these output fields ask for ``count(*)``?"""
    return any(f.replace(" ", "").lower() == COUNT_FIELD for f in output_fields or ())


def user_output_fields(schema: CollectionSchema, output_fields: Sequence[str] | None) -> list[str]:
    """A result's ``output_fields`` as Milvus reports them: ``*`` expanded to every field
    (and ``$meta`` when the dynamic field is enabled), other names as given, no repeats."""
    out: dict[str, None] = {}
    for raw in output_fields or ():
        name = raw.strip()
        if name == "*":
            out.update(dict.fromkeys(schema.field_names))
            if schema.enable_dynamic_field:
                out[DYNAMIC_FIELD_NAME] = None
        elif is_count([name]):
            out[COUNT_FIELD] = None
        elif name:
            out[name] = None
    return list(out)


def field_data_from_rows(
    rows: Sequence[dict[str, Any]], schema: CollectionSchema, output_fields: Sequence[str] | None
) -> list[schema_pb2.FieldData]:
    """Query rows (``MilvusClient.query`` output for these ``output_fields``) → the
    ``fields_data`` of a QueryResults: the primary key always, fields in schema order,
    then ``$meta``; ``[{"count(*)": n}]`` → one INT64 column ``count(*)``."""
    if is_count(output_fields):
        n = int(rows[0][COUNT_FIELD]) if rows else 0
        fd = schema_pb2.FieldData(type=int(DataType.INT64), field_name=COUNT_FIELD)
        fd.scalars.long_data.data.append(n)
        return [fd]
    spec = resolve_output_fields(schema, output_fields)
    return fields_to_proto(rows, schema, spec)


def fields_to_proto(
    entities: Sequence[dict[str, Any]],
    schema: CollectionSchema,
    spec: OutputFields,
    *,
    include_pk: bool = True,
    pk_values: Sequence[Any] | None = None,
) -> list[schema_pb2.FieldData]:
    """The columns of ``spec`` over ``entities``. ``include_pk=False`` leaves the primary
    key out; ``pk_values`` supplies it when the entities do not carry it (search hits)."""
    out: list[schema_pb2.FieldData] = []
    ids = {n: 100 + i for i, n in enumerate(schema.field_names)}
    for name in spec.fields:
        field = schema.field(name)
        if field.is_primary and not include_pk:
            continue
        if field.is_primary and pk_values is not None:
            values: Sequence[Any] = pk_values
        else:
            values = [e.get(name) for e in entities]
        fd = _to_proto(field, values)
        fd.field_id = ids[name]
        out.append(fd)
    if schema.enable_dynamic_field and (spec.all_dynamic or spec.dynamic_keys):
        out.append(_dynamic_to_proto(entities, schema, spec))
    return out


def _to_proto(field: FieldSchema, values: Sequence[Any]) -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(type=int(field.dtype), field_name=field.name)
    dt = field.dtype
    if dt == DataType.FLOAT_VECTOR:
        fd.vectors.dim = int(field.dim or 0)
        if len(values):
            flat = np.asarray(values, dtype=np.float32).reshape(-1)
            fd.vectors.float_vector.data.extend(flat.tolist())
        else:
            fd.vectors.float_vector.SetInParent()
        return fd
    if dt == DataType.SPARSE_FLOAT_VECTOR:  # {index: value} per entity → cells
        cells = [sparse.encode(v or {}, f"field {field.name!r}") for v in values]
        fd.vectors.sparse_float_vector.contents.extend(cells)
        dims = max((SparseRows.from_cells(cells).dims(),) if cells else (0,))
        fd.vectors.sparse_float_vector.dim = dims
        fd.vectors.dim = dims
        return fd
    if dt in vk.KINDS:  # bytes: one per entity, bare (search hits) or in a list (query)
        fd.vectors.dim = int(field.dim or 0)
        parts = [v[0] if isinstance(v, list) else v for v in values]
        setattr(fd.vectors, vk.kind(dt).slot, b"".join(parts))
        return fd
    slot = SLOTS.get(dt)
    if slot is None:
        raise DataError(f"field {field.name!r}: cannot return {dt.name} data")
    nulls = field.nullable or any(v is None for v in values)
    if nulls:
        fd.valid_data.extend([v is not None for v in values])
    target = getattr(fd.scalars, slot)
    target.SetInParent()
    if dt == DataType.ARRAY:
        et = field.element_type
        assert et is not None, "a validated ARRAY field has an element type"
        target.element_type = int(et)
        cell_slot = SLOTS[et]
        for v in values:
            cell = target.data.add()
            getattr(cell, cell_slot).SetInParent()
            if v is not None:
                getattr(cell, cell_slot).data.extend(v)
        return fd
    if dt == DataType.JSON:
        values = [b"" if v is None else _json_bytes(v) for v in values]
    elif nulls:
        hole = _PLACEHOLDER.get(slot, 0)
        values = [hole if v is None else v for v in values]
    target.data.extend(values)
    return fd


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _dynamic_to_proto(
    entities: Sequence[dict[str, Any]], schema: CollectionSchema, spec: OutputFields
) -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(
        type=int(DataType.JSON), field_name=DYNAMIC_FIELD_NAME, is_dynamic=True
    )
    fd.field_id = 100 + len(schema.fields)
    names = set(schema.field_names)
    keys = None if spec.all_dynamic else set(spec.dynamic_keys)
    target = fd.scalars.json_data
    target.SetInParent()
    for e in entities:
        extra = {k: v for k, v in e.items() if k not in names and (keys is None or k in keys)}
        target.data.append(_json_bytes(extra))
    return fd
