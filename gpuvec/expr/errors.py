"""The filter language's one error class and its limits.

Every problem with a filter — a syntax error, an unknown field, a type mismatch, a limit
exceeded — raises :class:`FilterError`, an :class:`~gpuvec.errors.InvalidArgumentError`
whose message names the offending token, its character position and the filter text.
Messages are always valid, printable UTF-8: lone surrogates and control characters of
the filter are shown as escapes (``\\ud800``, ``\\x00``), huge integers by their size.
"""

from __future__ import annotations

import re

from gpuvec.errors import InvalidArgumentError

MAX_FILTER_BYTES = 65536  # UTF-8 bytes of filter text
MAX_DEPTH = 200  # nesting levels of the parsed expression tree
_SHOW = 120  # characters of the filter shown in a message
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates escaped (always encodable)."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)


def find_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (not valid UTF-8), or None."""
    m = _SURROGATE.search(text)
    return None if m is None else m.start()


def show_int(v: int) -> str:
    """An integer for a message: its digits, or its size when it is too long to print."""
    if v.bit_length() <= 256:
        return str(v)
    return f"{'-' if v < 0 else ''}<an integer of {v.bit_length()} bits>"


class FilterError(InvalidArgumentError):
    """A filter expression is invalid. ``reason`` is the bare cause, ``pos`` the character
    offset of the offending token (or None), ``token`` its text and ``expr`` the filter."""

    def __init__(
        self, reason: str, *, expr: str = "", pos: int | None = None, token: str | None = None
    ) -> None:
        self.reason, self.expr, self.pos, self.token = reason, expr, pos, token
        head = "filter error"
        if pos is not None:
            head += f" at position {pos}"
            if token:
                shown = token if len(token) <= 40 else token[:37] + "..."
                head += f' ("{shown}")'
        text = expr if len(expr) <= _SHOW else expr[: _SHOW - 3] + "..."
        message = f"{head}: {reason}" + (f" [filter: {text}]" if expr else "")
        super().__init__(printable(message))


def error_at(expr: str, pos: int | None, end: int | None, reason: str) -> FilterError:
    """A FilterError for the span ``expr[pos:end]`` (the token shown in the message)."""
    token = expr[pos:end] if pos is not None and end is not None else None
    return FilterError(reason, expr=expr, pos=pos, token=token)
