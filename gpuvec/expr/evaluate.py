"""Vectorised evaluation of a typed plan over an Arrow table → a NumPy bool mask.

Null semantics are Milvus's: every predicate yields two bitmaps, ``res`` and ``valid``.
A predicate on a null field gives res=False, valid=False; ``and``/``or`` combine res with
&/| and valid with | (as Milvus's PhyLogicalBinaryExpr); ``not`` gives ``~res & valid``,
so NOT over a null row stays False (``not (a > 1)`` never returns rows where a is null).
``is null``/``is not null`` and ``exists`` are always valid (so ``not exists j["k"]`` is
true for rows whose JSON is null, as in Milvus). A JSON key that is missing, or holds
another type, gives False (and True for ``!=``) with valid=True.

No Python work per row happens here: columns become NumPy/Arrow arrays and JSON goes
through the caller's :class:`~gpuvec.expr.jsoncache.JsonCache`. A comparison, range or
``in`` over a column with a scalar index (``indexes``) is answered by the index when it
can answer exactly (same result as the scan), else scanned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from gpuvec.errors import FieldNotFoundError
from gpuvec.expr import kernels
from gpuvec.expr import plan as p
from gpuvec.expr.jsoncache import K_LIST, JsonCache
from gpuvec.expr.values import (
    Vals,
    and_valid,
    arith_vals,
    array_element,
    array_elements,
    array_length,
    json_length,
    scalar_vals,
    validity,
)
from gpuvec.schema import DYNAMIC_FIELD_NAME
from gpuvec.text.analyzer import analyzer
from gpuvec.text.matching import TextIndex

Mask = tuple[np.ndarray, np.ndarray | None]  # (res, valid); valid None: every row valid


class ScalarLookup(Protocol):
    """What the evaluator asks of a scalar index over the table's rows
    (:class:`gpuvec.index.scalar.ScalarIndex`)."""

    ntotal: int

    def lookup(self, op: str, value: Any = None, **kw: Any) -> Mask | None: ...


Indexes = Mapping[str, ScalarLookup]  # column name → its index over exactly these rows


class Evaluator:
    """Evaluates plans over one table; operands read more than once are computed once."""

    def __init__(
        self, table: pa.Table, cache: JsonCache | None = None, indexes: Indexes | None = None
    ) -> None:
        self.table = table
        self.n = table.num_rows
        self.cache = cache if cache is not None else JsonCache()
        self.indexes = indexes or {}
        self._cols: dict[str, pa.Array] = {}
        self._vals: dict[p.Operand, Vals] = {}

    def mask(self, plan: p.Pred) -> np.ndarray:
        res, _ = self.pred(plan)
        return np.ascontiguousarray(res, np.bool_)

    # -- columns and operands ---------------------------------------------------------
    def column(self, name: str) -> pa.Array:
        arr = self._cols.get(name)
        if arr is None:
            if name not in self.table.column_names:
                if name == DYNAMIC_FIELD_NAME:  # no dynamic keys at all in this table
                    arr = pa.array(["{}"] * self.n, pa.string())
                else:
                    raise FieldNotFoundError(f'column "{name}" is not in the table to filter')
            else:
                col = self.table.column(name)
                arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            self._cols[name] = arr
        return arr

    def vals(self, op: p.Operand) -> Vals:
        got = self._vals.get(op)
        if got is None:
            got = self._vals[op] = self._compute(op)
        return got

    def _compute(self, op: p.Operand) -> Vals:
        if isinstance(op, p.Col):
            return scalar_vals(self.column(op.name), op.dtype)
        if isinstance(op, p.JsonPath):
            jv, valid = self.cache.values(op.column, self.column(op.column), op.path)
            return Vals(self.n, valid, jv=jv, json=True)
        if isinstance(op, p.Elem):
            return array_element(self.column(op.column), op.index, op.elem)
        if isinstance(op, p.Length):
            if isinstance(op.target, p.Col):
                return array_length(self.column(op.target.name))
            return json_length(self.vals(op.target))
        return arith_vals(self.vals(op.operand), op)

    # -- predicates -------------------------------------------------------------------
    def pred(self, node: p.Pred) -> Mask:
        if isinstance(node, p.Const):
            return np.full(self.n, node.value, np.bool_), None
        if isinstance(node, p.Cmp | p.Range | p.In) and (got := self.indexed(node)) is not None:
            return got
        if isinstance(node, p.Cmp):
            v = self.vals(node.operand)
            return kernels.compare(v, node.op, node.value), v.valid
        if isinstance(node, p.Range):
            v = self.vals(node.operand)
            res = kernels.in_range(v, node.lo, node.lo_incl, node.hi, node.hi_incl)
            return res, v.valid
        if isinstance(node, p.In):
            v = self.vals(node.operand)
            return kernels.is_in(v, node.values), v.valid
        if isinstance(node, p.Like):
            v = self.vals(node.operand)
            return kernels.like(v, node.pattern), v.valid
        if isinstance(node, p.CmpCols):
            a, b = self.vals(node.left), self.vals(node.right)
            return kernels.compare_columns(a, b, node.op), and_valid(a.valid, b.valid)
        if isinstance(node, p.IsNull):
            valid = validity(self.column(node.column.name))
            is_null = np.zeros(self.n, np.bool_) if valid is None else ~valid
            return (~is_null if node.negate else is_null), None
        if isinstance(node, p.Exists):
            v = self.vals(node.path)
            assert v.jv is not None
            return v.jv.exists().copy(), None
        if isinstance(node, p.Contains):
            return self.contains(node)
        if isinstance(node, p.TextMatch):
            return self.text_match(node)
        if isinstance(node, p.Not):
            res, valid = self.pred(node.item)
            res = ~res
            if valid is not None:
                res &= valid
            return res, valid
        return self.logical(node)

    def indexed(self, node: p.Cmp | p.Range | p.In) -> Mask | None:
        """The mask of a comparison, range or ``in`` over an indexed column, from its
        scalar index (:meth:`gpuvec.index.scalar.ScalarIndex.lookup`); None to scan."""
        col = node.operand
        if isinstance(col, p.Col):
            index = self.indexes.get(col.name)
        elif isinstance(col, p.JsonPath):  # a JSON path index of exactly this path
            index = self.indexes.get(col.column)
            if index is not None and getattr(index, "path", None) != col.path:
                return None
        else:
            return None
        if index is None or index.ntotal != self.n:
            return None
        try:
            if isinstance(node, p.Cmp):
                return index.lookup(node.op, node.value)
            if isinstance(node, p.In):
                return index.lookup("in", values=list(node.values))
            return index.lookup("range", lo=node.lo, lo_incl=node.lo_incl, hi=node.hi,
                                hi_incl=node.hi_incl)  # fmt: skip
        except (OverflowError, TypeError, ValueError):  # a literal the index cannot place
            return None

    def text_match(self, node: p.TextMatch) -> Mask:
        """text_match / phrase_match through the segment's index of the field's analysed
        text (:class:`gpuvec.text.matching.TextIndex`, kept with the JSON cache)."""
        arr = self.column(node.column)
        index = self.cache.derived(("text", node.column, node.analyzer),
                                   lambda: TextIndex(analyzer(json.loads(node.analyzer) or None)))
        have = len(index)
        if have < self.n:
            index.extend(arr.slice(have).to_pylist(), have)
        if node.phrase:
            res = index.phrase(node.query, self.n, node.slop)
        else:
            res = index.match(node.query, self.n, node.minimum_should_match)
        return res, validity(arr)

    def logical(self, node: p.And | p.Or) -> Mask:
        res, valid = self.pred(node.items[0])  # predicate results are always fresh arrays
        all_valid = valid is None
        valid = None if valid is None else valid.copy()
        for item in node.items[1:]:
            r, v = self.pred(item)
            if isinstance(node, p.And):
                res &= r
            else:
                res |= r
            if v is None:
                all_valid = True
            elif not all_valid:
                assert valid is not None
                valid |= v
        return res, None if all_valid else valid

    def contains(self, node: p.Contains) -> Mask:
        target = node.target
        if isinstance(target, p.Col) and (index := self.indexes.get(target.name)) is not None \
                and index.ntotal == self.n:  # fmt: skip
            got = index.lookup("contains", values=list(node.values), mode=node.mode)
            if got is not None:  # an ARRAY field's element postings
                return got
        if isinstance(target, p.Col):
            arr = self.column(target.name)
            assert target.elem is not None
            elems, parent, _ = array_elements(arr, target.elem)
            valid = validity(arr)
            is_array = np.ones(self.n, np.bool_) if valid is None else valid.copy()
        else:
            v = self.vals(target)
            assert v.jv is not None
            offsets, elem_values = v.jv.elements()
            elems = Vals(len(elem_values), None, jv=elem_values, json=True)
            parent = np.repeat(np.arange(self.n), np.diff(offsets))
            is_array, valid = v.jv.mask(K_LIST).copy(), v.valid
            if valid is not None:
                is_array &= valid
        res = kernels.contains(elems, parent, self.n, node.mode, node.values)
        return res & is_array, valid
