"""Tokenizer of the filter language: text → tokens, each with its character span.

Follows the lexical rules of Milvus's ``Plan.g4``: integers in decimal, hex (``0x1F``),
octal (``0o17`` and the legacy ``017``) and binary (``0b101``); floats with a fraction
and/or an exponent (and C hex floats such as ``0x1.8p3``); single- or double-quoted
strings with C/Go escapes (``r"..."`` keeps backslashes); identifiers; ``$meta``; and the
operator symbols. Keywords are recognised by the parser, not here. An unknown escape such
as ``\\%`` keeps its backslash, so LIKE patterns can escape ``%`` and ``_`` directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpuvec.expr.errors import error_at

NAME, META, INT, FLOAT, STR, OP, EOF = "name", "meta", "int", "float", "str", "op", "eof"

_OPS = (
    "**", "<=", ">=", "==", "!=", "&&", "||", "<<", ">>", "=~", "!~",
    "+", "-", "*", "/", "%", "<", ">", "!", "(", ")", "[", "]", ",", "{", "}", "~", "&", "|",
    "^", "=",
)  # fmt: skip
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM_RE = re.compile(
    r"0[xX](?P<hexf>[0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+)"
    r"|0[xX](?P<hex>[0-9a-fA-F]+)"
    r"|0[bB](?P<bin>[01]+)"
    r"|0[oO](?P<oct>[0-7]+)"
    r"|(?P<float>(\d+\.\d*|\.\d+)([eE][+-]?\d+)?|\d+[eE][+-]?\d+)"
    r"|(?P<int>\d+)"
)
_SIMPLE_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
    "f": "\f", "v": "\v", "?": "?",
}  # fmt: skip
_HEX = "0123456789abcdefABCDEF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # the source text of the token
    pos: int
    end: int
    value: object = None  # int, float or str for literals


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text`` followed by an EOF token; FilterError on a lexical error."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "'\"" or (ch in "rR" and i + 1 < n and text[i + 1] in "'\""):
            tok = _string(text, i)
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            tok = _number(text, i)
        elif ch == "_" or (ch.isascii() and ch.isalpha()):
            m = _NAME_RE.match(text, i)
            assert m is not None
            tok = Token(NAME, m.group(), i, m.end())
        elif text.startswith("$meta", i) and not _is_name_char(text, i + 5):
            tok = Token(META, "$meta", i, i + 5)
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise error_at(text, i, i + 1, f"unexpected character {ch!r}")
            tok = Token(OP, op, i, i + len(op))
        out.append(tok)
        i = tok.end
    out.append(Token(EOF, "", n, n))
    return out


def _is_name_char(text: str, i: int) -> bool:
    return i < len(text) and (text[i] == "_" or (text[i].isascii() and text[i].isalnum()))


def _number(text: str, i: int) -> Token:
    m = _NUM_RE.match(text, i)
    assert m is not None
    end = m.end()
    if _is_name_char(text, end) or (end < len(text) and text[end] == "."):
        j = end
        while _is_name_char(text, j) or (j < len(text) and text[j] == "."):
            j += 1
        raise error_at(text, i, j, "invalid number literal")
    raw = m.group()
    if m.group("hexf") is not None:
        return Token(FLOAT, raw, i, end, float.fromhex(raw))
    if m.group("float") is not None:
        return Token(FLOAT, raw, i, end, float(raw))
    if m.group("hex") is not None:
        return Token(INT, raw, i, end, int(m.group("hex"), 16))
    if m.group("bin") is not None:
        return Token(INT, raw, i, end, int(m.group("bin"), 2))
    if m.group("oct") is not None:
        return Token(INT, raw, i, end, int(m.group("oct"), 8))
    if len(raw) > 1 and raw[0] == "0":  # legacy C octal, as Go's ParseInt(s, 0, 64)
        if any(c not in "01234567" for c in raw):
            raise error_at(text, i, end, "invalid octal literal (a leading 0 means octal)")
        return Token(INT, raw, i, end, int(raw, 8))
    return Token(INT, raw, i, end, int(raw))


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
        value, i = _escape(text, i, start)
        parts.append(value)
    return Token(STR, text[start : i + 1], start, i + 1, "".join(parts))


def _escape(text: str, i: int, start: int) -> tuple[str, int]:
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
    if c in "01234567":
        j = i + 1
        while j < i + 4 and j < len(text) and text[j] in "01234567":
            j += 1
        return chr(int(text[i + 1 : j], 8)), j
    return "\\" + c, i + 2  # unknown escape: kept as written (LIKE escapes such as \%)
