"""Operand values for the evaluator: Arrow columns → typed NumPy/Arrow slots.

A :class:`Vals` holds one value per row, possibly of several types at once (a JSON path
can hold an int in one row and a string in the next): for each type *slot* (int, float,
bool, str, list) an array of values and a *present* mask (None: present wherever the row
is valid), plus the row validity (None: no null rows). Scalar columns have one slot;
JSON values have all of them (read lazily from a :class:`JsonValues`); ARRAY elements,
array lengths and arithmetic results are derived here, with vectorised NumPy/Arrow code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuvec.datatypes import FLOAT_TYPES, INT_TYPES, DataType
from gpuvec.expr import arith
from gpuvec.expr import plan as p
from gpuvec.expr.jsoncache import K_BOOL, K_FLOAT, K_INT, K_LIST, K_OBJ, K_STR, JsonValues

LIST = "list"
Slot = tuple[Any, np.ndarray | None]
_JSON_SLOTS = {p.INT: K_INT, p.FLOAT: K_FLOAT, p.BOOL: K_BOOL, p.STR: K_STR}


@dataclass
class Vals:
    n: int
    valid: np.ndarray | None
    slots: dict[str, Slot] = field(default_factory=dict)
    jv: JsonValues | None = None
    json: bool = False  # JSON comparison rules: != is true for missing/other-typed values

    def get(self, slot: str) -> Slot | None:
        """(values, present) for one slot, or None when no row can hold that type."""
        if slot in self.slots:
            return self.slots[slot]
        if self.jv is None:
            return None
        jv = self.jv
        if slot == LIST:
            got: Slot = (jv.canon(), jv.mask(K_LIST) | jv.mask(K_OBJ))
        else:
            values = {p.INT: jv.ints, p.FLOAT: jv.floats, p.BOOL: jv.bools, p.STR: jv.strs}
            got = (values[slot], jv.mask(_JSON_SLOTS[slot]))
        self.slots[slot] = got
        return got


def and_valid(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else a & b


def validity(arr: pa.Array) -> np.ndarray | None:
    """Row validity of an Arrow array as a bool array (None: no nulls)."""
    if not arr.null_count:
        return None
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.bool_)


def slot_of(dtype: DataType) -> str:
    if dtype in INT_TYPES:
        return p.INT
    if dtype in FLOAT_TYPES:
        return p.FLOAT
    return p.BOOL if dtype == DataType.BOOL else p.STR


def scalar_vals(arr: pa.Array, dtype: DataType) -> Vals:
    """A scalar column (ints, floats, bools, strings)."""
    valid = validity(arr)
    return Vals(len(arr), valid, {slot_of(dtype): (_numpy(arr, dtype), None)})


def _numpy(arr: pa.Array, dtype: DataType) -> Any:
    """Values as NumPy (zero-copy when possible; nulls filled); strings stay Arrow."""
    if dtype == DataType.VARCHAR:
        return arr
    if arr.null_count:
        arr = pc.fill_null(arr, False if dtype == DataType.BOOL else 0)
    return arr.to_numpy(zero_copy_only=False)


def list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray | None]:
    """(offsets[n+1] as int64, the child values those offsets index, row validity)."""
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), np.int64)
    valid = validity(arr)
    lengths = np.diff(offsets)
    if valid is None or not lengths[~valid].any():
        return offsets, arr.values, valid
    lengths[~valid] = 0  # null rows own no elements, whatever their offsets say
    new_starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(len(arr)), lengths)
    source = offsets[:-1][rows] + (np.arange(len(rows)) - new_starts[rows])
    compact = np.zeros(len(arr) + 1, np.int64)
    np.cumsum(lengths, out=compact[1:])
    return compact, arr.values.take(pa.array(source, pa.int64())), valid


def array_elements(arr: pa.Array, elem: DataType) -> tuple[Vals, np.ndarray, np.ndarray]:
    """Flattened elements of an ARRAY column as Vals, each element's row, and offsets."""
    offsets, child, _ = list_parts(arr)
    child = child.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    parent = np.repeat(np.arange(len(arr)), np.diff(offsets))
    return scalar_vals(child, elem), parent, offsets


def array_element(arr: pa.Array, index: int, elem: DataType) -> Vals:
    """``arr[index]`` per row; rows with shorter (or null) arrays have no value."""
    offsets, child, valid = list_parts(arr)
    index = min(index, len(child))  # an index past every array: no row has it
    has = np.diff(offsets) > index
    pos = np.where(has, offsets[:-1] + index, 0)
    if len(child) == 0:
        values = scalar_vals(pa.array([None] * len(arr), child.type), elem)
    else:
        values = scalar_vals(child.take(pa.array(pos, pa.int64())), elem)
    slot, (vals, _) = next(iter(values.slots.items()))
    return Vals(len(arr), valid, {slot: (vals, has)})


def array_length(arr: pa.Array) -> Vals:
    offsets, _, valid = list_parts(arr)
    return Vals(len(arr), valid, {p.INT: (np.diff(offsets), None)})


def json_length(vals: Vals) -> Vals:
    assert vals.jv is not None
    offsets, _ = vals.jv.elements()
    return Vals(vals.n, vals.valid, {p.INT: (np.diff(offsets), vals.jv.mask(K_LIST))})


def arith_vals(vals: Vals, node: p.Arith) -> Vals:
    """``operand op const`` per row (see :mod:`gpuvec.expr.arith` for the rules)."""
    op, c, left = node.op, node.const, node.const_left
    out: dict[str, Slot] = {}
    parts: list[tuple[np.ndarray, np.ndarray | None]] = []
    got = vals.get(p.INT)
    if got is not None:
        arr, present = got
        if isinstance(c, int):
            ints = arith.int_column_op(arr.astype(np.int64, copy=False), op, c, left)
            out[p.INT] = (ints, present)
        else:
            parts.append((arith.float_column_op(arr.astype(np.float64), op, c, left), present))
    got = vals.get(p.FLOAT)
    if got is not None and op != "%":  # a float value has no remainder: no value
        arr, present = got
        f = arith.float_column_op(arr.astype(np.float64, copy=False), op, float(c), left)
        parts.append((f, present))
    if len(parts) == 1:
        out[p.FLOAT] = parts[0]
    elif parts:  # JSON ints with a float constant, and JSON floats
        (a, ma), (b, mb) = parts
        assert ma is not None and mb is not None
        out[p.FLOAT] = (np.where(ma, a, b), ma | mb)
    return Vals(vals.n, vals.valid, out, json=vals.json)
