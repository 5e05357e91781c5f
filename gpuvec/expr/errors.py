"""The filter language's one error class and its limits.

Every problem with a filter — a syntax error, an unknown field, a type mismatch, a limit
exceeded — raises :class:`FilterError`, an :class:`~gpuvec.errors.InvalidArgumentError`
whose message names the offending token, its character position and the filter text.
"""

from __future__ import annotations

from gpuvec.errors import InvalidArgumentError

MAX_FILTER_BYTES = 65536  # UTF-8 bytes of filter text
MAX_DEPTH = 200  # nesting levels of the parsed expression tree
_SHOW = 120  # characters of the filter shown in a message


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
        super().__init__(f"{head}: {reason}" + (f" [filter: {text}]" if expr else ""))


def error_at(expr: str, pos: int | None, end: int | None, reason: str) -> FilterError:
    """A FilterError for the span ``expr[pos:end]`` (the token shown in the message)."""
    token = expr[pos:end] if pos is not None and end is not None else None
    return FilterError(reason, expr=expr, pos=pos, token=token)
