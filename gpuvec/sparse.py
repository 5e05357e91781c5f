"""Sparse float vectors (SPARSE_FLOAT_VECTOR): one row's encoding, a batch of rows, and
the exact inner product.

A row is stored as Milvus sends it over gRPC: ``(index uint32, value float32)`` pairs,
little-endian, indices strictly increasing — 8 bytes per non-zero. That is the row's cell
in an Arrow ``binary`` column, so rows travel through the WAL, the cluster wire and
Parquet as they are, and a gRPC request's ``SparseFloatArray`` contents are the cells.

:class:`SparseRows` is a batch in CSR form (``indptr`` int64 [n+1], ``indices`` uint32,
``values`` float32), built from a binary column without a Python loop. User values —
``{index: value}`` dicts, ``(index, value)`` pair lists, ``(indices, values)`` tuples,
SciPy sparse rows (anything with ``tocoo()``), and the JSON text of a dict (``{"3": 0.5}``
or ``{"indices": [...], "values": [...]}``, as bulk writers store rows) — become cells
through :func:`encode`, which refuses (naming the position) an index outside
``[0, 2**32 - 2]``, a repeated index, a non-finite value or one beyond float32. An empty
row is allowed (it matches nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.errors import DataError

MAX_INDEX = 2**32 - 2  # Milvus keeps 2**32 - 1 out of the index space
PAIR = np.dtype([("index", "<u4"), ("value", "<f4")])
_F32_MAX = float(np.finfo(np.float32).max)

__all__ = ["MAX_INDEX", "SparseRows", "column", "encode", "to_dict"]


def _pairs(value: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices, values) of one user value, unchecked; None when it is no sparse row."""
    if isinstance(value, str):  # JSON text, as bulk writers store a sparse row in Parquet
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict) and set(value) == {"indices", "values"}:  # Milvus's JSON form
        value = (list(value["indices"]), list(value["values"]))
    if isinstance(value, dict):  # {index: value}; JSON keys are digit strings
        return np.array([float(k) for k in value], np.float64), np.fromiter(
            value.values(), np.float64, len(value))  # fmt: skip
    if hasattr(value, "tocoo") and hasattr(value, "shape"):  # a SciPy sparse row
        coo = value.tocoo()
        if len(coo.shape) == 2 and coo.shape[0] != 1:
            return None
        cols = coo.col if len(coo.shape) == 2 else coo.coords[0]
        return np.asarray(cols, np.float64), np.asarray(coo.data, np.float64)
    if isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(x, list | np.ndarray) for x in value
    ):  # (indices, values)  # fmt: skip
        idx, val = np.asarray(value[0], np.float64), np.asarray(value[1], np.float64)
        return (idx, val) if idx.ndim == 1 and idx.shape == val.shape else None
    if isinstance(value, list | tuple) and all(
        isinstance(p, list | tuple) and len(p) == 2 for p in value
    ):  # [(index, value), ...]  # fmt: skip
        if not value:
            return np.empty(0), np.empty(0)
        try:
            arr = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            return None
        return arr[:, 0], arr[:, 1]
    return None


def encode(value: Any, where: str) -> bytes:
    """One user value → the row's cell (module docstring); ``DataError`` naming ``where``."""
    if isinstance(value, bytes | bytearray):  # a cell already (8 bytes per pair)
        raw = bytes(value)
        if len(raw) % PAIR.itemsize:
            raise DataError(f"{where}: a sparse vector's bytes must be 8-byte (index, value) "
                            f"pairs, got {len(raw)} bytes")  # fmt: skip
        pairs = np.frombuffer(raw, PAIR)
        idx, val = pairs["index"].astype(np.float64), pairs["value"].astype(np.float64)
    else:
        try:
            got = _pairs(value)
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: not a sparse vector ({e})") from e
        if got is None:
            raise DataError(
                f"{where}: a sparse vector is a dict {{index: value}}, a list of (index, "
                f"value) pairs or a SciPy sparse row, got {type(value).__name__}"
            )
        idx, val = got
    if len(idx):
        bad = ~((idx >= 0) & (idx <= MAX_INDEX) & (idx == np.floor(idx)))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: sparse index {idx[i]:.0f} at position {i} is not an "
                            f"integer in [0, {MAX_INDEX}]")  # fmt: skip
        bad = ~np.isfinite(val) | (np.abs(val) > _F32_MAX)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: sparse value {float(val[i])!r} at index {int(idx[i])} "
                            "is NaN, infinite or beyond float32")  # fmt: skip
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    if len(idx) > 1 and (dup := np.flatnonzero(idx[1:] == idx[:-1])).size:
        raise DataError(f"{where}: sparse index {int(idx[dup[0]])} appears more than once")
    out = np.empty(len(idx), PAIR)
    out["index"], out["value"] = idx.astype(np.uint32), val.astype(np.float32)
    return out.tobytes()


def column(values: list[Any], locate: Callable[[int], str]) -> pa.Array:
    """User values → a binary column of cells (None stays null)."""
    return pa.array([None if v is None else encode(v, locate(i)) for i, v in enumerate(values)],
                    pa.binary())  # fmt: skip


def to_dict(cell: bytes | None) -> dict[int, float] | None:
    """A cell → ``{index: value}`` (pymilvus's shape of a sparse vector in results)."""
    if cell is None:
        return None
    pairs = np.frombuffer(cell, PAIR)
    return dict(zip(pairs["index"].tolist(), pairs["value"].tolist(), strict=True))


class SparseRows:
    """A batch of sparse rows in CSR form (module docstring); ``indptr[0]`` is 0."""

    __slots__ = ("indices", "indptr", "values")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
        self.indptr = np.asarray(indptr, np.int64)
        self.indices = np.asarray(indices, np.uint32)
        self.values = np.asarray(values, np.float32)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @classmethod
    def from_cells(cls, cells: pa.Array | pa.ChunkedArray | list[bytes | None]) -> SparseRows:
        """From a binary column (null cells: empty rows) or a list of cells."""
        if isinstance(cells, list):
            cells = pa.array(cells, pa.binary())
        if isinstance(cells, pa.ChunkedArray):
            cells = cells.combine_chunks() if cells.num_chunks != 1 else cells.chunk(0)
        if cells.type != pa.binary():
            cells = cells.cast(pa.binary())
        n = len(cells)
        if cells.null_count:
            cells = cells.fill_null(b"")
        bufs = cells.buffers()
        offsets = np.frombuffer(bufs[1], np.int32, n + 1, cells.offset * 4).astype(np.int64)
        data = bufs[2]
        start, stop = int(offsets[0]), int(offsets[-1])
        if data is None or stop <= start:
            raw = np.empty(0, np.uint8)
        else:
            raw = np.frombuffer(data, np.uint8, stop - start, start)
        pairs = raw.view(PAIR)
        return cls((offsets - start) // PAIR.itemsize, pairs["index"], pairs["value"])

    def cells(self) -> pa.Array:
        """Back to a binary column of cells."""
        pairs = np.empty(self.nnz, PAIR)
        pairs["index"], pairs["value"] = self.indices[: self.nnz], self.values[: self.nnz]
        offsets = (self.indptr * PAIR.itemsize).astype(np.int32)
        return pa.Array.from_buffers(pa.binary(), len(self), [
            None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(pairs.tobytes())])  # fmt: skip

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.indices[a:b], self.values[a:b]

    def head(self, n: int) -> SparseRows:
        """The first ``n`` rows (views)."""
        return SparseRows(self.indptr[: n + 1], self.indices, self.values)

    def extended(self, tail: SparseRows) -> SparseRows:
        """These rows followed by ``tail``'s."""
        base, t = int(self.indptr[-1]), int(tail.indptr[-1])
        indptr = np.concatenate([self.indptr, tail.indptr[1:] + base])
        indices = np.concatenate([self.indices[:base], tail.indices[:t]])
        values = np.concatenate([self.values[:base], tail.values[:t]])
        return SparseRows(indptr, indices, values)

    def row_ids(self) -> np.ndarray:
        """The row of each stored non-zero (int64 [nnz])."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.indptr))

    def dims(self) -> int:
        """One past the largest index (Milvus's ``dim`` of a sparse batch)."""
        nz = self.indices[: self.nnz]
        return int(nz.max()) + 1 if len(nz) else 0


def ip_scores(base: SparseRows, q_idx: np.ndarray, q_val: np.ndarray) -> np.ndarray:
    """Inner products of every row of ``base`` with one query (float32 [len(base)])."""
    n, nnz = len(base), base.nnz
    if not len(q_idx) or not nnz:
        return np.zeros(n, np.float32)
    idx = base.indices[:nnz]
    pos = np.searchsorted(q_idx, idx)
    pos[pos >= len(q_idx)] = 0
    hit = q_idx[pos] == idx
    weights = np.where(hit, base.values[:nnz].astype(np.float64) * q_val[pos], 0.0)
    return np.bincount(base.row_ids(), weights=weights, minlength=n).astype(np.float32)
