"""LIKE patterns: ``%`` matches any run of characters (newlines included), ``_`` exactly
one character, and a backslash makes the next character literal (a trailing backslash is
itself literal). A pattern is classified so the evaluator can use Arrow's cheapest kernel.
"""

from __future__ import annotations

from gpuvec.expr.plan import LikePattern

_ANY, _ONE = object(), object()


def compile_like(pattern: str) -> LikePattern:
    """Classify ``pattern`` (equal / prefix / suffix / contains / any / general)."""
    parts: list[object] = []  # literal characters, _ANY and _ONE
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(pattern[i + 1])
            i += 2
            continue
        if ch == "%":
            if not parts or parts[-1] is not _ANY:
                parts.append(_ANY)
        else:
            parts.append(_ONE if ch == "_" else ch)
        i += 1
    arrow = "".join(
        "%" if p is _ANY else "_" if p is _ONE else ("\\" + p if p in "%_\\" else p)  # type: ignore[operator]
        for p in parts
    )
    lead = bool(parts) and parts[0] is _ANY
    trail = len(parts) > 1 and parts[-1] is _ANY
    inner = parts[int(lead) : len(parts) - int(trail)]
    if lead and len(parts) == 1:
        return LikePattern("any", "", arrow)
    if any(p is _ANY or p is _ONE for p in inner):
        return LikePattern("general", "", arrow)
    text = "".join(inner)  # type: ignore[arg-type]
    kind = {(False, False): "equal", (False, True): "prefix", (True, False): "suffix"}
    return LikePattern(kind.get((lead, trail), "contains"), text, arrow)
