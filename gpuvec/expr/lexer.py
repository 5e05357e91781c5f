"""Tokenizer of the filter language: text → tokens, each with its character span.

Follows the lexical rules of Milvus's ``Plan.g4``: integers in decimal, hex (``0x1F``),
octal (``0o17`` and the legacy ``017``) and binary (``0b101``); floats with a fraction
and/or an exponent (and C hex floats such as ``0x1.8p3``); single- or double-quoted
strings with C/Go escapes (``r"..."`` keeps backslashes); identifiers; ``$meta``; and the
operator symbols. Keywords are recognised by the parser, not here. An unknown escape such
as ``\\%`` keeps its backslash, so LIKE patterns can escape ``%`` and ``_`` directly.

Only ASCII is syntax, as in ``Plan.g4`` (``Digit: [0-9]``, ``Nondigit: [a-zA-Z_]``):
digits, letters and whitespace are tested with explicit ASCII sets — never with
``str.isdigit``/``isalpha``/``isspace`` or ``\\d``, which accept other scripts — so
``٣`` or ``３`` is an unexpected character, not the number 3. Other characters may only
appear inside string literals. A float literal beyond float64 is an error naming it, as
Milvus's ``ParseFloat(s, 64)``; an integer literal keeps its exact value (None when too
long to convert) and the parser applies ``ParseInt(s, 0, 64)``'s int64 range, except in
subscripts (``j[99999999999999999999]``), which Milvus reads as JSON keys. Text holding a
lone surrogate (not valid UTF-8) is refused as a whole.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gpuvec.expr.errors import error_at, find_surrogate

NAME, META, INT, FLOAT, STR, OP, EOF = "name", "meta", "int", "float", "str", "op", "eof"

DIGITS = frozenset("0123456789")
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | DIGITS
_SPACE = frozenset(" \t\r\n")
_OPS = (
    "**", "<=", ">=", "==", "!=", "&&", "||", "<<", ">>", "=~", "!~",
    "+", "-", "*", "/", "%", "<", ">", "!", "(", ")", "[", "]", ",", "{", "}", "~", "&", "|",
    "^", "=",
)  # fmt: skip
_NUM_RE = re.compile(
    r"0[xX](?P<hexf>(?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)"
    r"|0[xX](?P<hex>[0-9a-fA-F]+)"
    r"|0[bB](?P<bin>[01]+)"
    r"|0[oO](?P<oct>[0-7]+)"
    r"|(?P<float>([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
    r"|(?P<int>[0-9]+)",
    re.ASCII,
)  # each digit run can match one way only: no backtracking blow-up on 60,000 digits
_SIMPLE_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
    "f": "\f", "v": "\v", "?": "?",
}  # fmt: skip
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_MAX_INT_DIGITS = 4000  # longer integer literals are not converted (value None)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # the source text of the token
    pos: int
    end: int
    value: object = None  # int, float or str for literals


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text`` followed by an EOF token; FilterError on a lexical error."""
    bad = find_surrogate(text)
    if bad is not None:
        raise error_at(
            text, bad, bad + 1, f"invalid character U+{ord(text[bad]):04X}: a lone surrogate "
            "is not valid UTF-8"
        )  # fmt: skip
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        if ch in "'\"" or (ch in "rR" and i + 1 < n and text[i + 1] in "'\""):
            tok = _string(text, i)
        elif ch in DIGITS or (ch == "." and i + 1 < n and text[i + 1] in DIGITS):
            tok = _number(text, i)
        elif ch in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            tok = Token(NAME, text[i:j], i, j)
        elif text.startswith("$meta", i) and not _is_name_char(text, i + 5):
            tok = Token(META, "$meta", i, i + 5)
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise error_at(text, i, i + 1, _unexpected(ch))
            tok = Token(OP, op, i, i + len(op))
        out.append(tok)
        i = tok.end
    out.append(Token(EOF, "", n, n))
    return out


def _unexpected(ch: str) -> str:
    """Why ``ch`` cannot start a token (with a hint for look-alikes of ASCII syntax)."""
    reason = f"unexpected character {ch!r}"
    if ch.isascii():
        return reason
    reason += f" (U+{ord(ch):04X})"
    if ch.isdigit() or ch.isnumeric():
        return reason + "; numbers are written with the ASCII digits 0-9 only"
    if ch.isalpha():
        return reason + "; names use ASCII letters, digits and '_' (quote other text)"
    if ch.isspace():
        return reason + "; only spaces, tabs and newlines separate tokens"
    return reason + "; characters outside ASCII may only appear inside quoted strings"


def _is_name_char(text: str, i: int) -> bool:
    return i < len(text) and text[i] in _NAME_CHARS


def _number(text: str, i: int) -> Token:
    m = _NUM_RE.match(text, i)
    if m is None:  # the caller saw an ASCII digit, which always matches: kept for safety
        raise error_at(text, i, i + 1, "invalid number literal")
    end = m.end()
    if _is_name_char(text, end) or (end < len(text) and text[end] == "."):
        j = end
        while _is_name_char(text, j) or (j < len(text) and text[j] == "."):
            j += 1
        raise error_at(text, i, j, "invalid number literal")
    raw = m.group()
    if m.group("hexf") is not None:
        try:
            value = float.fromhex(raw)
        except OverflowError:
            value = math.inf
        except ValueError:  # the pattern admits only valid hex floats: kept for safety
            raise error_at(text, i, end, "invalid hexadecimal float literal") from None
        return _float_token(text, i, end, value)
    if m.group("float") is not None:
        return _float_token(text, i, end, float(raw))  # ASCII only: no locale, no Unicode
    for group, base in (("hex", 16), ("bin", 2), ("oct", 8)):
        digits = m.group(group)
        if digits is not None:
            return _int_token(text, i, end, digits, base)
    if len(raw) > 1 and raw[0] == "0":  # legacy C octal, as Go's ParseInt(s, 0, 64)
        if any(c not in _OCTAL for c in raw):
            raise error_at(text, i, end, "invalid octal literal (a leading 0 means octal)")
        return _int_token(text, i, end, raw, 8)
    return _int_token(text, i, end, raw, 10)


def _int_token(text: str, i: int, end: int, digits: str, base: int) -> Token:
    """An INT token for ASCII ``digits`` in ``base``. Its value is any size (the parser
    refuses one beyond int64 outside a subscript) or None when the literal is too long
    for Python to convert, which the parser refuses everywhere."""
    significant = digits.lstrip("0") or "0"
    value: int | None = None
    if len(significant) <= _MAX_INT_DIGITS:
        try:
            value = int(significant, base)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            value = None
    return Token(INT, text[i:end], i, end, value)


def _float_token(text: str, i: int, end: int, value: float) -> Token:
    if math.isinf(value) or math.isnan(value):
        raise error_at(
            text, i, end, "float literal out of the float64 range (beyond about 1.8e308)"
        )
    return Token(FLOAT, text[i:end], i, end, value)


def _string(text: str, start: int) -> Token:
    raw = text[start] in "rR"
    i = start + 1 if raw else start
    quote = text[i]
    i += 1
    parts: list[str] = []
    n = len(text)
    while True:
        if i >= n or text[i] in "\r\n":
            raise error_at(text, start, min(i, n), "unterminated string literal")
        ch = text[i]
        if ch == quote:
            break
        if ch != "\\":
            parts.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise error_at(text, start, n, "unterminated string literal")
        if raw:  # a backslash only keeps the next character from ending the string
            parts.append(text[i : i + 2])
            i += 2
            continue
        value, i = _escape(text, i)
        parts.append(value)
    return Token(STR, text[start : i + 1], start, i + 1, "".join(parts))


def _escape(text: str, i: int) -> tuple[str, int]:
    """Decode the escape sequence at text[i] (a backslash); returns (value, next index)."""
    c = text[i + 1]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 2
    width = {"x": 2, "u": 4, "U": 8}.get(c)
    if width is not None:
        digits = text[i + 2 : i + 2 + width]
        if len(digits) != width or any(d not in _HEX for d in digits):
            raise error_at(text, i, i + 2 + width, f"invalid \\{c} escape in string literal")
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise error_at(text, i, i + 2 + width, "invalid unicode escape in string literal")
        return chr(code), i + 2 + width
    if c in _OCTAL:
        j = i + 1
        while j < i + 4 and j < len(text) and text[j] in _OCTAL:
            j += 1
        return chr(int(text[i + 1 : j], 8)), j
    return "\\" + c, i + 2  # unknown escape: kept as written (LIKE escapes such as \%)
