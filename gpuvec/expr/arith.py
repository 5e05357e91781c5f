"""Arithmetic with Milvus's semantics, on constants and on NumPy columns.

Integers are int64 and wrap on overflow (Go/C++ two's complement); integer division and
modulo truncate toward zero (C++ ``/`` and ``%``: the remainder takes the dividend's
sign); anything involving a float is float64 (a float result may be ±inf, as in Go);
``**`` always gives a float and is refused when it has no finite real value; ``%`` only
applies to integers; a zero divisor is refused. Constant folding raises ValueError with
the reason (never ZeroDivisionError or OverflowError), which the type checker turns into
a FilterError naming the folded expression.
"""

from __future__ import annotations

import math

import numpy as np

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def wrap64(x: int) -> int:
    """x reduced to int64 as two's-complement arithmetic would leave it."""
    return ((x - INT64_MIN) % 2**64) + INT64_MIN


def trunc_div(a: int, b: int) -> int:
    """C-style integer division (truncating toward zero), wrapped to int64."""
    q = abs(a) // abs(b)
    return wrap64(q if (a < 0) == (b < 0) else -q)


def trunc_mod(a: int, b: int) -> int:
    """C-style remainder: ``a - b * trunc_div(a, b)``, wrapped to int64."""
    return wrap64(a - b * trunc_div(a, b))


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def fold(op: str, a: object, b: object) -> int | float:
    """``a op b`` for two constants, as Milvus's parser folds them. Every failure (a zero
    divisor, a result with no finite value, an operand that is not an int64 or float) is a
    ValueError whose text is the reason; no other exception escapes."""
    if not (is_number(a) and is_number(b)):
        raise ValueError(f"'{op}' needs two numbers")
    for v in (a, b):
        if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
            raise ValueError(f"the integer {_show(v)} is out of the int64 range")
    if op == "%" and not (isinstance(a, int) and isinstance(b, int)):
        raise ValueError("modulo only applies to integers")
    if op in ("/", "%") and b == 0:
        raise ValueError(f"{'division' if op == '/' else 'modulo'} by zero")
    try:
        return _fold(op, a, b)  # type: ignore[arg-type]
    except (ArithmeticError, ValueError):  # ZeroDivisionError, OverflowError: kept for safety
        raise ValueError(f"{_show(a)} {op} {_show(b)} has no finite real value") from None


def _fold(op: str, a: int | float, b: int | float) -> int | float:
    if op == "**":
        return math.pow(float(a), float(b))  # ValueError/OverflowError when not finite
    if isinstance(a, int) and isinstance(b, int):
        if op == "/":
            return trunc_div(a, b)
        if op == "%":
            return trunc_mod(a, b)
        return wrap64({"+": a + b, "-": a - b, "*": a * b}[op])
    x, y = float(a), float(b)
    if op not in _FLOAT_OPS:
        raise ValueError(f"unknown operator {op!r}")
    return _FLOAT_OPS[op](x, y)


def _show(v: object) -> str:
    """A number for a message (an int too long to print is described by its size)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 256:
        return f"<an integer of {v.bit_length()} bits>"
    return repr(v)


_FLOAT_OPS = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
}  # fmt: skip


def int_column_op(arr: np.ndarray, op: str, c: int, const_left: bool) -> np.ndarray:
    """``arr op c`` (or ``c op arr``) on an int64 array with wrapping; ``c`` is never a
    zero divisor and a field is never the divisor (the type checker refuses both)."""
    k = np.int64(c)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if op == "+":
            return arr + k
        if op == "-":
            return k - arr if const_left else arr - k
        if op == "*":
            return arr * k
        q = np.floor_divide(arr, k)
        r = arr - q * k
        q = q + ((r != 0) & ((arr < 0) != (c < 0)))
        if op == "/":
            return q
        return arr - q * k  # "%"


def float_column_op(arr: np.ndarray, op: str, c: float, const_left: bool) -> np.ndarray:
    """``arr op c`` (or ``c op arr``) on a float64 array."""
    with np.errstate(all="ignore"):
        if op == "+":
            return arr + c
        if op == "-":
            return c - arr if const_left else arr - c
        if op == "*":
            return arr * c
        return arr / c  # "/" (a float "%" is refused by the type checker)
