"""Compiled filters: :func:`compile_filter` (text + schema → :class:`Filter`) and the
Filter object the engine evaluates per segment.

Compilation does all the checking (syntax, names, types, limits) once per request;
:meth:`Filter.evaluate` is then pure vectorised work over a segment's Arrow table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.expr import plan as p
from gpuvec.expr.errors import MAX_FILTER_BYTES, FilterError
from gpuvec.expr.evaluate import Evaluator, Indexes
from gpuvec.expr.jsoncache import JsonCache
from gpuvec.expr.parser import parse
from gpuvec.expr.typecheck import Binder
from gpuvec.schema import CollectionSchema, arrow_schema


class Filter:
    """A filter expression checked against one schema, ready to evaluate.

    ``text`` is the expression as given, ``fields`` the top-level columns it reads
    (``"$meta"`` for dynamic keys), ``plan`` the typed plan.
    """

    def __init__(self, text: str, plan: p.Pred, schema: CollectionSchema) -> None:
        self.text = text
        self.plan = plan
        self.fields: frozenset[str] = frozenset(p.columns_of(plan))
        pk = schema.primary_field
        self._pk = pk.name if pk is not None else None
        nullable = {f.name for f in schema.fields if f.nullable}  # added fields always are
        self._types = {f.name: f.type for f in arrow_schema(schema)
                       if f.name in self.fields and f.name in nullable}  # fmt: skip

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"

    def evaluate(
        self, table: pa.Table, cache: JsonCache | None = None, indexes: Indexes | None = None
    ) -> np.ndarray:
        """Row mask (bool[num_rows]) of ``table``, whose columns are named after the fields
        (plus ``$meta``). Pass the segment's :class:`JsonCache` so JSON is decoded once, and
        its scalar ``indexes`` (by field, over exactly these rows) to use them."""
        if isinstance(self.plan, p.Const):
            return np.full(table.num_rows, self.plan.value, np.bool_)
        missing = [f for f in self.fields if f in self._types and f not in table.column_names]
        for name in missing:  # a field added after these rows were written: all null
            table = table.append_column(name, pa.nulls(table.num_rows, self._types[name]))
        try:
            return Evaluator(table, cache, indexes).mask(self.plan)
        except RecursionError:  # plans are at most MAX_DEPTH deep: only a very deep caller
            raise FilterError(
                "the filter is nested too deeply to evaluate", expr=self.text
            ) from None

    def pk_values(self) -> list[Any] | None:
        """The primary keys when the whole filter is ``pk in [...]`` or ``pk == v``
        (deduplicated, in order), else None: the engine's point-lookup fast path."""
        node = self.plan
        if isinstance(node, p.In | p.Cmp) and isinstance(node.operand, p.Col):
            if node.operand.name != self._pk:
                return None
            if isinstance(node, p.In):
                return list(dict.fromkeys(node.values))
            if node.op == "==":
                return [node.value]
        return None

    def is_always_true(self) -> bool:
        return isinstance(self.plan, p.Const) and self.plan.value

    def is_always_false(self) -> bool:
        return isinstance(self.plan, p.Const) and not self.plan.value


def compile_filter(
    expr: str | None, schema: CollectionSchema, params: Mapping[str, Any] | None = None
) -> Filter | None:
    """Parse and type-check ``expr`` against ``schema``; None for an empty filter.

    ``params`` are the values of ``{name}`` placeholders (Milvus's filter_params), put in
    as literal values. Raises :class:`FilterError` naming the offending token. Only
    spaces, tabs and newlines make a filter empty (other Unicode spaces are errors).
    """
    if expr is None:
        return None
    if not isinstance(expr, str):
        raise FilterError(f"a filter must be a string, got {type(expr).__name__}")
    if params is not None and not isinstance(params, Mapping):
        raise FilterError(f"filter_params must be a dict, got {type(params).__name__}")
    if not expr.strip(" \t\r\n"):  # Milvus's whitespace only: str.strip() takes U+3000...
        return None
    size = len(expr.encode("utf-8", "surrogatepass"))
    if size > MAX_FILTER_BYTES:
        raise FilterError(
            f"the filter is {size} bytes long; the limit is {MAX_FILTER_BYTES}", expr=expr
        )
    try:
        tree = parse(expr, params)
        plan = Binder(schema, expr).predicate(tree)
    except RecursionError:
        raise FilterError("the filter is nested too deeply", expr=expr) from None
    return Filter(expr, plan, schema)
