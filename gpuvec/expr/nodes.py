"""Syntax tree of a parsed filter, before names and types are resolved.

Every node records the character span ``[pos, end)`` it was parsed from (for error
messages) and ``depth``, the height of its subtree (the parser refuses trees deeper than
:data:`~gpuvec.expr.errors.MAX_DEPTH`, so later recursive passes cannot overflow the stack).
Template placeholders (``{name}``) are already replaced by :class:`Literal` nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    pos: int
    end: int
    depth: int = field(default=1, kw_only=True)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A constant: int, float, bool, str, or a list of constants (from ``[...]`` or a
    template value)."""

    value: Any


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    """``[a, b, ...]`` whose items are expressions still to be folded into constants."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class FieldRef(Node):
    """A field name or ``$meta`` (``name`` is ``"$meta"``), with ``[key]``/``[index]``
    subscripts in ``path`` (str keys, int indexes)."""

    name: str
    path: tuple[str | int, ...] = ()
    name_end: int = 0  # end of the bare name, before any subscript


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "%", "**"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # "==", "!=", "<", "<=", ">", ">="
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class RangeCmp(Node):
    """``lower op1 target op2 upper`` with op1, op2 both in {<, <=} or both in {>, >=}."""

    lower: Node
    op1: str
    target: Node
    op2: str
    upper: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    op: str  # "and", "or"
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class InList(Node):
    operand: Node
    values: Node
    negate: bool


@dataclass(frozen=True, slots=True)
class Like(Node):
    operand: Node
    pattern: Node


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    operand: FieldRef
    negate: bool  # True for IS NOT NULL


@dataclass(frozen=True, slots=True)
class Exists(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str  # as written
    args: tuple[Node, ...]
    name_end: int = 0
