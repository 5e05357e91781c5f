"""Vector field kinds: how each Milvus vector type is held, converted and checked.

One table (:data:`KINDS`) says, for FLOAT_VECTOR, FLOAT16_VECTOR, BFLOAT16_VECTOR,
INT8_VECTOR and BINARY_VECTOR, what every layer must agree on:

* the *matrix* a segment holds: ``[n, width]`` of the storage dtype — float32, float16,
  ``ml_dtypes.bfloat16``, int8, or packed uint8 bits for BINARY_VECTOR (``width = dim / 8``,
  ``numpy.packbits`` order, as pymilvus sends them);
* the Arrow column rows travel in: ``fixed_size_list<value>[width]`` (bfloat16 as its uint16
  bits: Arrow has no bfloat16 type);
* the Milvus wire slot (``VectorField`` oneof) and placeholder type;
* the metrics and index types Milvus allows on the field, and its default metric.

Searches compute dense kinds in float32 (:func:`as_float32`); binary kinds stay packed and
use the HAMMING / JACCARD kernels. Conversions never copy when the data already has the
storage dtype. Nothing here knows about segments, indexes or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import pyarrow as pa

from gpuvec.datatypes import DataType
from gpuvec.errors import DataError

__all__ = [
    "BFLOAT16",
    "KINDS",
    "SPARSE",
    "VectorKind",
    "arrow_value_type",
    "as_float32",
    "column",
    "from_bytes",
    "kind",
    "layout",
    "matrix",
    "storage_matrix",
    "width",
]

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_FLOAT_METRICS = ("L2", "IP", "COSINE")


@dataclass(frozen=True)
class VectorKind:
    """What one vector data type is, for every layer (module docstring)."""

    dtype: DataType
    storage: np.dtype  # the matrix's dtype
    arrow_value: pa.DataType  # Arrow list element type
    slot: str  # VectorField oneof name on the wire
    placeholder: int  # PlaceholderType on the wire
    metrics: tuple[str, ...]
    default_metric: str
    index_types: tuple[str, ...] | None  # None: every float index type
    binary: bool = False

    @property
    def name(self) -> str:
        return self.dtype.name

    @property
    def itemsize(self) -> int:
        return self.storage.itemsize


_FLOAT_INDEXES = None  # every float-vector type of gpuvec.index.spec (FLAT, IVF_*, HNSW, GPU_*)
KINDS: dict[DataType, VectorKind] = {
    k.dtype: k
    for k in (
        VectorKind(DataType.FLOAT_VECTOR, np.dtype(np.float32), pa.float32(), "float_vector",
                   101, _FLOAT_METRICS, "COSINE", _FLOAT_INDEXES),
        VectorKind(DataType.FLOAT16_VECTOR, np.dtype(np.float16), pa.float16(), "float16_vector",
                   102, _FLOAT_METRICS, "COSINE", _FLOAT_INDEXES),
        VectorKind(DataType.BFLOAT16_VECTOR, BFLOAT16, pa.uint16(), "bfloat16_vector",
                   103, _FLOAT_METRICS, "COSINE", _FLOAT_INDEXES),
        # Milvus 2.6 indexes INT8_VECTOR with HNSW only (FLAT: exact search)
        VectorKind(DataType.INT8_VECTOR, np.dtype(np.int8), pa.int8(), "int8_vector",
                   105, _FLOAT_METRICS, "COSINE", ("FLAT", "HNSW", "AUTOINDEX")),
        VectorKind(DataType.BINARY_VECTOR, np.dtype(np.uint8), pa.uint8(), "binary_vector",
                   100, ("HAMMING", "JACCARD"), "HAMMING",
                   ("BIN_FLAT", "BIN_IVF_FLAT", "AUTOINDEX"), binary=True),
    )
}  # fmt: skip


SPARSE = VectorKind(DataType.SPARSE_FLOAT_VECTOR, np.dtype(np.float32), pa.float32(),
                    "sparse_float_vector", 104, ("IP", "BM25"), "IP",
                    ("SPARSE_INVERTED_INDEX", "SPARSE_WAND", "AUTOINDEX"))  # fmt: skip
"""SPARSE_FLOAT_VECTOR: its wire slot, placeholder, metrics and index types. Not in
:data:`KINDS` — it has no matrix: its rows are (index, value) pairs (:mod:`gpuvec.sparse`)."""


def kind(dtype: DataType | int) -> VectorKind:
    """The kind of a vector data type (KeyError for a type that is not a vector)."""
    dt = DataType(dtype)
    return SPARSE if dt == DataType.SPARSE_FLOAT_VECTOR else KINDS[dt]


def width(dtype: DataType | int, dim: int) -> int:
    """Columns of the stored matrix: ``dim`` (``dim / 8`` bytes for BINARY_VECTOR)."""
    return dim // 8 if kind(dtype).binary else dim


def layout(schema: Any) -> tuple[dict[str, int], dict[str, np.dtype]]:
    """A collection schema's vector fields: (field → matrix width, field → storage dtype)."""
    fields = [f for f in schema.vector_fields if f.dtype in KINDS]
    return (
        {f.name: width(f.dtype, int(f.dim)) for f in fields},
        {f.name: KINDS[f.dtype].storage for f in fields},
    )


def arrow_value_type(dtype: DataType | int) -> pa.DataType:
    return kind(dtype).arrow_value


def storage_matrix(dtype: DataType | int, flat: np.ndarray, n: int) -> np.ndarray:
    """A flat array of element values (Arrow's buffer) as the ``[n, width]`` matrix."""
    k = kind(dtype)
    a = np.asarray(flat)
    if k.storage == BFLOAT16 and a.dtype != BFLOAT16:
        a = a.view(BFLOAT16)
    return a.reshape(n, -1) if n else a.reshape(0, max(1, a.size))


def matrix(dtype: DataType | int, col: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """An Arrow vector column (``fixed_size_list``) as its ``[n, width]`` storage matrix
    (zero-copy for a single chunk without nulls)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(col)
    values = col.flatten().to_numpy(zero_copy_only=False)
    out = storage_matrix(dtype, values, n)
    w = width(dtype, dim)
    if n == 0:
        return np.empty((0, w), kind(dtype).storage)
    return out


def column(dtype: DataType | int, mat: np.ndarray) -> pa.FixedSizeListArray:
    """A ``[n, width]`` storage matrix as an Arrow ``fixed_size_list`` column."""
    k = kind(dtype)
    m = np.ascontiguousarray(mat)
    flat = m.reshape(-1)
    if k.storage == BFLOAT16:
        flat = flat.view(np.uint16)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=k.arrow_value), m.shape[1])


def as_float32(mat: Any) -> Any:
    """A dense storage matrix as float32 (the same array when it already is)."""
    if getattr(mat, "dtype", None) == np.float32:
        return mat
    return mat.astype(np.float32)


def from_bytes(dtype: DataType | int, data: bytes, dim: int, where: str) -> np.ndarray:
    """The wire's bytes slot as a ``[n, width]`` storage matrix; DataError when the byte
    count is not a whole number of vectors (``where`` names the field)."""
    k = kind(dtype)
    row = width(dtype, dim) * k.itemsize
    if row <= 0 or len(data) % row:
        raise DataError(
            f"{where}: {len(data)} bytes are not a whole number of {k.name} vectors of dim "
            f"{dim} ({row} bytes each)"
        )
    return np.frombuffer(data, dtype=k.storage).reshape(len(data) // row, width(dtype, dim))
