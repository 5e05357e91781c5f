"""Typed plan of a filter: what the evaluator runs once names and types are resolved.

Operands produce values per row (a column, a JSON path, an array element, an array
length, or one of those combined with a constant by arithmetic); predicates produce the
row mask. All nodes are frozen and hashable, so the evaluator can memoise operands.
Constants in a plan are already cast to the operand's type (ints stay Python ints, FLOAT
columns compare in float32 at evaluation time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuvec.datatypes import DataType

INT, FLOAT, BOOL, STR, JSON, ARRAY = "int", "float", "bool", "str", "json", "array"


# -- operands -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Col:
    """A whole top-level column (scalar, JSON or ARRAY field)."""

    name: str
    dtype: DataType
    nullable: bool
    elem: DataType | None = None  # element type of an ARRAY field


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A JSON value inside a JSON field or ``$meta``; ``path`` holds JSON-pointer tokens
    (an index ``[0]`` becomes ``"0"``). An empty path is the whole document."""

    column: str
    path: tuple[str, ...]
    nullable: bool


@dataclass(frozen=True, slots=True)
class Elem:
    """``arr[index]`` of an ARRAY field; rows whose array is shorter have no value."""

    column: str
    index: int
    elem: DataType
    nullable: bool


@dataclass(frozen=True, slots=True)
class Length:
    """``array_length(x)`` of an ARRAY field or a JSON path (no value unless an array)."""

    target: Col | JsonPath


@dataclass(frozen=True, slots=True)
class Arith:
    """``operand op const`` (or ``const op operand`` when ``const_left``); ``kind`` is the
    static result type, INT (int64, wrapping) or FLOAT (float64)."""

    op: str
    operand: Operand
    const: int | float
    const_left: bool
    kind: str


Operand = Col | JsonPath | Elem | Length | Arith


# -- predicates -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Const:
    value: bool


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str
    operand: Operand
    value: Any


@dataclass(frozen=True, slots=True)
class CmpCols:
    op: str
    left: Col | Elem
    right: Col | Elem


@dataclass(frozen=True, slots=True)
class Range:
    operand: Col | JsonPath | Elem
    lo: Any
    lo_incl: bool
    hi: Any
    hi_incl: bool


@dataclass(frozen=True, slots=True)
class In:
    operand: Col | JsonPath | Elem
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class LikePattern:
    """A LIKE pattern classified for the fastest Arrow kernel: ``equal``, ``prefix``,
    ``suffix``, ``contains``, ``any`` (matches every string) or ``general`` (``arrow`` is
    the pattern for Arrow's match_like, with its own escaping)."""

    kind: str
    text: str
    arrow: str


@dataclass(frozen=True, slots=True)
class Like:
    operand: Col | JsonPath | Elem
    pattern: LikePattern


@dataclass(frozen=True, slots=True)
class IsNull:
    """``field is [not] null`` on a whole field (JSON paths become :class:`Exists`)."""

    column: Col
    negate: bool


@dataclass(frozen=True, slots=True)
class Exists:
    path: JsonPath


@dataclass(frozen=True, slots=True)
class Contains:
    """json_contains / array_contains (``one``), ``_all`` and ``_any`` variants."""

    mode: str
    target: Col | JsonPath
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Pred


@dataclass(frozen=True, slots=True)
class TextMatch:
    """``text_match(column, query[, minimum_should_match])`` or, with ``phrase``,
    ``phrase_match(column, query[, slop])`` over a VARCHAR field with ``enable_match``;
    ``analyzer`` is the field's ``analyzer_params`` as canonical JSON."""

    column: str
    analyzer: str
    query: str
    phrase: bool = False
    slop: int = 0
    minimum_should_match: int = 1


Pred = (Const | Cmp | CmpCols | Range | In | Like | IsNull | Exists | Contains | TextMatch | And
        | Or | Not)  # fmt: skip


def columns_of(node: Pred | Operand) -> set[str]:
    """Top-level columns a plan reads."""
    if isinstance(node, Col | Elem):
        return {node.name if isinstance(node, Col) else node.column}
    if isinstance(node, JsonPath):
        return {node.column}
    if isinstance(node, Length):
        return columns_of(node.target)
    if isinstance(node, Arith | Cmp | Range | In | Like):
        return columns_of(node.operand)
    if isinstance(node, CmpCols):
        return columns_of(node.left) | columns_of(node.right)
    if isinstance(node, IsNull):
        return {node.column.name}
    if isinstance(node, Exists):
        return {node.path.column}
    if isinstance(node, Contains):
        return columns_of(node.target)
    if isinstance(node, And | Or):
        return set().union(*(columns_of(i) for i in node.items))
    if isinstance(node, Not):
        return columns_of(node.item)
    return set()
