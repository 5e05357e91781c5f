"""Vectorised predicate kernels over :class:`~gpuvec.expr.values.Vals`.

Each kernel returns the row mask ``res`` (a NumPy bool array); rows whose operand is null
are False (the caller carries the validity for NOT). Milvus's comparison rules:

- an int compares with an int exactly; an int with a float as doubles; a FLOAT (float32)
  column compares with the constant cast to float32;
- a JSON value of another type than the constant (or a missing key) matches nothing,
  except that ``!=`` is *true* for it (Milvus's JSON NotEqual);
- strings compare by code point (UTF-8 byte order), bools only with bools.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuvec.expr import plan as p
from gpuvec.expr.jsoncache import canonical
from gpuvec.expr.values import LIST, Vals

_NP = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal}
_NP |= {">": np.greater, ">=": np.greater_equal}
_PC = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal}
_PC |= {">": pc.greater, ">=": pc.greater_equal}
# result of `x op c` for every x when c is above (resp. below) the range of x's dtype
_ABOVE = {"<": True, "<=": True, "!=": True, ">": False, ">=": False, "==": False}
_BELOW = {k: not v if k not in ("==", "!=") else v for k, v in _ABOVE.items()}


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean result as NumPy, nulls as False."""
    if arr.null_count:
        arr = pc.fill_null(arr, False)
    return np.asarray(arr.to_numpy(zero_copy_only=False), np.bool_)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _slots_for(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return (p.BOOL,)
    if isinstance(value, int | float):
        return (p.INT, p.FLOAT)
    return (p.STR,) if isinstance(value, str) else (LIST,)


def _int_cmp(arr: np.ndarray, op: str, c: int) -> np.ndarray:
    info = np.iinfo(arr.dtype)
    if c > info.max:
        return np.full(len(arr), _ABOVE[op])
    if c < info.min:
        return np.full(len(arr), _BELOW[op])
    return _NP[op](arr, arr.dtype.type(c))


def _cmp_slot(slot: str, arr: Any, op: str, c: Any) -> np.ndarray:
    if slot == p.INT:
        return _int_cmp(arr, op, c) if _is_int(c) else _NP[op](arr.astype(np.float64), c)
    if slot == p.FLOAT:
        with np.errstate(over="ignore"):  # a huge constant becomes inf in float32
            return _NP[op](arr, arr.dtype.type(c))
    if slot == p.BOOL:
        return _NP[op](arr, np.bool_(c))
    if slot == p.STR:
        return _bools(_PC[op](arr, pa.scalar(c, pa.string())))
    return _bools(_PC[op](arr, pa.scalar(canonical(c), pa.string())))  # lists: == / !=


def _finish(vals: Vals, res: np.ndarray | None) -> np.ndarray:
    if res is None:
        res = np.zeros(vals.n, np.bool_)
    if vals.valid is not None:
        res &= vals.valid
    return res


def _acc(res: np.ndarray | None, r: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    if present is not None:
        r = r & present
    return r if res is None else res | r


def compare(vals: Vals, op: str, c: Any) -> np.ndarray:
    """``value op c`` per row."""
    json_ne = vals.json and op == "!="
    res: np.ndarray | None = None
    for slot in _slots_for(c):
        got = vals.get(slot)
        if got is not None:
            arr, present = got
            res = _acc(res, _cmp_slot(slot, arr, "==" if json_ne else op, c), present)
    if json_ne:
        res = np.ones(vals.n, np.bool_) if res is None else ~res
    return _finish(vals, res)


def in_range(vals: Vals, lo: Any, lo_incl: bool, hi: Any, hi_incl: bool) -> np.ndarray:
    res = compare(vals, ">=" if lo_incl else ">", lo)
    res &= compare(vals, "<=" if hi_incl else "<", hi)
    return res


def is_in(vals: Vals, values: tuple[Any, ...]) -> np.ndarray:
    """``value in values`` per row (each value matched by the same rules as ==)."""
    ints = [v for v in values if _is_int(v)]
    floats = [v for v in values if isinstance(v, float)]
    res: np.ndarray | None = None
    got = vals.get(p.INT)
    if got is not None and (ints or floats):
        arr, present = got
        info = np.iinfo(arr.dtype)
        r = np.isin(arr, np.array([v for v in ints if info.min <= v <= info.max], arr.dtype))
        if floats:
            r |= np.isin(arr.astype(np.float64), np.array(floats))
        res = _acc(res, r, present)
    got = vals.get(p.FLOAT)
    if got is not None and (ints or floats):
        arr, present = got
        with np.errstate(over="ignore"):
            wanted = np.array(ints + floats, np.float64).astype(arr.dtype)
        res = _acc(res, np.isin(arr, wanted), present)
    bools = [v for v in values if isinstance(v, bool)]
    got = vals.get(p.BOOL) if bools else None
    if got is not None:
        res = _acc(res, np.isin(got[0], np.array(bools, np.bool_)), got[1])
    for slot, keep, conv in ((p.STR, str, str), (LIST, list, canonical)):
        items = [conv(v) for v in values if isinstance(v, keep)]
        got = vals.get(slot) if items else None
        if got is not None:
            r = _bools(pc.is_in(got[0], value_set=pa.array(items, pa.string())))
            res = _acc(res, r, got[1])
    return _finish(vals, res)


def like(vals: Vals, pattern: p.LikePattern) -> np.ndarray:
    got = vals.get(p.STR)
    res = None
    if got is not None:
        arr, present = got
        kind, text = pattern.kind, pattern.text
        if kind == "equal":
            r = pc.equal(arr, pa.scalar(text, pa.string()))
        elif kind == "prefix":
            r = pc.starts_with(arr, pattern=text)
        elif kind == "suffix":
            r = pc.ends_with(arr, pattern=text)
        elif kind == "contains":
            r = pc.match_substring(arr, pattern=text)
        elif kind == "any":
            r = pc.is_valid(arr)
        else:
            r = pc.match_like(arr, pattern=pattern.arrow)
        res = _acc(None, _bools(r), present)
    return _finish(vals, res)


def compare_columns(a: Vals, b: Vals, op: str) -> np.ndarray:
    """``a op b`` for two scalar operands (one slot each)."""
    (sa, (xa, pa_)), (sb, (xb, pb)) = next(iter(a.slots.items())), next(iter(b.slots.items()))
    if sa == p.STR:
        res = _bools(_PC[op](xa, xb))
    elif sa == p.BOOL:
        res = _NP[op](xa, xb)
    elif sa == sb == p.INT:
        res = _NP[op](xa.astype(np.int64, copy=False), xb.astype(np.int64, copy=False))
    else:
        res = _NP[op](xa.astype(np.float64, copy=False), xb.astype(np.float64, copy=False))
    for m in (pa_, pb, a.valid, b.valid):
        if m is not None:
            res &= m
    return res


def contains(
    elems: Vals, parent: np.ndarray, n: int, mode: str, values: tuple[Any, ...]
) -> np.ndarray:
    """Per row: its elements contain ``values[0]`` (one), every value (all) or any."""
    if mode == "all":
        res = np.ones(n, np.bool_)
        for v in values:
            res &= np.bincount(parent[is_in(elems, (v,))], minlength=n).astype(np.bool_)
        return res
    return np.bincount(parent[is_in(elems, values)], minlength=n).astype(np.bool_)
