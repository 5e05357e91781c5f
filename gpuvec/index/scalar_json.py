"""JSON path indexes: which rows of a JSON column a path index holds, and under what key.

A JSON path index (``json_path`` + ``json_cast_type`` on an INVERTED / STL_SORT / BITMAP
index of a JSON field) holds, for each row, the value at the path when it has the cast
type: numbers (ints and floats, as doubles) for ``DOUBLE``, strings for ``VARCHAR``,
booleans for ``BOOL``. Rows without the path, or with a value of another type, are
outside the index; a filter comparing the path with a literal of the cast type matches
none of them (the filter engine's JSON rules, :mod:`gpuvec.expr.kernels`), so the index
answers such a filter exactly. With ``json_cast_function`` (Milvus converts values, e.g.
``STRING_TO_DOUBLE``) the index would answer differently from the scan: it is built and
reported, and filters over the path are scanned.

Paths are written as Milvus writes them: ``field["key"]["sub"]``, ``field['key']``,
``field["list"][0]``, or the field name alone for the whole document; they become the
filter engine's path tokens (an index ``[0]`` becomes ``"0"``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.errors import InvalidArgumentError
from gpuvec.expr.jsoncache import (
    K_BOOL,
    K_FLOAT,
    K_INT,
    K_STR,
    JsonValues,
    decode_json_column,
    walk,
)

EXACT_INT = 2**53  # ints beyond this do not round-trip through a double
_TOKEN = re.compile(r"""\[\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(\d+))\s*\]""")
_CAST_KIND = {"DOUBLE": "float", "VARCHAR": "string", "BOOL": "bool"}


def parse_json_path(text: str, field: str) -> tuple[str, ...]:
    """The path tokens of ``text`` (``field["a"][0]`` → ``("a", "0")``); an
    ``InvalidArgumentError`` naming the path when it is not one of ``field``."""
    s = str(text).strip()
    if not s.startswith(field) or (len(s) > len(field) and s[len(field)] != "["):
        raise InvalidArgumentError(
            f"json_path {text!r} must start with the JSON field's name {field!r}"
        )
    tokens, pos = [], len(field)
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            raise InvalidArgumentError(
                f"json_path {text!r} is not a path of {field!r} at position {pos}: "
                'write field["key"]["sub"] or field["list"][0]'
            )
        key = m.group(1) if m.group(1) is not None else m.group(2)
        if key is not None:
            key = re.sub(r"\\(.)", r"\1", key)
        tokens.append(key if key is not None else m.group(3))
        pos = m.end()
    return tuple(tokens)


def value_kind(cast: str) -> str:
    """The kind of the values a path index of cast type ``cast`` holds."""
    return _CAST_KIND[str(cast).upper()]


def path_values(
    column: pa.Array, path: tuple[str, ...], cast: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(values, rows, null_rows, big_ints)`` of a JSON column at ``path``: the values of
    the cast type (float64, str or bool) and the rows holding them, the rows whose JSON
    cell is null, and whether an int beyond :data:`EXACT_INT` was seen (an index holding
    one compares ints inexactly, so it declines int literals)."""
    docs, valid = decode_json_column(column)
    jv = JsonValues([walk(d, path) for d in docs])
    kind = value_kind(cast)
    if kind == "float":
        rows = np.flatnonzero((jv.kind == K_INT) | (jv.kind == K_FLOAT))
        ints = jv.ints[jv.kind == K_INT]
        big = bool(len(ints)) and bool((np.abs(ints.astype(np.float64)) > EXACT_INT).any())
        values = np.where(jv.kind[rows] == K_INT, jv.ints[rows].astype(np.float64),
                          jv.floats[rows])  # fmt: skip
    elif kind == "string":
        rows = np.flatnonzero(jv.kind == K_STR)
        values = np.asarray(jv.strs.take(pa.array(rows)).to_pylist(), dtype=object).astype(str)
        big = False
    else:
        rows = np.flatnonzero(jv.kind == K_BOOL)
        values, big = jv.bools[rows], False
    nulls = np.empty(0, np.int64) if valid is None else np.flatnonzero(~valid)
    return values, rows.astype(np.int64), nulls.astype(np.int64), big


def literal_fits(kind: str, value: Any, big_ints: bool) -> bool:
    """Whether a path index of values of ``kind`` compares with ``value`` exactly as the
    scan does."""
    if kind == "bool":
        return isinstance(value, bool | np.bool_)
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        return False
    if isinstance(value, int | np.integer):
        return not big_ints and abs(int(value)) <= EXACT_INT
    return True
