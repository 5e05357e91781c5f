"""Collection schemas: data types, field and collection schemas, validation, Arrow mapping.

This module owns the *shape* of a collection: which fields exist, their types and limits,
and the rules a schema must satisfy before a collection is created (the rules and limits
Milvus's proxy enforces). It also maps a schema onto the Arrow schema that the other layers
(WAL records, growing buffers, sealed segments, results) use for rows.

Invariants:

- ``DataType`` (from :mod:`gpuvec.datatypes`) values equal Milvus's wire values.
- ``CollectionSchema.to_dict()`` is plain JSON and ``from_dict(to_dict())`` equals the
  original: this is what the catalog persists in meta storage.
- ``validate()`` either raises :class:`~gpuvec.errors.SchemaError` naming the field and
  the offending value, or leaves a schema the other modules may rely on: exactly one
  INT64/VARCHAR primary key, 1..4 vector fields (FLOAT, FLOAT16, BFLOAT16, INT8 or BINARY;
  a binary dim is a multiple of 8) with a dim, every VARCHAR (and
  VARCHAR array) with a max_length, every ARRAY with an element type and a capacity, and
  default values already coerced to the field's Python type.
- The dynamic field is implicit: it is never in ``fields``. When enabled, rows carry their
  extra keys in an Arrow string column named ``$meta`` holding one JSON object per row.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec import vectors
from gpuvec.datatypes import FLOAT_TYPES, INT_RANGES, INT_TYPES, SCALAR_TYPES, DataType
from gpuvec.errors import FieldNotFoundError, SchemaError
from gpuvec.functions import (
    FunctionSchema,
    check_functions,
    describe_functions,
    function_from,
)
from gpuvec.names import MAX_NAME_LENGTH, validate_name  # noqa: F401 (re-exported)

DYNAMIC_FIELD_NAME = "$meta"
MAX_FIELDS = 64
MAX_VECTOR_FIELDS = 4
MIN_DIM, MAX_DIM = 2, 32768
MAX_VARCHAR_LENGTH = 65535
MAX_ARRAY_CAPACITY = 4096
FLOAT32_MAX = float(np.finfo(np.float32).max)


_VECTOR_TYPES = (
    DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR,
    DataType.INT8_VECTOR, DataType.BINARY_VECTOR, DataType.SPARSE_FLOAT_VECTOR,
)  # fmt: skip
_SUPPORTED = (*SCALAR_TYPES, DataType.JSON, DataType.ARRAY, *_VECTOR_TYPES)
MAX_BINARY_DIM = 8 * MAX_DIM  # bits
_KEY_TYPES = (DataType.INT64, DataType.VARCHAR)
_CLUSTERING_TYPES = (*INT_TYPES, *FLOAT_TYPES, DataType.VARCHAR, DataType.FLOAT_VECTOR)
def _int_param(field: str, key: str, value: Any) -> int | None:
    """Type params may arrive as int-like strings (pymilvus sends strings)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if value is None or (isinstance(value, int | np.integer) and not isinstance(value, bool)):
        return None if value is None else int(value)
    raise SchemaError(f"field {field!r}: {key} must be an integer, got {value!r}")


_FLAGS = ("is_primary", "auto_id", "nullable", "is_partition_key", "is_clustering_key")
_FLAGS += ("is_dynamic",)


class FieldSchema:
    """One field: name, data type and type params, with pymilvus's constructor names.

    Type params that do not apply to the data type (``dim`` on INT64...) are ignored, as
    pymilvus does; unknown keyword params (``mmap_enabled``...) are kept in ``params``.
    """

    def __init__(
        self,
        name: str,
        dtype: DataType | int | str,
        description: str = "",
        *,
        is_primary: bool = False,
        auto_id: bool = False,
        max_length: int | None = None,
        dim: int | None = None,
        element_type: DataType | int | str | None = None,
        max_capacity: int | None = None,
        nullable: bool = False,
        default_value: Any = None,
        is_partition_key: bool = False,
        is_clustering_key: bool = False,
        is_dynamic: bool = False,
        **params: Any,
    ) -> None:
        self.name = name
        self.dtype = DataType.parse(dtype)
        self.description = description
        flags = (is_primary, auto_id, nullable, is_partition_key, is_clustering_key, is_dynamic)
        for flag, value in zip(_FLAGS, flags, strict=True):
            if not isinstance(value, bool):
                raise SchemaError(f"field {name!r}: {flag} must be a bool, got {value!r}")
        self.is_primary, self.auto_id, self.nullable = is_primary, auto_id, nullable
        self.is_partition_key, self.is_clustering_key = is_partition_key, is_clustering_key
        self.is_dynamic = is_dynamic
        if auto_id and not is_primary:
            raise SchemaError(f"field {name!r}: auto_id can only be set on the primary key")
        self.default_value = default_value
        is_array = self.dtype == DataType.ARRAY
        has_len = self.dtype in (DataType.VARCHAR, DataType.TEXT) or is_array
        dense = self.dtype.is_vector and self.dtype != DataType.SPARSE_FLOAT_VECTOR
        self.dim = _int_param(name, "dim", dim) if dense else None  # sparse: no dim
        self.max_length = _int_param(name, "max_length", max_length) if has_len else None
        self.max_capacity = _int_param(name, "max_capacity", max_capacity) if is_array else None
        self.element_type = None
        if is_array and element_type is not None:
            self.element_type = DataType.parse(element_type)
        self.extra_params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """Type params as pymilvus shows them (``{'dim': 8}``, ``{'max_length': 64}``)."""
        out = {k: getattr(self, k) for k in ("dim", "max_length", "max_capacity")}
        out = {k: v for k, v in out.items() if v is not None}
        out.update(self.extra_params)
        return out

    @property
    def is_vector(self) -> bool:
        return self.dtype.is_vector

    def __repr__(self) -> str:
        return f"FieldSchema({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSchema) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (types as ints): the catalog's storage format."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        out["type"] = int(self.dtype)
        if self.params:
            out["params"] = copy.deepcopy(self.params)
        if self.element_type is not None:
            out["element_type"] = int(self.element_type)
        out.update({flag: True for flag in _FLAGS if getattr(self, flag)})
        if self.default_value is not None:
            out["default_value"] = self.default_value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FieldSchema:
        keys = (*_FLAGS, "element_type", "default_value")
        kwargs = {k: raw[k] for k in keys if raw.get(k) is not None}
        return cls(
            raw["name"], raw["type"], raw.get("description", ""), **kwargs, **raw.get("params", {})
        )

    def describe(self, field_id: int) -> dict[str, Any]:
        """This field's entry in pymilvus ``describe_collection()`` output."""
        out: dict[str, Any] = {"field_id": field_id, "name": self.name}
        out.update(description=self.description, type=self.dtype, params=self.params)
        if self.default_value is not None:
            out["default_value"] = self.default_value
        if self.element_type is not None:
            out["element_type"] = self.element_type
        out.update({flag: True for flag in _FLAGS if getattr(self, flag)})
        return out

    def validate(self) -> None:
        """Check this field alone; raises SchemaError naming the field and the value."""
        validate_name("field", self.name)
        n, dt = self.name, self.dtype

        def fail(msg: str) -> SchemaError:
            return SchemaError(f"field {n!r}: {msg}")

        if dt in (DataType.NONE, DataType.UNKNOWN):
            raise fail(f"data type {dt.name} is not valid")
        if dt == DataType.STRING:
            raise fail("STRING is not supported, please use VARCHAR instead")
        if dt not in _SUPPORTED:
            what = ", ".join(t.name for t in _VECTOR_TYPES)
            raise fail(f"{dt.name} is not supported yet by gpuvec (vectors: {what})")
        if self.is_dynamic:
            raise fail("cannot explicitly set a field as a dynamic field")
        if dt == DataType.SPARSE_FLOAT_VECTOR:  # no dim: (index, value) pairs
            if self.nullable:
                raise fail(f"vector type not support null, type:{dt.name}, name:{n} "
                           "(nullable vector fields are not supported)")  # fmt: skip
        elif dt.is_vector:
            if self.dim is None:
                raise fail("a vector field needs the type param 'dim'")
            if dt == DataType.BINARY_VECTOR:
                if self.dim % 8 or not 8 <= self.dim <= MAX_BINARY_DIM:
                    raise fail(
                        f"invalid dimension {self.dim}: a binary vector's dimension should be "
                        f"a multiple of 8 in range 8 ~ {MAX_BINARY_DIM}"
                    )
            elif not MIN_DIM <= self.dim <= MAX_DIM:
                raise fail(
                    f"invalid dimension {self.dim}, should be in range {MIN_DIM} ~ {MAX_DIM}"
                )
            if self.nullable:  # Milvus 2.6's words (nullable vectors arrived in Milvus 3.0)
                raise fail(f"vector type not support null, type:{dt.name}, name:{n} "
                           "(nullable vector fields are not supported)")  # fmt: skip
        if dt == DataType.ARRAY:
            et, cap = self.element_type, self.max_capacity
            if et is None:
                raise fail("an ARRAY field needs an element_type")
            if et not in SCALAR_TYPES:
                raise fail(f"element type {et.name} is not supported in an ARRAY")
            if cap is None:
                raise fail("an ARRAY field needs the type param 'max_capacity'")
            if not 0 < cap <= MAX_ARRAY_CAPACITY:
                raise fail(f"max_capacity should be in (0, {MAX_ARRAY_CAPACITY}], got {cap}")
        if DataType.VARCHAR in (dt, self.element_type):
            if self.max_length is None:
                raise fail("a VARCHAR field needs the type param 'max_length'")
            if not 0 < self.max_length <= MAX_VARCHAR_LENGTH:
                raise fail(
                    f"max_length should be in (0, {MAX_VARCHAR_LENGTH}], got {self.max_length}"
                )
        if self.is_primary or self.is_partition_key:
            role = "the primary key" if self.is_primary else "the partition key"
            if dt not in _KEY_TYPES:
                raise fail(f"the data type of {role} should be INT64 or VARCHAR, got {dt.name}")
            if self.nullable:
                raise fail(f"{role} cannot be nullable")
        if self.is_clustering_key and dt not in _CLUSTERING_TYPES:
            raise fail(f"{dt.name} cannot be a clustering key")
        if self.default_value is not None:
            if self.is_primary:
                raise fail("the primary key does not support default_value")
            self.default_value = self._checked_default(fail)

    def _checked_default(self, fail: Any) -> Any:
        dt, v = self.dtype, self.default_value
        if isinstance(v, np.generic):
            v = v.item()
        if dt not in SCALAR_TYPES:
            raise fail(f"type {dt.name} does not support default_value")
        bad = fail(f"default_value {v!r} ({type(v).__name__}) does not match type {dt.name}")
        if (dt == DataType.BOOL) != isinstance(v, bool):
            raise bad
        if dt in INT_TYPES:
            lo, hi = INT_RANGES[dt]
            if not isinstance(v, int):
                raise bad
            if not lo <= v <= hi:
                raise fail(f"default_value {v} is out of range for {dt.name}")
        elif dt in FLOAT_TYPES:
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise bad
            if dt == DataType.FLOAT and abs(v) > FLOAT32_MAX:
                raise fail(f"default_value {v} is out of range for FLOAT")
            v = float(v)
        elif dt == DataType.VARCHAR:
            if not isinstance(v, str):
                raise bad
            if len(v.encode("utf-8")) > (self.max_length or 0):
                raise fail(f"default_value {v[:32]!r} exceeds max_length {self.max_length} bytes")
        return v


class CollectionSchema:
    """Fields plus collection-level flags (auto_id, enable_dynamic_field), like pymilvus."""

    def __init__(
        self,
        fields: list[FieldSchema] | None = None,
        description: str = "",
        *,
        auto_id: bool | None = None,
        enable_dynamic_field: bool = False,
        primary_field: str | None = None,
        partition_key_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        fields = [] if fields is None else fields
        if not isinstance(fields, list | tuple) or not all(
            isinstance(f, FieldSchema) for f in fields
        ):
            raise SchemaError("fields must be a list of FieldSchema")
        if auto_id is not None and not isinstance(auto_id, bool):
            raise SchemaError(f"auto_id must be a bool, got {auto_id!r}")
        self.description = description
        self.enable_dynamic_field = bool(enable_dynamic_field)
        self._auto_id = auto_id
        self._primary_name = primary_field
        self._partition_key_name = partition_key_field
        functions = self.extra_functions(kwargs.pop("functions", None))
        self.extra = dict(kwargs)  # e.g. enable_namespace: kept and persisted, not used
        self.functions: list[FunctionSchema] = functions  # gpuvec.functions
        self._fields: list[FieldSchema] = []
        for f in fields:
            self._append(copy.deepcopy(f))

    def _append(self, field: FieldSchema) -> None:
        if field.name == self._primary_name:
            field.is_primary = True
        if field.name == self._partition_key_name:
            field.is_partition_key = True
        pk = self.primary_field
        if field.is_primary and pk is not None:
            raise SchemaError(
                f"there are more than one primary key, field names: {pk.name}, {field.name}"
            )
        if field.is_primary and self._auto_id:
            field.auto_id = True
        self._fields.append(field)

    def add_field(
        self,
        field_name: str,
        datatype: DataType | int | str,
        is_primary: bool = False,
        **kwargs: Any,
    ) -> CollectionSchema:
        """Append a field (pymilvus's signature); returns ``self`` for chaining."""
        self._append(FieldSchema(field_name, datatype, is_primary=is_primary, **kwargs))
        return self

    @staticmethod
    def extra_functions(raw: Any) -> list[FunctionSchema]:
        return [function_from(f) for f in (raw or [])]

    def add_function(self, function: Any) -> CollectionSchema:
        """Add a function (pymilvus's ``Function``; BM25 is served); returns ``self``."""
        self.functions.append(function_from(function))
        return self

    def function_outputs(self) -> dict[str, FunctionSchema]:
        """The fields functions compute, with their function (rows never carry them)."""
        return {out: fn for fn in self.functions for out in fn.output_field_names}

    @property
    def fields(self) -> list[FieldSchema]:
        return self._fields

    @property
    def primary_field(self) -> FieldSchema | None:
        return next((f for f in self._fields if f.is_primary), None)

    @property
    def partition_key_field(self) -> FieldSchema | None:
        return next((f for f in self._fields if f.is_partition_key), None)

    @property
    def vector_fields(self) -> list[FieldSchema]:
        return [f for f in self._fields if f.is_vector]

    @property
    def auto_id(self) -> bool:
        pk = self.primary_field
        return pk.auto_id if pk is not None else bool(self._auto_id)

    @auto_id.setter
    def auto_id(self, value: bool) -> None:
        self._auto_id = bool(value)
        if (pk := self.primary_field) is not None:
            pk.auto_id = bool(value)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self._fields]

    def field(self, name: str) -> FieldSchema:
        """The named field; FieldNotFoundError when there is none."""
        for f in self._fields:
            if f.name == name:
                return f
        raise FieldNotFoundError(f"field {name!r} does not exist in the schema")

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CollectionSchema) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CollectionSchema({self.to_dict()!r})"

    def copy(self) -> CollectionSchema:
        return CollectionSchema.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: the catalog's storage format."""
        out: dict[str, Any] = {"auto_id": self.auto_id, "description": self.description}
        out["fields"] = [f.to_dict() for f in self._fields]
        out["enable_dynamic_field"] = self.enable_dynamic_field
        if self.functions:
            out["functions"] = [f.to_dict() for f in self.functions]
        if self.extra:
            out["extra"] = copy.deepcopy(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CollectionSchema:
        return cls(
            [FieldSchema.from_dict(f) for f in raw.get("fields", [])],
            raw.get("description", ""),
            auto_id=raw.get("auto_id") or None,
            enable_dynamic_field=raw.get("enable_dynamic_field", False),
            functions=[FunctionSchema.from_dict(f) for f in raw.get("functions", [])],
            **raw.get("extra", {}),
        )

    def describe(self) -> dict[str, Any]:
        """Schema part of pymilvus ``describe_collection()``; field ids count from 100."""
        fields = [f.describe(100 + i) for i, f in enumerate(self._fields)]
        funcs = describe_functions(self.functions, fields)
        out = {"auto_id": self.auto_id, "description": self.description, "fields": fields}
        return {**out, "functions": funcs, "enable_dynamic_field": self.enable_dynamic_field}

    def validate(self, collection_name: str | None = None) -> None:
        """Apply Milvus's create-collection rules; raises SchemaError at the first problem."""
        if collection_name is not None:
            validate_name("collection", collection_name)
        if len(self._fields) > MAX_FIELDS:
            raise SchemaError(
                f"maximum field's number should be limited to {MAX_FIELDS}, got {len(self)}"
            )
        seen: set[str] = set()
        for f in self._fields:
            if f.name in seen:
                raise SchemaError(f"duplicated field name {f.name!r} found")
            seen.add(f.name)
        for key in ("is_primary", "is_partition_key", "is_clustering_key"):
            named = [f.name for f in self._fields if getattr(f, key)]
            if len(named) > 1:
                raise SchemaError(f"only one field can be {key[3:]}, got fields {named}")
        if self.primary_field is None:
            raise SchemaError("primary key is not specified")
        for f in self._fields:
            f.validate()
        n_vec = len(self.vector_fields)
        if n_vec == 0:
            raise SchemaError("schema does not contain vector field")
        if n_vec > MAX_VECTOR_FIELDS:
            limit = f"should be limited to {MAX_VECTOR_FIELDS}, got {n_vec}"
            raise SchemaError(f"maximum vector field's number {limit}")
        if (pkey := self.partition_key_field) is not None and pkey.is_primary:
            raise SchemaError(f"field {pkey.name!r}: the partition key cannot be the primary key")
        check_functions(self)


_ARROW_TYPES = (pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32())
_ARROW_TYPES += (pa.float64(), pa.string())
_ARROW_SCALARS = dict(zip(SCALAR_TYPES, _ARROW_TYPES, strict=True)) | {DataType.JSON: pa.string()}


def arrow_type(field: FieldSchema) -> pa.DataType:
    """Arrow type of one field's column (a vector: ``fixed_size_list`` of its element type,
    :mod:`gpuvec.vectors`; FLOAT_VECTOR: ``fixed_size_list<float32>[dim]``)."""
    if field.dtype in _ARROW_SCALARS:
        return _ARROW_SCALARS[field.dtype]
    if field.dtype == DataType.SPARSE_FLOAT_VECTOR:  # (index, value) pairs: gpuvec.sparse
        return pa.binary()
    if field.dtype in vectors.KINDS and field.dim is not None:
        width = vectors.width(field.dtype, field.dim)
        return pa.list_(vectors.arrow_value_type(field.dtype), width)
    if field.dtype == DataType.ARRAY and field.element_type in _ARROW_SCALARS:
        return pa.list_(_ARROW_SCALARS[field.element_type])
    raise SchemaError(f"field {field.name!r}: no Arrow mapping for {field.dtype.name}")


def arrow_schema(schema: CollectionSchema, *, include_pk: bool = True) -> pa.Schema:
    """Arrow schema of a collection's rows: fields in schema order, then ``$meta`` (JSON
    text, never null) when the dynamic field is enabled. ``include_pk=False`` leaves out
    the primary key (the shape of an auto_id insert before ids are assigned)."""
    cols = [
        pa.field(f.name, arrow_type(f), nullable=f.nullable)
        for f in schema.fields
        if include_pk or not f.is_primary
    ]
    if schema.enable_dynamic_field:
        cols.append(pa.field(DYNAMIC_FIELD_NAME, pa.string(), nullable=False))
    return pa.schema(cols)
