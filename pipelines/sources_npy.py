"""NumPy import sources: a group of ``<field>.npy`` files in one directory (Milvus's column
layout, and what pymilvus's ``LocalBulkWriter`` writes per batch, ``$meta.npy`` holding
the dynamic field as JSON text), each with the same row count.

Files are never read whole: planning reads only each file's header (shape, dtype); a chunk
of rows is a slice of ``np.load(..., mmap_mode="r")`` for local files, and one ranged read
of exactly its bytes for remote ones (C-order arrays; others are downloaded to a temporary
file and memory-mapped). Object arrays (pickles — what pymilvus writes for a column with
None values) are refused: gpuvec never unpickles import files.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from gpuvec.pipelines.sources_io import Location

from gpuvec.columns import check_columns, column_type_problem, vector_dim_problem
from gpuvec.errors import DataError
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, DataType

_FORMAT = np.lib.format


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header says: shape, dtype, memory order and where data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape[1:])


def field_of(loc: Location) -> str:
    """The field a ``.npy`` file holds: its name without the extension."""
    return loc.basename.removesuffix(".npy")


def read_header(loc: Location) -> NpyHeader:
    """Read only the header of a ``.npy`` file (a few hundred bytes)."""
    with loc.open() as f:
        try:
            version = _FORMAT.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = _FORMAT.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = _FORMAT.read_array_header_2_0(f)
            else:
                raise ValueError(f"format version {version} is not supported")
        except ValueError as e:
            raise DataError(f"{loc.name}: not a readable NumPy .npy file ({e})") from None
        return NpyHeader(tuple(shape), np.dtype(dtype), bool(fortran), f.tell())


def plan_npy(
    schema: CollectionSchema, group: str, locs: tuple[Location, ...], chunk_rows: int
) -> tuple[list[tuple[int, int]], float]:
    """Check one group against the schema from the headers alone; return its row ranges
    of about ``chunk_rows`` rows and the bytes one row costs to read."""
    headers: dict[str, tuple[Location, NpyHeader]] = {}
    for loc in locs:
        name = field_of(loc)
        if name in headers:
            raise DataError(f"{group}: two files for field {name!r}: {loc.name}")
        headers[name] = (loc, read_header(loc))
    check_columns(schema, headers, group)
    for name, (loc, h) in headers.items():
        _check_file(schema, name, loc, h)
    first, (_, first_h) = next(iter(headers.items()))
    for name, (_, h) in headers.items():
        if h.rows != first_h.rows:
            raise DataError(
                f"{group}: {first}.npy has {first_h.rows} rows but {name}.npy has {h.rows}; "
                "every file of a group holds one value per row"
            )
    n = first_h.rows
    ranges = [(a, min(n, a + chunk_rows)) for a in range(0, n, chunk_rows)]
    return ranges, float(sum(h.row_bytes for _, h in headers.values()))


def _check_file(schema: CollectionSchema, name: str, loc: Location, h: NpyHeader) -> None:
    where = f"{loc.name}, column {name!r}"
    if not h.shape:
        raise DataError(f"{where}: a 0-d array; expected one value per row")
    if h.dtype.hasobject:
        raise DataError(
            f"{where}: holds Python objects (dtype {h.dtype}, a pickle), which gpuvec does "
            "not load: save numbers as numeric arrays and strings as a unicode array "
            "(dtype '<U…'); values that may be None cannot come from NumPy files"
        )
    if name == DYNAMIC_FIELD_NAME:
        if h.dtype.kind != "U" or len(h.shape) != 1:
            raise DataError(f"{where}: expects JSON objects as text (a 1-D '<U…' array), "
                            f"got {len(h.shape)}-D {h.dtype}")  # fmt: skip
        return
    if name not in schema.field_names:  # a dynamic key (check_columns allowed it)
        return
    field = schema.field(name)
    if field.dtype == DataType.ARRAY:
        raise DataError(f"{where}: ARRAY fields cannot be imported from NumPy files (as in "
                        "Milvus): use Parquet or JSON")  # fmt: skip
    problem = column_type_problem(field, h.dtype, len(h.shape))
    if problem is None and field.is_vector:
        problem = vector_dim_problem(field, h.shape[1])
    if problem is not None:
        raise DataError(f"{where}: {problem}")


def read_npy(locs: tuple[Location, ...], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows ``[start, stop)`` of every file of a group, by field: memory-mapped views for
    local files, exactly the chunk's bytes for remote ones."""
    return {field_of(loc): _rows(loc, start, stop) for loc in locs}


def _rows(loc: Location, start: int, stop: int) -> np.ndarray:
    if loc.local:
        return _mapped(loc, loc.path, start, stop)
    h = read_header(loc)
    if h.fortran or h.dtype.hasobject:
        return _downloaded(loc, start, stop)
    data = loc.read_range(h.offset + start * h.row_bytes, h.offset + stop * h.row_bytes)
    if len(data) != (stop - start) * h.row_bytes:
        raise DataError(f"{loc.name}: file ends before row {stop} (it changed since planned)")
    return np.frombuffer(data, dtype=h.dtype).reshape((stop - start, *h.shape[1:]))


def _mapped(loc: Location, path: str, start: int, stop: int) -> np.ndarray:
    try:
        arr: Any = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{loc.name}: cannot memory-map this .npy file ({e})") from None
    if arr.ndim == 0 or arr.shape[0] < stop:
        rows = arr.shape[0] if arr.ndim else 0
        raise DataError(f"{loc.name}: has {rows} rows, the import planned {stop}")
    return arr[start:stop]


def _downloaded(loc: Location, start: int, stop: int) -> np.ndarray:
    """Fortran-order remote files: download once, memory-map, unlink (the map stays)."""
    fd, tmp = tempfile.mkstemp(suffix=".npy", prefix="gpuvec-import-")
    os.close(fd)
    try:
        loc.download(tmp)
        return _mapped(loc, tmp, start, stop)
    finally:
        with contextlib.suppress(OSError):  # where a mapped file cannot be unlinked
            os.unlink(tmp)
