"""Type checking: syntax tree + collection schema → typed plan (:mod:`gpuvec.expr.plan`).

Resolves names (schema fields; other bare names are keys of the dynamic field ``$meta``
when the schema enables it), folds constant sub-expressions, casts constants to the type
they are compared with, and refuses what Milvus refuses, each with a FilterError naming
the offending token and its position: unknown fields, vector fields, comparing a number
with a string, a float with an integer field, arithmetic on VARCHAR/BOOL or between two
fields, LIKE on non-strings, subscripts on fields other than JSON/ARRAY, ``array_*`` on
non-arrays, wrong function arity, division by a zero constant, and bare fields used as
conditions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gpuvec.datatypes import FLOAT_TYPES, INT_TYPES, DataType
from gpuvec.expr import arith, nodes
from gpuvec.expr import plan as p
from gpuvec.expr.errors import FilterError, error_at, show_int
from gpuvec.expr.likes import compile_like
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema

_OPERANDS = (p.Col, p.JsonPath, p.Elem, p.Length, p.Arith)
_PREDS = (p.Const, p.Cmp, p.CmpCols, p.Range, p.In, p.Like, p.IsNull, p.Exists, p.Contains,
          p.TextMatch)  # fmt: skip
_PREDS += (p.And, p.Or, p.Not)
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CONTAINS = {"json_contains": "one", "array_contains": "one", "json_contains_all": "all"}
_CONTAINS |= {"array_contains_all": "all", "json_contains_any": "any", "array_contains_any": "any"}
_UNSUPPORTED_FUNCS = frozenset(
    {
        "random_sample", "element_filter", "match_all",
        "match_any", "match_least", "match_most", "match_exact", "st_equals", "st_touches",
        "st_overlaps", "st_crosses", "st_contains", "st_intersects", "st_within",
        "st_dwithin", "st_isvalid",
    }
)  # fmt: skip
_SCALAR_KIND = {t: p.INT for t in INT_TYPES} | {t: p.FLOAT for t in FLOAT_TYPES}
_SCALAR_KIND |= {DataType.BOOL: p.BOOL, DataType.VARCHAR: p.STR, DataType.JSON: p.JSON}
_SCALAR_KIND |= {DataType.ARRAY: p.ARRAY}


@dataclass(frozen=True, slots=True)
class Lit:
    """A constant while binding: int, float, bool, str or list."""

    value: Any


Bound = Lit | p.Operand | p.Pred


def kind_of(op: p.Operand) -> str:
    """Static value type of an operand: one of plan.INT/FLOAT/BOOL/STR/JSON/ARRAY."""
    if isinstance(op, p.Col):
        return _SCALAR_KIND[op.dtype]
    if isinstance(op, p.JsonPath):
        return p.JSON
    if isinstance(op, p.Elem):
        return _SCALAR_KIND[op.elem]
    if isinstance(op, p.Length):
        return p.INT
    return op.kind


def describe(op: p.Operand) -> str:
    if isinstance(op, p.Col):
        return f'{op.dtype.name} field "{op.name}"'
    if isinstance(op, p.JsonPath):
        keys = "".join(f'["{k}"]' for k in op.path)
        return f"JSON value {op.column}{keys}"
    if isinstance(op, p.Elem):
        return f"{op.elem.name} element {op.column}[{op.index}]"
    if isinstance(op, p.Length):
        return "array_length(...) (INT64)"
    return f"the arithmetic result ({'INT64' if op.kind == p.INT else 'DOUBLE'})"


def describe_value(v: Any) -> str:
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    return "a list"


class Binder:
    """Binds one parsed filter to one schema."""

    def __init__(self, schema: CollectionSchema, text: str) -> None:
        self.text = text
        self.fields = {f.name: f for f in schema.fields}
        self.dynamic = schema.enable_dynamic_field

    def err(self, node: nodes.Node, reason: str, end: int | None = None) -> FilterError:
        return error_at(self.text, node.pos, node.end if end is None else end, reason)

    # -- entry points -----------------------------------------------------------------
    def predicate(self, node: nodes.Node) -> p.Pred:
        bound = self.bind(node)
        if isinstance(bound, Lit):
            if isinstance(bound.value, bool):
                return p.Const(bound.value)
            raise self.err(node, f"{describe_value(bound.value)} constant is not a condition")
        if isinstance(bound, _OPERANDS):
            hint = " (write `x == true`)" if kind_of(bound) == p.BOOL else ""
            raise self.err(node, f"{describe(bound)} is not a condition by itself{hint}")
        return bound

    def bind(self, node: nodes.Node) -> Bound:
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    # -- leaves -----------------------------------------------------------------------
    def _literal(self, node: nodes.Literal) -> Bound:
        return Lit(node.value)

    def _listexpr(self, node: nodes.ListExpr) -> Bound:
        out = []
        for item in node.items:
            b = self.bind(item)
            if not isinstance(b, Lit):
                raise self.err(item, "list items must be constants")
            out.append(b.value)
        return Lit(out)

    def _fieldref(self, node: nodes.FieldRef) -> Bound:
        name, keys = node.name, tuple(str(k) for k in node.path)
        if name == DYNAMIC_FIELD_NAME:
            if not self.dynamic:
                raise self.err(node, "the dynamic field $meta is not enabled", node.name_end)
            return p.JsonPath(DYNAMIC_FIELD_NAME, keys, False)
        f = self.fields.get(name)
        if f is None:
            if not self.dynamic:
                raise self.err(node, f'field "{name}" does not exist', node.name_end)
            return p.JsonPath(DYNAMIC_FIELD_NAME, (name, *keys), False)
        if f.dtype.is_vector:
            raise self.err(node, f'vector field "{name}" cannot be used in a filter')
        if f.dtype not in _SCALAR_KIND:
            raise self.err(node, f'{f.dtype.name} field "{name}" cannot be used in a filter')
        if f.dtype == DataType.JSON:  # the whole document is the empty path
            return p.JsonPath(name, keys, f.nullable)
        if not node.path:
            return p.Col(name, f.dtype, f.nullable, f.element_type)
        if f.dtype != DataType.ARRAY:
            raise self.err(
                node, f'{f.dtype.name} field "{name}" cannot be subscripted '
                "(only JSON and ARRAY fields can)"
            )  # fmt: skip
        if len(node.path) != 1 or not isinstance(node.path[0], int):
            raise self.err(node, f'ARRAY field "{name}" takes exactly one integer index')
        assert f.element_type is not None
        return p.Elem(name, node.path[0], f.element_type, f.nullable)

    # -- operators --------------------------------------------------------------------
    def _unary(self, node: nodes.Unary) -> Bound:
        if node.op == "not":
            inner = self.bind(node.operand)
            if isinstance(inner, Lit) and isinstance(inner.value, bool):
                return Lit(not inner.value)
            if not isinstance(inner, _PREDS):
                raise self.err(
                    node, "'not' applies to a condition; it binds tighter than comparisons, "
                    "so write not (a == 1)"
                )  # fmt: skip
            return p.Not(inner)
        inner = self.bind(node.operand)
        if isinstance(inner, Lit):
            if not arith.is_number(inner.value):
                raise self.err(node, f"unary '{node.op}' needs a number")
            if node.op == "+":
                return inner
            v = inner.value
            return Lit(arith.wrap64(-v) if isinstance(v, int) else -v)  # Go int64: wraps
        if isinstance(inner, _OPERANDS) and kind_of(inner) in (p.INT, p.FLOAT, p.JSON):
            if node.op == "+":
                return inner
            kind = p.FLOAT if kind_of(inner) == p.FLOAT else p.INT  # -x is 0 - x
            return p.Arith("-", inner, 0, True, kind)
        raise self.err(node, f"unary '{node.op}' needs a number or a numeric field")

    def _binary(self, node: nodes.Binary) -> Bound:
        left, right = self.bind(node.left), self.bind(node.right)
        op = node.op
        if isinstance(left, Lit) and isinstance(right, Lit):
            try:
                return Lit(arith.fold(op, left.value, right.value))
            except ValueError as exc:
                raise self.err(node, str(exc)) from None
        if op == "**":
            raise self.err(node, "'**' only applies to constants")
        for side, raw in ((left, node.left), (right, node.right)):
            if isinstance(side, _PREDS):
                raise self.err(raw, f"'{op}' cannot take a condition as an operand")
        if not (isinstance(left, Lit) or isinstance(right, Lit)):
            raise self.err(node, "arithmetic between two fields is not supported; "
                           "one operand must be a constant")  # fmt: skip
        const_left = isinstance(left, Lit)
        operand, const = (right, left) if const_left else (left, right)
        assert isinstance(const, Lit) and isinstance(operand, _OPERANDS)
        c = const.value
        if not arith.is_number(c):
            raise self.err(node, f"arithmetic needs a numeric constant, got {describe_value(c)}")
        self.check_int(c, node)
        kind = kind_of(operand)
        if kind not in (p.INT, p.FLOAT, p.JSON):
            raise self.err(node, f"arithmetic is not supported on {describe(operand)}")
        if const_left and op in ("/", "%"):
            raise self.err(node, f"'{op}' needs a constant divisor; a field cannot be one")
        if op in ("/", "%") and c == 0:
            raise self.err(node, "division by zero" if op == "/" else "modulo by zero")
        if op == "%" and (isinstance(c, float) or kind == p.FLOAT):
            raise self.err(node, "modulo only applies to integers")
        result = p.FLOAT if kind == p.FLOAT or isinstance(c, float) else p.INT
        return p.Arith(op, operand, c, const_left, result)

    def _compare(self, node: nodes.Compare) -> Bound:
        left, right = self.bind(node.left), self.bind(node.right)
        op = node.op
        if isinstance(left, Lit) and isinstance(right, Lit):
            return Lit(self.fold_compare(node, op, left.value, right.value))
        for side, raw in ((left, node.left), (right, node.right)):
            if isinstance(side, _PREDS):
                raise self.err(raw, "a condition cannot be compared; combine conditions "
                               "with and/or")  # fmt: skip
        raw_operand = node.left
        if isinstance(left, Lit):
            left, right, op, raw_operand = right, left, _FLIP[op], node.right
        assert isinstance(left, _OPERANDS)
        if isinstance(right, Lit):
            self.no_whole_array(left, raw_operand)
            value = self.cast(left, right.value, raw_operand, allow_list=op in ("==", "!="))
            return p.Cmp(op, left, value)
        assert isinstance(right, _OPERANDS)
        return self.compare_columns(node, op, left, right)

    def compare_columns(
        self, node: nodes.Node, op: str, left: p.Operand, right: p.Operand
    ) -> p.Pred:
        for side in (left, right):
            if isinstance(side, p.JsonPath) or kind_of(side) == p.JSON:
                raise self.err(node, "comparing a JSON value with another field is not "
                               "supported")  # fmt: skip
            if isinstance(side, p.Arith | p.Length):
                raise self.err(node, f"{describe(side)} can only be compared with a constant")
            self.no_whole_array(side, node)
        assert isinstance(left, p.Col | p.Elem) and isinstance(right, p.Col | p.Elem)
        kl, kr = kind_of(left), kind_of(right)
        numeric = {p.INT, p.FLOAT}
        if kl != kr and not (kl in numeric and kr in numeric):
            raise self.err(node, f"cannot compare {describe(left)} with {describe(right)}")
        return p.CmpCols(op, left, right)

    def _rangecmp(self, node: nodes.RangeCmp) -> Bound:
        target = self.bind(node.target)
        if not isinstance(target, p.Col | p.JsonPath | p.Elem):
            raise self.err(node.target, "the middle of a range comparison must be a field")
        self.no_whole_array(target, node.target)
        bounds = []
        for raw in (node.lower, node.upper):
            b = self.bind(raw)
            if not isinstance(b, Lit):
                raise self.err(raw, "range bounds must be constants")
            bounds.append(self.cast(target, b.value, node.target, allow_list=False))
        first, second = bounds
        if node.op1[0] == "<":
            lo, lo_incl, hi, hi_incl = first, node.op1 == "<=", second, node.op2 == "<="
        else:
            hi, hi_incl, lo, lo_incl = first, node.op1 == ">=", second, node.op2 == ">="
        if isinstance(lo, str) != isinstance(hi, str) or isinstance(lo, bool) != isinstance(
            hi, bool
        ):
            raise self.err(node, "the two bounds of a range must have the same type")
        if lo > hi or (lo == hi and not (lo_incl and hi_incl)):
            raise self.err(node, "invalid range: the lower bound is greater than the upper bound")
        return p.Range(target, lo, lo_incl, hi, hi_incl)

    def _logical(self, node: nodes.Logical) -> Bound:
        items: list[p.Pred] = []
        cls = p.And if node.op == "and" else p.Or
        for raw in node.items:
            b = self.bind(raw)
            if isinstance(b, Lit) and isinstance(b.value, bool):
                b = p.Const(b.value)
            if not isinstance(b, _PREDS):
                raise self.err(raw, f"'{node.op}' can only combine conditions")
            items.extend(b.items if isinstance(b, cls) else (b,))
        if all(isinstance(i, p.Const) for i in items):  # exact: constants are always valid
            values = [i.value for i in items]  # type: ignore[union-attr]
            return Lit(all(values) if cls is p.And else any(values))
        return cls(tuple(items))

    def _inlist(self, node: nodes.InList) -> Bound:
        operand = self.bind(node.operand)
        if not isinstance(operand, p.Col | p.JsonPath | p.Elem):
            raise self.err(node.operand, "the left side of 'in' must be a field")
        self.no_whole_array(operand, node.operand)
        values = self.bind(node.values)
        if not (isinstance(values, Lit) and isinstance(values.value, list)):
            raise self.err(node.values, "the right side of 'in' must be a list of constants")
        cast = tuple(self.cast(operand, v, node.operand, allow_list=True) for v in values.value)
        pred = p.In(operand, cast)
        return p.Not(pred) if node.negate else pred

    def _like(self, node: nodes.Like) -> Bound:
        operand = self.bind(node.operand)
        ok = isinstance(operand, p.JsonPath) or (
            isinstance(operand, p.Col | p.Elem) and kind_of(operand) == p.STR
        )
        if not ok:
            what = describe(operand) if isinstance(operand, _OPERANDS) else "this operand"
            raise self.err(node.operand, f"'like' only applies to VARCHAR and JSON values, "
                           f"not {what}")  # fmt: skip
        pattern = self.bind(node.pattern)
        if not (isinstance(pattern, Lit) and isinstance(pattern.value, str)):
            raise self.err(node.pattern, "a LIKE pattern must be a string literal")
        assert isinstance(operand, p.Col | p.JsonPath | p.Elem)
        return p.Like(operand, compile_like(pattern.value))

    def _isnull(self, node: nodes.IsNull) -> Bound:
        ref = self.bind(node.operand)
        if isinstance(ref, p.JsonPath) and ref.path:  # as Milvus: (not) exists
            return p.Exists(ref) if node.negate else p.Not(p.Exists(ref))
        if isinstance(ref, p.JsonPath):
            ref = p.Col(ref.column, DataType.JSON, ref.nullable)
        if not isinstance(ref, p.Col):
            raise self.err(node, "'is null' is not supported on array elements")
        return p.IsNull(ref, node.negate)

    def _exists(self, node: nodes.Exists) -> Bound:
        ref = self.bind(node.operand)
        if not (isinstance(ref, p.JsonPath) and ref.path):
            raise self.err(node, "'exists' needs a JSON key, such as exists j[\"key\"]")
        return p.Exists(ref)

    def _call(self, node: nodes.Call) -> Bound:
        name = node.name.lower()
        k = len(node.args)
        if name in _CONTAINS:
            if k != 2:
                raise self.err(node, f"{node.name} expects 2 arguments, got {k}")
            target = self.array_target(node, self.bind(node.args[0]), node.args[0])
            value = self.bind(node.args[1])
            if not isinstance(value, Lit):
                raise self.err(node.args[1], f"{node.name} needs a constant second argument")
            mode = _CONTAINS[name]
            if mode != "one" and not isinstance(value.value, list):
                raise self.err(node.args[1], f"{node.name} needs a list second argument")
            values = (value.value,) if mode == "one" else tuple(value.value)
            if isinstance(target, p.Col):  # ARRAY field: values cast to the element type
                assert target.elem is not None
                elem = p.Elem(target.name, 0, target.elem, target.nullable)
                values = tuple(self.cast(elem, v, node.args[0], allow_list=False) for v in values)
            else:
                values = tuple(self.cast(target, v, node.args[0], allow_list=True) for v in values)
            return p.Contains(mode, target, values)
        if name == "array_length":
            if k != 1:
                raise self.err(node, f"{node.name} expects 1 argument, got {k}")
            return p.Length(self.array_target(node, self.bind(node.args[0]), node.args[0]))
        if name in ("text_match", "phrase_match"):
            return self._text_match(node, name == "phrase_match")
        if name in _UNSUPPORTED_FUNCS:
            raise self.err(node, f"{node.name} is not supported by gpuvec", node.name_end)
        raise self.err(node, f"unknown function {node.name!r}", node.name_end)

    def _text_match(self, node: nodes.Call, phrase: bool) -> p.TextMatch:
        """``text_match(field, 'text'[, minimum_should_match])`` / ``phrase_match(field,
        'text'[, slop])`` on a VARCHAR field with ``enable_match``."""
        k = len(node.args)
        if not 2 <= k <= 3:
            raise self.err(node, f"{node.name} expects 2 or 3 arguments, got {k}")
        col = self.bind(node.args[0])
        if not isinstance(col, p.Col) or col.dtype != DataType.VARCHAR:
            raise self.err(node.args[0], f"{node.name} needs a VARCHAR field")
        extra = self.fields[col.name].extra_params
        if str(extra.get("enable_match", "")).lower() != "true":
            raise self.err(node.args[0], f"field \"{col.name}\" does not enable match "
                           "(create it with enable_analyzer=True, enable_match=True)")  # fmt: skip
        query = self.bind(node.args[1])
        if not isinstance(query, Lit) or not isinstance(query.value, str):
            raise self.err(node.args[1], f"{node.name} needs a string second argument")
        extra_arg = 0 if phrase else 1
        if k == 3:
            third = self.bind(node.args[2])
            if not isinstance(third, Lit) or not isinstance(third.value, int) or isinstance(
                    third.value, bool) or third.value < 0:  # fmt: skip
                what = "slop" if phrase else "minimum_should_match"
                raise self.err(node.args[2], f"{node.name}: {what} must be a non-negative integer")
            extra_arg = int(third.value)
        params = extra.get("analyzer_params") or {}
        if isinstance(params, str):
            params = json.loads(params) if params.strip() else {}
        key = json.dumps(params, sort_keys=True)
        if phrase:
            return p.TextMatch(col.name, key, query.value, True, slop=extra_arg)
        return p.TextMatch(col.name, key, query.value, minimum_should_match=max(1, extra_arg))

    # -- helpers ----------------------------------------------------------------------
    def array_target(self, call: nodes.Call, b: Bound, raw: nodes.Node) -> p.Col | p.JsonPath:
        if isinstance(b, p.JsonPath) or (isinstance(b, p.Col) and b.dtype == DataType.ARRAY):
            return b
        what = describe(b) if isinstance(b, _OPERANDS) else "this argument"
        raise self.err(raw, f"{call.name} needs an ARRAY field or a JSON value, not {what}")

    def no_whole_array(self, op: p.Operand, node: nodes.Node) -> None:
        if kind_of(op) == p.ARRAY:
            raise self.err(node, f"{describe(op)} cannot be compared as a whole; use an "
                           "element (a[0]), array_contains or array_length")  # fmt: skip

    def check_int(self, v: Any, node: nodes.Node) -> None:
        if isinstance(v, int) and not isinstance(v, bool):
            if not arith.INT64_MIN <= v <= arith.INT64_MAX:
                raise self.err(node, f"integer {show_int(v)} is out of the int64 range")
        elif isinstance(v, list):
            for x in v:
                self.check_int(x, node)

    def cast(self, op: p.Operand, v: Any, node: nodes.Node, *, allow_list: bool) -> Any:
        """v as the constant a comparison with ``op`` uses; FilterError when incompatible."""
        kind = kind_of(op)
        self.check_int(v, node)
        bad = self.err(node, f"cannot compare {describe(op)} with {describe_value(v)}")
        if isinstance(v, list):
            if kind != p.JSON:
                raise bad
            if not allow_list:
                raise self.err(node, "a JSON value can only be compared with a list by == "
                               "or !=")  # fmt: skip
            return v
        if kind == p.JSON:
            return v
        if kind == p.BOOL:
            if not isinstance(v, bool):
                raise bad
            return v
        if kind == p.STR:
            if not isinstance(v, str):
                raise bad
            return v
        if not arith.is_number(v):
            raise bad
        if kind == p.INT:
            if isinstance(v, float):
                raise self.err(node, f"cannot compare {describe(op)} with the float {v!r} "
                               "(Milvus does not cast floats to integers)")  # fmt: skip
            return v
        return float(v)

    def fold_compare(self, node: nodes.Node, op: str, a: Any, b: Any) -> bool:
        same = (arith.is_number(a) and arith.is_number(b)) or (
            type(a) is type(b) and isinstance(a, str | bool)
        )
        if not same:
            raise self.err(node, f"cannot compare {describe_value(a)} with {describe_value(b)}")
        return {
            "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
        }[op]  # fmt: skip
