"""Schema functions (Milvus 2.6): a field computed from others on every write.

gpuvec serves the BM25 function: ``Function(name, FunctionType.BM25,
input_field_names=[text], output_field_names=[sparse])`` turns the analysed tokens of the
VARCHAR ``text`` field (``enable_analyzer=True``, its ``analyzer_params``) into the
SPARSE_FLOAT_VECTOR ``sparse``: one dimension per distinct token
(:func:`term_id`, Milvus's hash of the token), the token's count in the row as the value.
Rows never carry the output field; a search of it takes query text and the BM25 metric.

This module owns the function records (:class:`FunctionSchema`: persisted with the schema,
described as pymilvus describes them) and Milvus's rules for them (:func:`check_functions`,
with Milvus's messages). Computing the outputs needs the analyzers: :mod:`gpuvec.text.bm25`
registers its runner here when imported (:func:`register_runner`), and
:func:`apply_functions` — called by every write path once a batch is validated — fills
the output columns with it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from gpuvec.datatypes import DataType
from gpuvec.errors import DataError, GpuvecError, SchemaError

__all__ = ["BM25", "FunctionSchema", "apply_functions", "check_functions", "describe_functions",
           "function_from", "refuse_given", "register_runner", "term_id"]

Runner = Callable[["FunctionSchema", Any, pa.Array], pa.Array]
_RUNNERS: dict[str, Runner] = {}

BM25 = "BM25"
_TYPES = {1: BM25, "BM25": BM25}  # pymilvus FunctionType.BM25 is 1
_MAX_HASHED = 100  # Milvus hashes at most the first 100 bytes of a token


def term_id(token: str) -> int:
    """A token's dimension: CRC-32 (IEEE) of its first 100 UTF-8 bytes, modulo 2**32 - 1
    (Milvus's ``HashString2LessUint32``), so term ids agree with Milvus's."""
    return zlib.crc32(token.encode("utf-8")[:_MAX_HASHED]) % 0xFFFFFFFF


@dataclass
class FunctionSchema:
    """One function of a collection schema."""

    name: str
    type: str
    input_field_names: list[str]
    output_field_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "description": self.description,
                "input_field_names": list(self.input_field_names),
                "output_field_names": list(self.output_field_names),
                "params": dict(self.params)}  # fmt: skip

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FunctionSchema:
        return cls(raw["name"], raw["type"], list(raw["input_field_names"]),
                   list(raw["output_field_names"]), dict(raw.get("params") or {}),
                   raw.get("description", ""))  # fmt: skip

    def describe(self, ids: dict[str, int], function_id: int) -> dict[str, Any]:
        """This function in pymilvus ``describe_collection()`` output."""
        return {"name": self.name, "id": function_id, "description": self.description,
                "type": 1 if self.type == BM25 else self.type,
                "params": dict(self.params),
                "input_field_names": list(self.input_field_names),
                "input_field_ids": [ids.get(n, 0) for n in self.input_field_names],
                "output_field_names": list(self.output_field_names),
                "output_field_ids": [ids.get(n, 0) for n in self.output_field_names]}  # fmt: skip


def describe_functions(functions: list[FunctionSchema],
                       fields: list[dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """The functions of pymilvus ``describe_collection()`` (ids after the fields'); marks
    each output field of ``fields`` (the fields' descriptions) ``is_function_output``."""
    ids = {f["name"]: f["field_id"] for f in fields}
    outputs = {out for fn in functions for out in fn.output_field_names}
    for f in fields:
        if f["name"] in outputs:
            f["is_function_output"] = True
    first = max(ids.values(), default=99) + 1
    return [fn.describe(ids, first + i) for i, fn in enumerate(functions)]


def function_from(fn: Any) -> FunctionSchema:
    """A function given as pymilvus's ``Function``, a dict, or a :class:`FunctionSchema`."""
    if isinstance(fn, FunctionSchema):
        return fn
    get = fn.get if isinstance(fn, dict) else lambda k, d=None: getattr(fn, k, d)
    raw_type = get("type", None)
    if raw_type is None:
        raw_type = get("function_type", None)
    kind = getattr(raw_type, "value", raw_type)
    kind = getattr(raw_type, "name", None) if kind not in _TYPES else kind
    if kind not in _TYPES:
        raise SchemaError(f"function {get('name', '')!r}: function type {raw_type!r} is not "
                          "supported by gpuvec (BM25 is)")  # fmt: skip
    name = get("name", "")
    if not isinstance(name, str) or not name:
        raise SchemaError("a function needs a name")
    inputs, outputs = get("input_field_names", None), get("output_field_names", None)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    outputs = [outputs] if isinstance(outputs, str) else list(outputs or [])
    return FunctionSchema(name, _TYPES[kind], inputs, outputs, dict(get("params", None) or {}),
                          get("description", "") or "")  # fmt: skip


def check_functions(schema: Any) -> None:
    """Milvus's rules for the functions of ``schema`` (a CollectionSchema); SchemaError."""
    names: set[str] = set()
    outputs: set[str] = set()
    for fn in schema.functions:
        if fn.name in names:
            raise SchemaError(f"duplicate function name: {fn.name}")
        names.add(fn.name)
        if fn.type == BM25:
            _check_bm25(schema, fn)
        for out in fn.output_field_names:
            if out in outputs:
                raise SchemaError(f"field {out!r} is the output of more than one function")
            outputs.add(out)


def _check_bm25(schema: Any, fn: FunctionSchema) -> None:
    if len(fn.input_field_names) != 1:
        raise SchemaError(f"BM25 function {fn.name!r} needs exactly one input field, got "
                          f"{fn.input_field_names}")  # fmt: skip
    if len(fn.output_field_names) != 1:
        raise SchemaError(f"BM25 function {fn.name!r} needs exactly one output field, got "
                          f"{fn.output_field_names}")  # fmt: skip
    src, dst = fn.input_field_names[0], fn.output_field_names[0]
    if src not in schema:
        raise SchemaError(f"function input field not found: {src}")
    if dst not in schema:
        raise SchemaError(f"function output field not found: {dst}")
    inp, out = schema.field(src), schema.field(dst)
    if inp.dtype != DataType.VARCHAR:
        raise SchemaError(f"BM25 function input field must be a VARCHAR field, got "
                          f"{inp.dtype.name} ({src!r})")  # fmt: skip
    if not _flag(inp.extra_params.get("enable_analyzer")):
        raise SchemaError(f"BM25 function input field must set enable_analyzer to true "
                          f"(field {src!r})")  # fmt: skip
    if out.dtype != DataType.SPARSE_FLOAT_VECTOR:
        raise SchemaError(f"BM25 function output field must be a SparseFloatVector field, got "
                          f"{out.dtype.name} ({dst!r})")  # fmt: skip
    if out.is_primary or out.is_partition_key or out.nullable:
        raise SchemaError(f"function output field {dst!r} cannot be a key or nullable")


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def register_runner(kind: str, runner: Runner) -> None:
    """Install the code computing functions of type ``kind``: ``runner(function, input
    field schema, input column) -> output column``."""
    _RUNNERS[kind] = runner


def refuse_given(schema: Any, name: str, op: str) -> None:
    """A write that gives a function's output field: Milvus refuses it."""
    fn = schema.function_outputs()[name]
    raise DataError(f"{op}: field {name!r} is the output of function {fn.name!r} (computed "
                    f"from {', '.join(map(repr, fn.input_field_names))}): do not pass it")


def apply_functions(schema: Any, table: pa.Table) -> pa.Table:
    """``table`` (a validated batch) with every function output column computed."""
    for fn in schema.functions:
        runner = _RUNNERS.get(fn.type)
        if runner is None:
            raise GpuvecError(f"function {fn.name!r} ({fn.type}) cannot run: import gpuvec.text")
        src, dst = fn.input_field_names[0], fn.output_field_names[0]
        if src not in table.column_names:
            continue
        column = table.column(src).combine_chunks()
        out = runner(fn, schema.field(src), column)
        at = table.schema.get_field_index(dst)
        if at < 0:
            table = table.append_column(pa.field(dst, out.type, nullable=False), out)
        else:
            table = table.set_column(at, table.schema.field(at), out)
    return table
