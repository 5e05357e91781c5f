"""JSON values of rows and requests: bounded parsing and serialisation.

Split out of :mod:`gpuvec.rows` (which converts whole rows): this module owns what one JSON
value may be, wherever it comes from — a JSON field or the dynamic field of a row, JSON
text a client sends in search/index parameters or filter template values.

Invariants:

- A JSON value nests arrays/objects at most :data:`JSON_MAX_DEPTH` levels deep and its
  text is at most :data:`JSON_MAX_LENGTH` UTF-8 bytes (Milvus's ``common.JSONMaxLength``).
  Both limits are checked before the text is parsed, so hostile input can neither exhaust
  the parser's recursion nor cost more than a linear scan of a bounded text.
- NaN, ±infinity and numbers past float64 (``1e400``) are not JSON numbers (Milvus's
  parser refuses them; Python's accepts them).
- Every failure is the caller's error class (a :class:`~gpuvec.errors.GpuvecError`, by
  default :class:`~gpuvec.errors.DataError`) naming where the value came from; no
  ``RecursionError`` or bare ``ValueError`` escapes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from gpuvec.errors import DataError, GpuvecError

__all__ = [
    "JSON_MAX_DEPTH",
    "JSON_MAX_LENGTH",
    "json_text",
    "json_too_deep",
    "load_json",
    "plain_json",
]

JSON_MAX_LENGTH = 65536  # bytes per JSON value: Milvus's common.JSONMaxLength default
JSON_MAX_DEPTH = 64  # arrays/objects nested in one JSON value
Locate = Callable[[int], str]  # index -> "insert row 3, field 'age'" for error messages

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a JSON string literal
_BRACKET = re.compile(r"[\[\]{}]")


class _Constant(ValueError):
    """NaN / Infinity / -Infinity met while parsing."""


def _refuse_constant(name: str) -> Any:
    raise _Constant(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: past float64, as Milvus's parser refuses it
        raise _Constant(text)
    return value


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def json_too_deep(text: str, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects more than ``limit`` levels deep (brackets in
    string literals do not count). Free for text with few brackets; otherwise one scan."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def load_json(
    text: str | bytes,
    where: str,
    *,
    error: type[GpuvecError] = DataError,
    max_bytes: int = JSON_MAX_LENGTH,
) -> Any:
    """Parse one JSON value within the limits of this module; ``error`` naming ``where``
    when it is not valid UTF-8, too long, too deep, not JSON, or holds a number that is
    not finite."""
    if isinstance(text, bytes | bytearray):
        size = len(text)
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{where}: JSON text is not valid UTF-8") from None
    else:
        size = len(text) if len(text) * 4 <= max_bytes else len(text.encode("utf-8", "replace"))
    if size > max_bytes:
        raise error(f"{where}: JSON value of {size} bytes exceeds {max_bytes} bytes")
    if json_too_deep(text):
        raise error(f"{where}: JSON value is nested deeper than {JSON_MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _Constant as exc:
        raise error(f"{where}: {exc} is not a finite JSON number") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{where}: not valid JSON text ({exc.msg} at position {exc.pos}): {_show(text)}"
        ) from None
    except ValueError:  # an integer past Python's digit limit (sys.get_int_max_str_digits)
        raise error(f"{where}: JSON number with too many digits") from None
    except RecursionError:  # not reached: the depth is checked above
        raise error(f"{where}: JSON value is nested too deeply") from None


def plain_json(v: Any, where: str, depth: int = 0) -> Any:
    """A JSON-compatible copy of v (NumPy → Python), or DataError naming the bad part:
    non-string keys, NaN/infinity, values JSON cannot hold, nesting past the limit (a
    self-containing list or dict stops there too)."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise DataError(f"{where}: NaN and infinity are not valid JSON")
        return v
    if isinstance(v, np.generic | np.ndarray):
        return plain_json(v.tolist(), where, depth)
    if isinstance(v, dict | list | tuple) and depth >= JSON_MAX_DEPTH:
        raise DataError(f"{where}: JSON value is nested deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            bad = next(k for k in v if not isinstance(k, str))
            raise DataError(f"{where}: JSON object keys must be strings, got {_show(bad)}")
        return {k: plain_json(x, where, depth + 1) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain_json(x, where, depth + 1) for x in v]
    raise DataError(f"{where}: {type(v).__name__} is not JSON serializable")


def json_text(v: Any, locate: Locate, i: int = 0, *, raw_str: bool = False) -> str | None:
    """Compact JSON text of v (None stays None), within this module's limits. With
    raw_str, a str must already be JSON text, as pymilvus treats strings given to a JSON
    field."""
    if v is None:
        return None
    if raw_str and isinstance(v, str):
        load_json(v, locate(i))
        return v
    value = plain_json(v, locate(i))
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # an integer past Python's digit limit
        raise DataError(f"{locate(i)}: JSON number with too many digits") from None
    if len(text) * 4 > JSON_MAX_LENGTH and len(text.encode("utf-8")) > JSON_MAX_LENGTH:
        raise DataError(f"{locate(i)}: JSON value exceeds {JSON_MAX_LENGTH} bytes")
    return text
