"""BM25 searches over a collection's segments: the collection's statistics gathered from
every segment the search reads, then each query's terms weighted by their idf
(:mod:`gpuvec.text.bm25`), so every segment scores its rows with the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gpuvec.query.segdata import SegmentData
from gpuvec.sparse import SparseRows
from gpuvec.text.bm25 import K1, B, Stats, idf, merge_stats

__all__ = ["bm25_params", "query_dims", "weigh", "weighted_queries"]


def bm25_params(index_params: Sequence[dict[str, Any]], field: str) -> tuple[float, float]:
    """(k1, b) of the field's BM25 index definition (Milvus's defaults without one)."""
    for d in index_params:
        if d.get("field_name") == field:
            p = d.get("params") or {}
            return float(p.get("bm25_k1", K1)), float(p.get("bm25_b", B))
    return K1, B


def weighted_queries(
    segs: Sequence[SegmentData], field: str, queries: SparseRows, read_ts: int,
    k1: float = K1, b: float = B,
) -> tuple[SparseRows, dict[str, float]]:  # fmt: skip
    """Queries of term counts → queries of term weights (count × idf) and the search
    params every segment scores with (``bm25_k1``, ``bm25_b``, ``bm25_avgdl``)."""
    dims = query_dims(queries)
    return weigh(queries, dims, [s.bm25_stats(field, dims, read_ts) for s in segs], k1, b)


def query_dims(queries: SparseRows) -> np.ndarray:
    """The distinct term ids of a batch of queries, sorted (what segments report on)."""
    return np.unique(queries.indices[: queries.nnz])


def weigh(queries: SparseRows, dims: np.ndarray, parts: list[Stats], k1: float,
          b: float) -> tuple[SparseRows, dict[str, float]]:  # fmt: skip
    """:func:`weighted_queries` from the segments' statistics (``parts``) over ``dims``."""
    nnz = queries.nnz
    docs, total, df = merge_stats(parts, len(dims))
    weights = idf(docs, df)
    pos = np.searchsorted(dims, queries.indices[:nnz])
    values = (queries.values[:nnz].astype(np.float64) * weights[pos]).astype(np.float32)
    # a term no document holds scores nothing: it leaves the query (so drop_ratio_search
    # ranks only the terms that can match)
    keep = df[pos] > 0
    counts = np.bincount(queries.row_ids()[keep], minlength=len(queries))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    avgdl = total / docs if docs else 1.0
    return SparseRows(indptr, queries.indices[:nnz][keep], values[keep]), {
        "bm25_k1": k1, "bm25_b": b, "bm25_avgdl": avgdl}  # fmt: skip
