"""ARRAY field indexes: the postings of each element value, for ``array_contains``,
``array_contains_any`` and ``array_contains_all``.

An INVERTED or BITMAP index on an ARRAY field of ints, strings or booleans holds, for each
distinct element value, the rows whose array contains it (each row once, rows increasing).
``array_contains(f, x)`` and ``array_contains_any(f, [x, y])`` are the union of the values'
postings, ``array_contains_all`` their intersection. A literal is matched by the filter
engine's rules (:func:`gpuvec.expr.kernels.is_in`): an int element equals an int, or a
float with an integral value; strings equal strings; booleans booleans; any other literal
matches no element. Arrays of floats are not indexed for filters (float32 elements compare
in float32: the scan stays the reference), nor is a lookup answered when its result would
mark more than ``dense`` of the rows (setting those bits costs more than the scan).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.datatypes import DataType
from gpuvec.expr.values import list_parts, validity

_INTS = (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)


def element_kind(elem: DataType | None) -> str | None:
    """The kind of element values an ARRAY index answers for (None: not indexed)."""
    if elem in _INTS:
        return "int"
    if elem == DataType.VARCHAR:
        return "string"
    if elem == DataType.BOOL:
        return "bool"
    return None


def postings(column: pa.Array, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(values, offsets, rows, null_rows)``: the distinct element values sorted, the CSR
    offsets into ``rows`` (the rows containing each value, each once, increasing) and the
    rows whose array is null."""
    offsets, child, _ = list_parts(column)
    child = child.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    parent = np.repeat(np.arange(len(column), dtype=np.int64), np.diff(offsets))
    raw = child.to_numpy(zero_copy_only=False)
    if kind == "string":
        raw = np.asarray(raw, dtype=object).astype(str)
    elif kind == "int":
        raw = raw.astype(np.int64)
    order = np.lexsort((parent, raw))  # by value, then row
    vals, rows = raw[order], parent[order]
    keep = np.ones(len(vals), bool)  # a value repeated in one row counts the row once
    if len(vals) > 1:
        keep[1:] = (vals[1:] != vals[:-1]) | (rows[1:] != rows[:-1])
    vals, rows = vals[keep], rows[keep]
    uniq, starts = np.unique(vals, return_index=True)
    valid = validity(column)
    nulls = np.empty(0, np.int64) if valid is None else np.flatnonzero(~valid)
    return uniq, np.append(starts, len(vals)).astype(np.int64), rows, nulls.astype(np.int64)


def key_of(kind: str, value: Any) -> Any:
    """The element value ``value`` equals under the engine's rules, or None (no element)."""
    if kind == "bool":
        return bool(value) if isinstance(value, bool | np.bool_) else None
    if kind == "string":
        return value if isinstance(value, str) else None
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        v = int(value)
        return v if -(2**63) <= v < 2**63 else None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        v = int(value)
        return v if -(2**63) <= v < 2**63 else None
    return None


def contains(
    values: np.ndarray, offsets: np.ndarray, rows: np.ndarray, n: int, mode: str,
    literals: tuple[Any, ...], kind: str, dense: float,
) -> np.ndarray | None:  # fmt: skip
    """The rows matching ``array_contains`` (mode ``one``), ``_any`` or ``_all`` of
    ``literals``, as a mask; None when that would mark more than ``dense`` of the rows."""

    def rows_of(lit: Any) -> np.ndarray:
        key = key_of(kind, lit)
        if key is None or not len(values):
            return np.empty(0, np.int64)
        i = int(np.searchsorted(values, key))
        if i >= len(values) or values[i] != key:
            return np.empty(0, np.int64)
        return rows[offsets[i] : offsets[i + 1]]

    lists = [rows_of(lit) for lit in literals]
    if mode == "all":
        if not lists:
            return None  # every array: the scan's business
        hit = min(lists, key=len)
        for other in lists:
            if len(hit) == 0:
                break
            hit = np.intersect1d(hit, other, assume_unique=True)
    else:
        hit = np.unique(np.concatenate(lists)) if len(lists) > 1 else (
            lists[0] if lists else np.empty(0, np.int64))  # fmt: skip
    if len(hit) > dense * n:
        return None
    mask = np.zeros(n, bool)
    mask[hit] = True
    return mask
