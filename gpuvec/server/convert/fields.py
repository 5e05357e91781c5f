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

from gpuvec.datatypes import DataType
from gpuvec.errors import DataError
from gpuvec.rows import OutputFields, resolve_output_fields
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, FieldSchema
from gpuvec.server.convert.schema import VALUE_SLOTS

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
    fields_data: Sequence[schema_pb2.FieldData], num_rows: int, schema: CollectionSchema
) -> list[dict[str, Any]]:
    """An Insert/Upsert request's columns → the rows ``MilvusClient.insert/upsert`` take.

    ``num_rows`` is the request's ``num_rows`` (0: taken from the first column). A field
    the request leaves out stays out of the rows (the client applies its default, null or
    "missing field" error)."""
    n = int(num_rows) or _count_rows(fields_data)
    names: list[str] = []
    columns: list[list[Any]] = []
    extras: list[dict[str, Any] | None] | None = None
    seen: set[str] = set()
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
            extras = _dynamic_column(fd, n, schema)
            continue
        if name not in schema:
            raise DataError(f"field {name!r} does not exist in the collection schema")
        names.append(name)
        columns.append(_column(fd, schema.field(name), n))
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
    if not columns:
        rows = [{} for _ in range(n)]
    if extras is not None:
        for row, extra in zip(rows, extras, strict=True):
            if extra:
                row.update(extra)
    return rows


def _count_rows(fields_data: Sequence[schema_pb2.FieldData]) -> int:
    for fd in fields_data:
        if len(fd.valid_data):
            return len(fd.valid_data)
        if fd.HasField("vectors"):
            dim = fd.vectors.dim
            return len(fd.vectors.float_vector.data) // dim if dim else 0
        kind = fd.scalars.WhichOneof("data")
        if kind is not None:
            return len(getattr(fd.scalars, kind).data)
    raise DataError("the request carries no field data: cannot tell its number of rows")


def _column(fd: schema_pb2.FieldData, field: FieldSchema, n: int) -> list[Any]:
    name, dt = field.name, field.dtype
    if fd.type != dt:
        raise DataError(
            f"field {name!r}: the request sends {_type_name(fd.type)} data, the field is {dt.name}"
        )
    valid = list(fd.valid_data)
    if valid and len(valid) != n:
        raise DataError(f"field {name!r}: valid_data has {len(valid)} entries for {n} rows")
    if dt == DataType.FLOAT_VECTOR:
        if valid:
            raise DataError(f"field {name!r}: nullable vector fields are not supported")
        return _vectors(fd, field, n)
    slot = SLOTS[dt]
    kind = fd.scalars.WhichOneof("data")
    if kind not in (None, slot):
        raise DataError(f"field {name!r}: {dt.name} data belongs in scalars.{slot}, got {kind}")
    data = getattr(fd.scalars, slot).data
    if dt == DataType.JSON:
        values: list[Any] = [_text(b, name, i) for i, b in enumerate(data)]
    elif dt == DataType.ARRAY:
        values = [_array_cell(cell, field, i) for i, cell in enumerate(data)]
    else:
        values = list(data)
    if not valid:
        if len(values) != n:
            raise DataError(f"field {name!r}: {len(values)} values for {n} rows")
        return values
    if len(values) == n:  # full length: placeholders under the nulls
        return [v if ok else None for v, ok in zip(values, valid, strict=True)]
    if len(values) == sum(valid):  # compact (pymilvus): values of the valid rows only
        it = iter(values)
        return [next(it) if ok else None for ok in valid]
    raise DataError(
        f"field {name!r}: {len(values)} values for {n} rows of which {sum(valid)} are valid"
    )


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


def _vectors(fd: schema_pb2.FieldData, field: FieldSchema, n: int) -> list[Any]:
    name = field.name
    kind = fd.vectors.WhichOneof("data")
    if kind not in (None, "float_vector"):
        raise DataError(f"field {name!r}: FLOAT_VECTOR data belongs in float_vector, got {kind}")
    dim = int(fd.vectors.dim)
    if dim != field.dim:
        raise DataError(f"field {name!r}: vectors of dim {dim} sent, the field's is {field.dim}")
    flat = np.array(fd.vectors.float_vector.data, dtype=np.float32)
    if flat.size != n * dim:
        raise DataError(f"field {name!r}: {flat.size} floats are not {n} vectors of dim {dim}")
    return list(flat.reshape(n, dim))


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
        try:
            obj = json.loads(raw)
        except ValueError:
            raise DataError(f"{where}, row {i}: not valid JSON") from None
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
