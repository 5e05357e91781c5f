"""User values of FLOAT16, BFLOAT16, INT8 and BINARY vector fields → one checked storage
matrix (:mod:`gpuvec.vectors`), with messages naming the row and field.

Accepted per row, as pymilvus accepts them (and a little more, for NumPy users):

* FLOAT16 / BFLOAT16: a NumPy array of that dtype, any float array or list of numbers
  (converted, as Milvus converts float32 input), or the vector's raw bytes;
* INT8: an int8 array, an integer array or list with values in [-128, 127], or raw bytes;
* BINARY: ``dim / 8`` bytes (``bytes(np.packbits(bits))``), a uint8 array of that length,
  or a list of that many ints in [0, 255].

A whole column may also come as one 2-D array (:func:`matrix_from_2d`), for FLOAT16 /
BFLOAT16 also as uint8 rows of their raw bytes (how pymilvus's ``LocalBulkWriter`` writes
them to ``.npy`` and Parquet files). Values that do
not fit the type (NaN, infinity, a float16 overflow, an int8 out of range) are refused:
the batch fails as a whole, nothing is converted half-way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpuvec import vectors
from gpuvec.datatypes import DataType
from gpuvec.errors import DataError

__all__ = ["matrix_from_2d", "matrix_from_values", "one_vector"]

Locate = Callable[[int], str]
_BYTES = (bytes, bytearray, memoryview)


def _shape_word(field: Any) -> str:
    k = vectors.kind(field.dtype)
    w = vectors.width(field.dtype, int(field.dim or 0))
    if k.binary:
        return f"{w} bytes ({field.dim} bits)"
    return f"{w} values"


def matrix_from_values(field: Any, values: list[Any], locate: Locate) -> np.ndarray:
    """One value per row → the field's ``[n, width]`` storage matrix, or DataError."""
    k = vectors.kind(field.dtype)
    dim = int(field.dim or 0)
    w = vectors.width(field.dtype, dim)
    if not values:
        return np.empty((0, w), k.storage)
    first = values[0]
    if isinstance(first, np.ndarray) and all(
        isinstance(v, np.ndarray) and v.dtype == first.dtype and v.shape == (w,) for v in values
    ):
        return matrix_from_2d(field, np.stack(values), locate)
    if all(isinstance(v, _BYTES) for v in values):
        row = w * k.itemsize
        for i, v in enumerate(values):
            if len(v) != row:
                raise DataError(
                    f"{locate(i)}: {k.name} of dim {dim} takes {row} bytes, got {len(v)}"
                )
        return np.frombuffer(b"".join(bytes(v) for v in values), k.storage).reshape(-1, w)
    rows = [_one_row(field, v, locate, i) for i, v in enumerate(values)]
    return matrix_from_2d(field, np.stack(rows), locate)


def _one_row(field: Any, v: Any, locate: Locate, i: int) -> np.ndarray:
    """One value as a 1-D array of the right length (dtype still to be converted)."""
    k = vectors.kind(field.dtype)
    w = vectors.width(field.dtype, int(field.dim or 0))
    if isinstance(v, _BYTES):
        row = w * k.itemsize
        if len(v) != row:
            raise DataError(f"{locate(i)}: {k.name} of dim {field.dim} takes {row} bytes, "
                            f"got {len(v)}")  # fmt: skip
        return np.frombuffer(bytes(v), k.storage)
    if not isinstance(v, list | tuple | np.ndarray):
        raise DataError(
            f"{locate(i)}: expects {_shape_word(field)} for {k.name} (a list, NumPy array or "
            f"bytes), got {type(v).__name__}"
        )
    a = one_vector(v, locate, i)
    if a.shape[0] != w:
        unit = "bytes" if k.binary else "values"
        raise DataError(
            f"{locate(i)}: {k.name} of dim {field.dim} takes {w} {unit}, got {a.shape[0]}"
        )
    if a.dtype.kind not in "fiub" and a.dtype != vectors.BFLOAT16:
        raise DataError(f"{locate(i)}: vector elements must be numbers, got dtype {a.dtype}")
    return a


def one_vector(v: Any, locate: Locate, i: int) -> np.ndarray:
    """One row's value as a 1-D array, or DataError (not a flat list of numbers)."""
    try:
        a = np.asarray(v)
    except (ValueError, TypeError):
        raise DataError(f"{locate(i)}: vector is not a flat list of numbers") from None
    if a.ndim != 1:
        raise DataError(f"{locate(i)}: vector must be 1-D, got shape {a.shape}")
    return a


def matrix_from_2d(field: Any, arr: np.ndarray, locate: Locate) -> np.ndarray:
    """A 2-D array (one row per entity) → the storage matrix, checked; ``locate(i)``
    names row ``i`` in messages."""
    k = vectors.kind(field.dtype)
    dim = int(field.dim or 0)
    w = vectors.width(field.dtype, dim)
    raw = arr.ndim == 2 and arr.dtype == np.uint8 and k.itemsize > 1
    if raw and arr.shape[1] == w * k.itemsize:
        # raw little-endian bytes per row (pymilvus's bulk writer stores FLOAT16 / BFLOAT16
        # so in .npy and Parquet files)
        arr = np.ascontiguousarray(arr).view(k.storage)
    if arr.ndim != 2 or arr.shape[1] != w:
        got = arr.shape[1] if arr.ndim == 2 else f"shape {arr.shape}"
        raise DataError(f"{locate(0)}: {k.name} of dim {dim} takes {_shape_word(field)} per "
                        f"row, got {got}")  # fmt: skip
    if arr.dtype == k.storage:
        out = arr
    elif k.dtype == DataType.INT8_VECTOR or k.binary:
        out = _integers(k, arr, locate)
    else:
        out = _floats(k, arr, locate)
    if out.dtype.kind == "f" or out.dtype == vectors.BFLOAT16:
        finite = np.isfinite(out.astype(np.float32, copy=False))
        if not finite.all():
            i = int(np.argmin(finite.all(axis=1)))
            raise DataError(f"{locate(i)}: vector contains NaN or infinity (or exceeds the "
                            f"{k.name} range)")  # fmt: skip
    return np.ascontiguousarray(out)


def _integers(k: vectors.VectorKind, arr: np.ndarray, locate: Locate) -> np.ndarray:
    lo, hi = (0, 255) if k.binary else (-128, 127)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        i = 0
        if arr.dtype.kind == "f":
            frac = arr != np.round(arr)
            if not frac.any():
                arr = arr.astype(np.int64)
                return _integers(k, arr, locate)
            i = int(np.argmax(frac.any(axis=1)))
        what = "bytes (ints in [0, 255])" if k.binary else "integers in [-128, 127]"
        raise DataError(f"{locate(i)}: {k.name} expects {what}, got dtype {arr.dtype}")
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        v = arr[i][bad[i]][0]
        raise DataError(f"{locate(i)}: value {int(v)} is out of range [{lo}, {hi}] for {k.name}")
    return arr.astype(k.storage)


def _floats(k: vectors.VectorKind, arr: np.ndarray, locate: Locate) -> np.ndarray:
    if arr.dtype.kind not in "fiu" and arr.dtype != vectors.BFLOAT16:
        raise DataError(f"{locate(0)}: vector elements must be numbers, got dtype {arr.dtype}")
    src = arr.astype(np.float32, copy=False) if arr.dtype == vectors.BFLOAT16 else arr
    if src.dtype.kind == "f":
        finite = np.isfinite(src)
        if not finite.all():
            i = int(np.argmin(finite.all(axis=1)))
            raise DataError(f"{locate(i)}: vector contains NaN or infinity")
    with np.errstate(over="ignore", invalid="ignore"):
        return src.astype(k.storage)
