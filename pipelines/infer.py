"""A collection schema read off import files' columns, for ``gpuvec import --create`` and for
standalone index artifacts (:mod:`.artifact`), which have no collection to take one from.

Parquet: fixed-size lists (or lists, sized by the first row) are vector fields, integers
INT64, floats DOUBLE, booleans BOOL, everything else VARCHAR. ``.npy`` groups: 2-D arrays
are vector fields, 1-D ones by dtype kind. A vector field's type follows its element type:
float16 → FLOAT16_VECTOR, int8 → INT8_VECTOR, uint8 → BINARY_VECTOR (8 bits a byte), any
other number → FLOAT_VECTOR. The ``pk`` column is the primary key; when
the files lack it, an ``auto_id`` INT64 key of that name is added. Local files (or
directories of them) only: the first source decides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import CollectionSchema, DataType

_TYPES = {"i": DataType.INT64, "f": DataType.DOUBLE, "b": DataType.BOOL}


_VECTOR_OF = {"float16": DataType.FLOAT16_VECTOR, "int8": DataType.INT8_VECTOR,
              "uint8": DataType.BINARY_VECTOR}  # fmt: skip


def _vector(dtype: str, width: int) -> tuple[str, int, DataType]:
    """("vector", dim, type) of a vector column whose elements are ``dtype``."""
    vtype = _VECTOR_OF.get(dtype, DataType.FLOAT_VECTOR)
    return "vector", width * 8 if vtype == DataType.BINARY_VECTOR else width, vtype


def _columns(first: str) -> dict[str, tuple[str, int, DataType | None]]:
    """name → (kind, dim, vector type): kind "vector" or a NumPy dtype kind letter."""
    path = Path(first)
    if not path.exists():
        raise InvalidArgumentError(f"{first}: no such file or directory")
    columns: dict[str, tuple[str, int, DataType | None]] = {}
    npys = sorted(path.glob("*.npy")) if path.is_dir() else [path] * (path.suffix == ".npy")
    if npys:
        for f in npys:
            a = np.load(f, mmap_mode="r")
            columns[f.stem] = (_vector(str(a.dtype), a.shape[1]) if a.ndim == 2
                               else (a.dtype.kind, 0, None))  # fmt: skip
        return columns
    pfiles = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not pfiles or pfiles[0].suffix != ".parquet":
        raise InvalidArgumentError(f"{first}: a schema is inferred from Parquet or .npy files only")
    pfile = pfiles[0]
    for field in pq.read_schema(pfile):
        t = field.type
        if pa.types.is_fixed_size_list(t) or pa.types.is_list(t):
            dim = t.list_size if pa.types.is_fixed_size_list(t) else len(
                pq.read_table(pfile, columns=[field.name]).column(0)[0])  # fmt: skip
            elem = "float16" if pa.types.is_float16(t.value_type) else str(t.value_type)
            columns[field.name] = _vector(elem, dim)
        else:
            kind = ("i" if pa.types.is_integer(t) else "f" if pa.types.is_floating(t)
                    else "b" if pa.types.is_boolean(t) else "U")  # fmt: skip
            columns[field.name] = (kind, 0, None)
    return columns


def infer_schema(first: str, pk: str = "id") -> CollectionSchema:
    """The schema of the files at ``first`` (see the module docstring)."""
    columns = _columns(first)
    if not any(kind == "vector" for kind, _, _ in columns.values()):
        raise InvalidArgumentError(f"{first}: no vector column (a fixed-size list or 2-D .npy)")
    auto = pk not in columns
    schema = CollectionSchema(auto_id=auto, enable_dynamic_field=False)
    if auto:
        schema.add_field(pk, DataType.INT64, is_primary=True, auto_id=True)
    for name, (kind, dim, vtype) in columns.items():
        if kind == "vector":
            schema.add_field(name, vtype, dim=dim)
        elif kind in _TYPES:
            schema.add_field(name, _TYPES[kind], is_primary=name == pk)
        else:
            schema.add_field(name, DataType.VARCHAR, max_length=65535, is_primary=name == pk)
    return schema


def vector_fields(schema: CollectionSchema) -> list[str]:
    return [f.name for f in schema.fields if f.is_vector]
