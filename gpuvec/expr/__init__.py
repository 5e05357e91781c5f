"""The Milvus filter (boolean expression) language: parse, type-check, evaluate.

Public API (what the engine calls)::

    f = compile_filter('age > 20 and tags["color"] == "red"', schema, params)  # or None
    mask = f.evaluate(segment_table, segment_json_cache)  # np.ndarray[bool], one per row

Modules: :mod:`~gpuvec.expr.lexer` and :mod:`~gpuvec.expr.parser` (text → syntax tree),
:mod:`~gpuvec.expr.typecheck` (tree + schema → :mod:`~gpuvec.expr.plan`),
:mod:`~gpuvec.expr.evaluate` with :mod:`~gpuvec.expr.values` and
:mod:`~gpuvec.expr.kernels` (plan → mask), :mod:`~gpuvec.expr.jsoncache` (decoded JSON
per segment), :mod:`~gpuvec.expr.arith` and :mod:`~gpuvec.expr.likes` (semantics helpers).
"""

from gpuvec.expr.errors import MAX_DEPTH, MAX_FILTER_BYTES, FilterError
from gpuvec.expr.filter import Filter, compile_filter
from gpuvec.expr.jsoncache import JsonCache

__all__ = ["MAX_DEPTH", "MAX_FILTER_BYTES", "Filter", "FilterError", "JsonCache", "compile_filter"]
