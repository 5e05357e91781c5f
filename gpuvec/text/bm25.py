"""BM25: the function's output on write, query text on search, and the corpus statistics
that turn term counts into scores.

On write (:func:`output_cells`, registered with :mod:`gpuvec.functions`), each row's text
is analysed with its field's analyzer and becomes a sparse row: one dimension per distinct
token (:func:`gpuvec.functions.term_id`), the token's count as the value; the row's length
(its token count) is the sum of its values. On search (:func:`query_rows`) query text
becomes the same kind of row. Scores are Okapi BM25 as Milvus (and Lucene) compute them::

    score(q, d) = sum over query terms t of  qtf(t) * idf(t) * tf(t, d) * (k1 + 1)
                                             / (tf(t, d) + k1 * (1 - b + b * len(d) / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

with ``N`` the documents, ``df(t)`` those holding ``t`` and ``avgdl`` their mean length,
over the rows the search can see in every segment of the collection (each segment reports
its part, :func:`merge_stats` adds them up), so a score does not depend on how rows are
split into segments. ``k1`` and ``b`` are the index's ``bm25_k1`` / ``bm25_b`` (1.2 / 0.75).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec import functions
from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import FieldSchema
from gpuvec.sparse import PAIR, SparseRows
from gpuvec.text.analyzer import Analyzer, analyzer

__all__ = ["Stats", "check_analyzers", "field_analyzer", "idf", "merge_stats", "output_cells",
           "query_rows", "text_queries"]

K1, B = 1.2, 0.75


def field_analyzer(field: FieldSchema) -> Analyzer:
    """The analyzer of a VARCHAR field (``analyzer_params``; the standard one by default)."""
    params = field.extra_params.get("analyzer_params")
    if isinstance(params, str):
        params = json.loads(params) if params.strip() else None
    return analyzer(params)


def check_analyzers(schema: Any) -> None:
    """Refuse a schema whose analysed fields' ``analyzer_params`` are not valid (naming
    the field and the key), or that enables ``enable_match`` without an analyzer."""
    for field in schema.fields:
        extra = field.extra_params
        if _flag(extra.get("enable_match")) and not _flag(extra.get("enable_analyzer")):
            raise InvalidArgumentError(f"field {field.name!r}: enable_match needs "
                                       "enable_analyzer to be true")  # fmt: skip
        if _flag(extra.get("enable_analyzer")) or "analyzer_params" in extra:
            try:
                field_analyzer(field)
            except (InvalidArgumentError, ValueError) as e:
                raise InvalidArgumentError(f"field {field.name!r}: {e}") from None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _cell(tokens: list[str]) -> bytes:
    counts = Counter(functions.term_id(t) for t in tokens)
    out = np.empty(len(counts), PAIR)
    if counts:
        dims = np.fromiter(counts.keys(), np.uint32, len(counts))
        vals = np.fromiter(counts.values(), np.float32, len(counts))
        order = np.argsort(dims)
        out["index"], out["value"] = dims[order], vals[order]
    return out.tobytes()


def output_cells(fn: functions.FunctionSchema, field: FieldSchema, texts: pa.Array) -> pa.Array:
    """The BM25 function's output column for a column of texts (null text: empty row)."""
    an = field_analyzer(field)
    return pa.array([_cell(an.tokens(t)) if t else b"" for t in texts.to_pylist()], pa.binary())


def query_rows(texts: list[str], field: FieldSchema) -> SparseRows:
    """Query texts → their term counts (one sparse row per query)."""
    an = field_analyzer(field)
    return SparseRows.from_cells([_cell(an.tokens(t)) for t in texts])


def text_queries(data: Any, schema: Any, fn: functions.FunctionSchema) -> SparseRows:
    """The search data of a BM25 output field — query text, one string or a list — as
    term counts analysed like the input field; ``InvalidArgumentError`` otherwise."""
    items = [data] if isinstance(data, str) else list(data) if data is not None else []
    if not items:
        raise InvalidArgumentError("search data is empty")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InvalidArgumentError(
                f"search data[{i}]: the field {fn.output_field_names[0]!r} is the output of "
                f"BM25 function {fn.name!r}: search it with query text, got {type(t).__name__}"
            )
    return query_rows(items, schema.field(fn.input_field_names[0]))


Stats = tuple[int, float, np.ndarray]
"""(documents, total length, document frequency of each query dimension)."""


def merge_stats(parts: list[Stats], dims: int) -> Stats:
    """The collection's statistics from its segments' parts."""
    docs = sum(p[0] for p in parts)
    total = float(sum(p[1] for p in parts))
    df = np.zeros(dims, np.int64)
    for p in parts:
        df += p[2]
    return docs, total, df


def idf(docs: int, df: np.ndarray) -> np.ndarray:
    """Lucene's BM25 idf of each term (float64)."""
    df = df.astype(np.float64)
    return np.log1p((docs - df + 0.5) / (df + 0.5))


functions.register_runner(functions.BM25, output_cells)
