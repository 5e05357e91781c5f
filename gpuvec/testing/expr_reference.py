"""A plain-Python, row-at-a-time reference for the filter language (tests only).

Property tests build a small filter *spec* tree with the dataclasses below, render it to
filter text with randomly chosen spellings (``and``/``&&``, hex literals, quotes...),
compile and evaluate that text with :mod:`gpuvec.expr`, and compare the mask with
:func:`evaluate_rows`, which walks the spec over each row (plain dicts) with Milvus's
semantics written out directly: ``(res, valid)`` per row, ``and``/``or`` valid = any
valid, ``not`` = ``not res and valid``; nulls never match; JSON values of another type
match nothing except ``!=``; ints compare exactly, int/float as doubles, FLOAT fields in
float32; int arithmetic wraps to int64 and truncates toward zero.

This module deliberately shares no code with :mod:`gpuvec.expr`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, DataType

MISSING: Any = object()
_I64 = 2**63


# -- spec ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class F:  # a field, or a dynamic key when the schema has no such field
    name: str


@dataclass(frozen=True)
class J:  # base["k"][0]...: base is a JSON field, a dynamic key or "$meta"
    base: str
    path: tuple[str | int, ...]


@dataclass(frozen=True)
class E:  # arr[i] of an ARRAY field
    name: str
    index: int


@dataclass(frozen=True)
class Len:
    target: F | J
    fn: str = "array_length"


@dataclass(frozen=True)
class Ar:
    op: str
    target: F | J | E | Len
    const: int | float
    const_left: bool = False


@dataclass(frozen=True)
class Cmp:
    op: str
    target: Any
    value: Any
    const_left: bool = False


@dataclass(frozen=True)
class Cols:
    op: str
    a: F | E
    b: F | E


@dataclass(frozen=True)
class Rng:
    lo: Any
    op1: str  # "<" or "<=" (rendered reversed as > / >= when flip)
    target: F | J | E
    op2: str
    hi: Any
    flip: bool = False


@dataclass(frozen=True)
class InL:
    target: F | J | E
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class Lk:
    target: F | J | E
    pattern: str


@dataclass(frozen=True)
class Nul:
    target: F | J
    negate: bool = False


@dataclass(frozen=True)
class Ex:
    target: J


@dataclass(frozen=True)
class Ctn:
    fn: str  # e.g. "array_contains_all", any case
    target: F | J
    value: Any


@dataclass(frozen=True)
class Log:
    op: str  # "and" / "or"
    items: tuple[Any, ...]


@dataclass(frozen=True)
class NotP:
    item: Any


@dataclass(frozen=True)
class Bool:
    value: bool


# -- rendering ----------------------------------------------------------------------------
def render(node: Any, rnd: random.Random, params: dict[str, Any] | None = None) -> str:
    """Filter text for a spec, with spellings picked by ``rnd``. With a ``params`` dict,
    some constants become template placeholders ``{pN}`` whose values are added to it
    (pass it as the filter's ``filter_params``)."""
    r = lambda x: render(x, rnd, params)  # noqa: E731
    render_value = lambda v, rnd: _constant(v, rnd, params)  # noqa: E731
    if isinstance(node, F):
        return node.name
    if isinstance(node, J):
        return node.base + "".join(_key(k, rnd) for k in node.path)
    if isinstance(node, E):
        return f"{node.name}[{node.index}]"
    if isinstance(node, Len):
        return f"{node.fn}({r(node.target)})"
    if isinstance(node, Ar):
        c = render_value(node.const, rnd)
        return f"({c} {node.op} {r(node.target)})" if node.const_left else (
            f"({r(node.target)} {node.op} {c})")  # fmt: skip
    if isinstance(node, Cmp):
        v = render_value(node.value, rnd)
        if node.const_left:
            flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.op, node.op)
            return f"{v} {flip} {r(node.target)}"
        return f"{r(node.target)} {node.op} {v}"
    if isinstance(node, Cols):
        return f"{r(node.a)} {node.op} {r(node.b)}"
    if isinstance(node, Rng):
        lo, hi = render_value(node.lo, rnd), render_value(node.hi, rnd)
        if node.flip:
            g = {"<": ">", "<=": ">="}
            return f"{hi} {g[node.op2]} {r(node.target)} {g[node.op1]} {lo}"
        return f"{lo} {node.op1} {r(node.target)} {node.op2} {hi}"
    if isinstance(node, InL):
        word = rnd.choice(["not in", "NOT IN"]) if node.negate else rnd.choice(["in", "IN"])
        return f"{r(node.target)} {word} {render_value(list(node.values), rnd)}"
    if isinstance(node, Lk):
        return f"{r(node.target)} {rnd.choice(['like', 'LIKE'])} {_quote(node.pattern, rnd)}"
    if isinstance(node, Nul):
        words = ["is not null", "IS NOT NULL", "Is Not Null"] if node.negate else [
            "is null", "IS NULL", "is  null"]  # fmt: skip
        return f"{r(node.target)} {rnd.choice(words)}"
    if isinstance(node, Ex):
        return f"{rnd.choice(['exists', 'EXISTS'])} {r(node.target)}"
    if isinstance(node, Ctn):
        return f"{node.fn}({r(node.target)}, {render_value(node.value, rnd)})"
    if isinstance(node, Log):
        words = ["and", "AND", "&&"] if node.op == "and" else ["or", "OR", "||"]
        return "(" + f" {rnd.choice(words)} ".join(r(i) for i in node.items) + ")"
    if isinstance(node, NotP):
        return f"{rnd.choice(['not', 'NOT', '!'])} ({r(node.item)})"
    assert isinstance(node, Bool)
    return rnd.choice(["true", "True", "TRUE"] if node.value else ["false", "False", "FALSE"])


def _constant(v: Any, rnd: random.Random, params: dict[str, Any] | None) -> str:
    """A constant as a literal, or (sometimes, given ``params``) as a placeholder."""
    if params is None or rnd.random() < 0.5:
        return render_value(v, rnd)
    name = f"p{len(params)}"
    params[name] = v
    return "{" + name + "}"


def _key(k: str | int, rnd: random.Random) -> str:
    return f"[{k}]" if isinstance(k, int) else f"[{_quote(k, rnd)}]"


def _quote(s: str, rnd: random.Random) -> str:
    q = rnd.choice("'\"")
    out = []
    for ch in s:
        if ch in ("\\", q):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return q + "".join(out) + q


def render_value(v: Any, rnd: random.Random) -> str:
    if isinstance(v, bool):
        return rnd.choice(["true", "True", "TRUE"] if v else ["false", "False", "FALSE"])
    if isinstance(v, int):
        sign, a = ("-" if v < 0 else ""), abs(v)
        if a >= _I64:  # only -2**63 gets here; 2**63 is not a valid literal
            return f"{sign}{a}"
        form = rnd.choice(["{}", "{}", "0x{:X}", "0o{:o}", "0b{:b}", "0{:o}"])
        if form == "0{:o}" and a == 0:
            form = "{}"
        return sign + form.format(a)
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else "0.0"
    if isinstance(v, str):
        return _quote(v, rnd)
    return "[" + ", ".join(render_value(x, rnd) for x in v) + "]"


# -- row semantics ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Val:
    """A value with how it compares: kind is "f32" for FLOAT fields/elements."""

    v: Any
    f32: bool = False


def evaluate_rows(node: Any, rows: list[dict[str, Any]], schema: CollectionSchema) -> list[bool]:
    """The reference mask: one bool per row. Rows are dicts as ``Table.to_pylist()`` gives
    them: JSON fields and ``$meta`` hold JSON text (None only for a null cell)."""
    fields = {f.name: f for f in schema.fields}
    return [_pred(node, row, fields)[0] for row in rows]


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _wrap(x: int) -> int:
    return (x + _I64) % (2 * _I64) - _I64


def _tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _value(t: Any, row: dict[str, Any], fields: dict[str, Any]) -> tuple[_Val, bool, bool]:
    """(value or MISSING, row valid, JSON semantics) of an operand."""
    if isinstance(t, F) and t.name in fields and fields[t.name].dtype != DataType.JSON:
        f = fields[t.name]
        x = row.get(t.name)
        if x is None:
            return _Val(MISSING), False, False
        return _Val(x, f.dtype == DataType.FLOAT), True, False
    if isinstance(t, F | J):
        base = t.name if isinstance(t, F) else t.base
        path = () if isinstance(t, F) else t.path
        if base in fields:
            text = row.get(base)  # JSON text; None only for a null cell
        else:  # "$meta" itself or a dynamic key
            text = row.get(DYNAMIC_FIELD_NAME) or "{}"
            path = path if base == DYNAMIC_FIELD_NAME else (base, *path)
        if text is None:
            return _Val(MISSING), False, True
        doc = json.loads(text)
        for k in path:
            key = str(k)
            if isinstance(doc, dict) and key in doc:
                doc = doc[key]
            elif isinstance(doc, list) and re.fullmatch(r"0|[1-9][0-9]*", key):
                doc = doc[int(key)] if int(key) < len(doc) else MISSING
            else:
                doc = MISSING
            if doc is MISSING:
                break
        return _Val(doc), True, True
    if isinstance(t, E):
        arr = row.get(t.name)
        if arr is None:
            return _Val(MISSING), False, False
        f32 = fields[t.name].element_type == DataType.FLOAT
        return _Val(arr[t.index] if t.index < len(arr) else MISSING, f32), True, False
    if isinstance(t, Len):
        x, valid, _ = _value(t.target, row, fields)
        return _Val(len(x.v) if isinstance(x.v, list) else MISSING), valid, False
    assert isinstance(t, Ar)
    x, valid, js = _value(t.target, row, fields)
    return _Val(_arith(t, x.v)), valid, js


def _arith(t: Ar, x: Any) -> Any:
    if x is MISSING or not _is_num(x):
        return MISSING
    c = t.const
    a, b = (c, x) if t.const_left else (x, c)
    if isinstance(a, int) and isinstance(b, int):
        if t.op == "/":
            return _wrap(_tdiv(a, b))
        if t.op == "%":
            return _wrap(a - b * _tdiv(a, b))
        return _wrap({"+": a + b, "-": a - b, "*": a * b}[t.op])
    if t.op == "%":
        return MISSING
    a, b = float(a), float(b)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else float("nan")}[t.op]


_OPS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


def _norm(x: Any) -> Any:
    """Numbers as JSON-array equality sees them: an integral float is that integer."""
    if isinstance(x, float) and x.is_integer() and -(2.0**63) <= x < 2.0**63:
        return int(x)
    return x


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values inside arrays (numbers by value, bools only with bools)."""
    if _is_num(a) and _is_num(b):
        return _norm(a) == _norm(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, bool | str) or a is None:
        return type(a) is type(b) and a == b
    return False


def _cmp(op: str, x: _Val, c: Any) -> bool | None:
    """x op c, or None when x has no value of c's type."""
    v = x.v
    if v is MISSING:
        return None
    if isinstance(c, bool):
        return _OPS[op](v, c) if isinstance(v, bool) else None
    if _is_num(c):
        if not _is_num(v):
            return None
        if x.f32:
            with np.errstate(over="ignore"):
                # the constant goes through float64 first, as Milvus casts it
                return bool(_OPS[op](np.float32(float(v)), np.float32(float(c))))
        if isinstance(v, int) and isinstance(c, int):
            return _OPS[op](v, c)
        return _OPS[op](float(v), float(c))
    if isinstance(c, str):
        return _OPS[op](v, c) if isinstance(v, str) else None
    if not isinstance(v, list):
        return None
    return json_equal(v, c) == (op == "==")


def _leaf(op: str, x: _Val, c: Any, json: bool) -> bool:
    got = _cmp(op, x, c)
    return (op == "!=" and json) if got is None else got


def _empty(v: Any) -> bool:
    if isinstance(v, list):
        return all(_empty(x) for x in v)
    if isinstance(v, dict):
        return all(_empty(x) for x in v.values())
    return v is None


def _like(pattern: str, s: str) -> bool:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), s, re.DOTALL) is not None


def _pred(node: Any, row: dict[str, Any], fields: dict[str, Any]) -> tuple[bool, bool]:
    if isinstance(node, Bool):
        return node.value, True
    if isinstance(node, Log):
        parts = [_pred(i, row, fields) for i in node.items]
        res = all(r for r, _ in parts) if node.op == "and" else any(r for r, _ in parts)
        return res, any(v for _, v in parts)
    if isinstance(node, NotP):
        res, valid = _pred(node.item, row, fields)
        return (not res) and valid, valid
    if isinstance(node, Nul):
        t = node.target
        if isinstance(t, F) and t.name in fields:  # a whole schema field: its null cells
            return (row.get(t.name) is None) != node.negate, True
        x, _, _ = _value(t, row, fields)  # a JSON key: (not) exists, as Milvus rewrites it
        exists = x.v is not MISSING and not _empty(x.v)
        return exists == node.negate, True
    if isinstance(node, Ex):
        x, _, _ = _value(node.target, row, fields)
        return x.v is not MISSING and not _empty(x.v), True
    if isinstance(node, Cols):
        a, va, _ = _value(node.a, row, fields)
        b, vb, _ = _value(node.b, row, fields)
        if not (va and vb) or a.v is MISSING or b.v is MISSING:
            return False, va and vb
        if isinstance(a.v, int) and isinstance(b.v, int) and not isinstance(a.v, bool):
            return _OPS[node.op](a.v, b.v), True
        if _is_num(a.v):
            return _OPS[node.op](float(a.v), float(b.v)), True
        return _OPS[node.op](a.v, b.v), True
    if isinstance(node, Ctn):
        return _contains(node, row, fields)
    target = node.target
    x, valid, js = _value(target, row, fields)
    if not valid:
        return False, False
    if isinstance(node, Cmp):
        return _leaf(node.op, x, node.value, js), True
    if isinstance(node, Rng):
        lo = _cmp(node.op1.replace("<", ">"), x, node.lo)
        hi = _cmp(node.op2, x, node.hi)
        return bool(lo and hi), True
    if isinstance(node, InL):
        hit = any(_cmp("==", x, v) for v in node.values)
        return hit != node.negate, True
    assert isinstance(node, Lk)
    return isinstance(x.v, str) and _like(node.pattern, x.v), True


def _contains(node: Ctn, row: dict[str, Any], fields: dict[str, Any]) -> tuple[bool, bool]:
    x, valid, _ = _value(node.target, row, fields)
    if not valid:
        return False, False
    if not isinstance(x.v, list):
        return False, True
    f = fields.get(node.target.name) if isinstance(node.target, F) else None
    f32 = f is not None and f.element_type == DataType.FLOAT
    elems = [_Val(e, f32) for e in x.v]
    has = lambda c: any(_cmp("==", e, c) for e in elems)  # noqa: E731
    fn = node.fn.lower()
    if fn.endswith("_all"):
        return all(has(c) for c in node.value), True
    if fn.endswith("_any"):
        return any(has(c) for c in node.value), True
    return has(node.value), True


def combine_atoms(rng: Any, atom: Any, count: int, most: int = 3) -> list[str]:
    """``count`` filters joined from 1 to ``most - 1`` texts of ``atom()`` by one ``and`` /
    ``or``, a fifth of them negated (``rng``: a NumPy Generator)."""
    out = []
    for _ in range(count):
        parts = [atom() for _ in range(int(rng.integers(1, most)))]
        expr = f" {['and', 'or'][int(rng.integers(0, 2))]} ".join(parts)
        out.append(f"not ({expr})" if rng.random() < 0.2 else expr)
    return out
