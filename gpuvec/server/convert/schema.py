"""Collection schemas on the wire: ``schema_pb2.CollectionSchema`` ⇄ gpuvec's schema.

This module owns both directions of the schema translation of the gRPC endpoint:

- :func:`schema_from_proto` reads the schema of a ``CreateCollection`` request as pymilvus
  serialises it (``Prepare.get_schema_from_collection_schema``): type params arrive as
  strings (``dim`` → ``"8"``, ``mmap_enabled`` → ``"mmap.enabled"``), a default value as a
  ``ValueField``. Types, functions and struct fields gpuvec does not serve are refused with
  an error naming the field, as is an explicit ``is_dynamic`` field (Milvus refuses it too).
- :func:`schema_to_proto` writes the schema part of a ``DescribeCollection`` response the
  way Milvus's proxy does: user fields numbered from 100 in schema order, type params as
  string ``KeyValuePair`` s, and no ``$meta`` field (the proxy drops the dynamic field; the
  collection says ``enable_dynamic_field`` instead). pymilvus's ``describe_collection``
  dict of that message equals the embedded client's, except that ``default_value`` is the
  ``ValueField`` message there, as with a real Milvus server.
"""

from __future__ import annotations

import json
from typing import Any

from pymilvus.grpc_gen import common_pb2, schema_pb2

from gpuvec import vectors as vk
from gpuvec.datatypes import SCALAR_TYPES, DataType
from gpuvec.errors import NotSupportedYetError, SchemaError
from gpuvec.functions import BM25, FunctionSchema
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, FieldSchema

__all__ = [
    "FIRST_FIELD_ID",
    "default_from_proto",
    "field_from_proto",
    "schema_from_proto",
    "schema_to_proto",
]

FIRST_FIELD_ID = 100  # Milvus's common.StartOfUserFieldID
SUPPORTED_TYPES = frozenset(
    (*SCALAR_TYPES, DataType.JSON, DataType.ARRAY, *vk.KINDS, DataType.SPARSE_FLOAT_VECTOR)
)
_INT_PARAMS = ("dim", "max_length", "max_capacity")
_MMAP_WIRE, _MMAP = "mmap.enabled", "mmap_enabled"  # pymilvus renames this one param
# ScalarField slot of each scalar type (default values here; columns and ARRAY elements in
# :mod:`.fields`, which adds JSON and ARRAY)
VALUE_SLOTS = {
    DataType.BOOL: "bool_data",
    DataType.INT8: "int_data",
    DataType.INT16: "int_data",
    DataType.INT32: "int_data",
    DataType.INT64: "long_data",
    DataType.FLOAT: "float_data",
    DataType.DOUBLE: "double_data",
    DataType.VARCHAR: "string_data",
}


def _dtype(field: str, value: int, what: str = "data type") -> DataType:
    try:
        return DataType(value)
    except ValueError:
        raise SchemaError(f"field {field!r}: unknown {what} {value}") from None


def default_from_proto(field: str, value: schema_pb2.ValueField) -> Any:
    """A ``ValueField`` default → its Python value (None when no slot is set)."""
    slot = value.WhichOneof("data")
    if slot is None:
        return None
    if slot not in VALUE_SLOTS.values():
        raise NotSupportedYetError(f"field {field!r}: a default value of kind {slot}")
    return getattr(value, slot)


def _type_params(field: str, pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        key, value = kv.key, kv.value
        if key == _MMAP_WIRE:
            out[_MMAP] = value.strip().lower() not in ("false", "0", "")
        elif key in _INT_PARAMS:
            try:
                out[key] = int(value)
            except ValueError:
                raise SchemaError(
                    f"field {field!r}: type param {key} must be an integer, got {value!r}"
                ) from None
        else:
            out[key] = value
    return out


def field_from_proto(pb: schema_pb2.FieldSchema) -> FieldSchema:
    """One field of a request's schema, checked as CreateCollection checks its fields."""
    name = pb.name
    dtype = _dtype(name, pb.data_type)
    if pb.is_dynamic:
        raise SchemaError(f"field {name!r}: cannot explicitly set a field as a dynamic field")
    if dtype not in SUPPORTED_TYPES:
        raise SchemaError(
            f"field {name!r}: data type {dtype.name} is not supported by gpuvec "
            "(scalars, VARCHAR, JSON, ARRAY and the FLOAT, FLOAT16, BFLOAT16, INT8, BINARY "
            "and SPARSE_FLOAT vectors are)"
        )
    if pb.external_field:
        raise NotSupportedYetError(f"field {name!r}: external fields are not supported")
    element_type = None
    if dtype == DataType.ARRAY:
        element_type = _dtype(name, pb.element_type, "element type")
        if element_type not in SCALAR_TYPES:
            raise SchemaError(
                f"field {name!r}: element type {element_type.name} is not supported in an ARRAY"
            )
    default = default_from_proto(name, pb.default_value) if pb.HasField("default_value") else None
    return FieldSchema(
        name,
        dtype,
        pb.description,
        is_primary=pb.is_primary_key,
        auto_id=pb.autoID,
        element_type=element_type,
        nullable=pb.nullable,
        default_value=default,
        is_partition_key=pb.is_partition_key,
        is_clustering_key=pb.is_clustering_key,
        **_type_params(name, pb.type_params),
    )


def schema_from_proto(pb: schema_pb2.CollectionSchema) -> CollectionSchema:
    """The schema of a CreateCollection request → gpuvec's (not yet validated: the
    embedded ``create_collection`` applies Milvus's rules and names the field at fault)."""
    functions = [_function_from_proto(f) for f in pb.functions]
    if len(pb.struct_array_fields):
        names = ", ".join(repr(f.name) for f in pb.struct_array_fields)
        raise NotSupportedYetError(f"struct array fields ({names}) are not supported by gpuvec")
    if pb.external_source:
        raise NotSupportedYetError("collections over an external source are not supported")
    fields = [field_from_proto(f) for f in pb.fields]
    extra = {"enable_namespace": True} if pb.enable_namespace else {}
    return CollectionSchema(
        fields,
        pb.description,
        auto_id=True if pb.autoID else None,
        enable_dynamic_field=pb.enable_dynamic_field,
        functions=functions,
        **extra,
    )


def _function_from_proto(pb: schema_pb2.FunctionSchema) -> FunctionSchema:
    """One schema function of a request (BM25 is served; others are refused)."""
    kind = schema_pb2.FunctionType.Name(pb.type) if pb.type in schema_pb2.FunctionType.values() \
        else str(pb.type)  # fmt: skip
    if kind != BM25:
        raise NotSupportedYetError(f"function {pb.name!r}: {kind} functions are not supported "
                                   "by gpuvec (BM25 is)")  # fmt: skip
    params = {kv.key: kv.value for kv in pb.params}
    return FunctionSchema(pb.name, BM25, list(pb.input_field_names),
                          list(pb.output_field_names), params, pb.description)  # fmt: skip


def _param_text(value: Any) -> str:
    """Type-param values as pymilvus writes them: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _default_to_proto(field: FieldSchema) -> schema_pb2.ValueField:
    slot = VALUE_SLOTS.get(field.dtype)
    if slot is None:
        raise SchemaError(f"field {field.name!r}: {field.dtype.name} cannot have a default value")
    value = schema_pb2.ValueField()
    setattr(value, slot, field.default_value)
    return value


def _field_to_proto(field: FieldSchema, field_id: int) -> schema_pb2.FieldSchema:
    pb = schema_pb2.FieldSchema(
        fieldID=field_id,
        name=field.name,
        description=field.description,
        data_type=int(field.dtype),
        is_primary_key=field.is_primary,
        autoID=field.auto_id,
        is_partition_key=field.is_partition_key,
        is_clustering_key=field.is_clustering_key,
        nullable=field.nullable,
    )
    if field.element_type is not None:
        pb.element_type = int(field.element_type)
    for key, value in field.params.items():
        key = _MMAP_WIRE if key == _MMAP else str(key)
        pb.type_params.append(common_pb2.KeyValuePair(key=key, value=_param_text(value)))
    if field.default_value is not None:
        pb.default_value.CopyFrom(_default_to_proto(field))
    return pb


def schema_to_proto(
    schema: CollectionSchema,
    collection_name: str,
    description: str = "",
    *,
    include_dynamic: bool = False,
) -> schema_pb2.CollectionSchema:
    """gpuvec's schema → the schema of a DescribeCollection response (field ids from 100).

    ``include_dynamic`` adds the ``$meta`` JSON field (``is_dynamic``) after the user
    fields, as Milvus stores it internally; the proxy leaves it out of its responses, so
    DescribeCollection should not set it."""
    pb = schema_pb2.CollectionSchema(
        name=collection_name,
        description=description or schema.description,
        autoID=schema.auto_id,
        enable_dynamic_field=schema.enable_dynamic_field,
        enable_namespace=bool(schema.extra.get("enable_namespace", False)),
    )
    outputs = schema.function_outputs()
    ids = {field.name: FIRST_FIELD_ID + i for i, field in enumerate(schema.fields)}
    for field in schema.fields:
        pb.fields.append(_field_to_proto(field, ids[field.name]))
        pb.fields[-1].is_function_output = field.name in outputs
    for i, fn in enumerate(schema.functions):
        pb.functions.append(schema_pb2.FunctionSchema(
            name=fn.name, id=FIRST_FIELD_ID + len(ids) + i, description=fn.description,
            type=schema_pb2.FunctionType.Value(fn.type),
            input_field_names=fn.input_field_names,
            input_field_ids=[ids.get(n, 0) for n in fn.input_field_names],
            output_field_names=fn.output_field_names,
            output_field_ids=[ids.get(n, 0) for n in fn.output_field_names],
            params=[common_pb2.KeyValuePair(key=k, value=_param_text(v))
                    for k, v in fn.params.items()],
        ))  # fmt: skip
    if include_dynamic and schema.enable_dynamic_field:
        pb.fields.append(
            schema_pb2.FieldSchema(
                fieldID=FIRST_FIELD_ID + len(schema.fields),
                name=DYNAMIC_FIELD_NAME,
                description="dynamic schema",
                data_type=int(DataType.JSON),
                is_dynamic=True,
            )
        )
    return pb
