"""Vector index types on sealed segments, with Milvus's names, parameters and semantics.

* :mod:`gpuvec.index.spec` — index types, parameter ranges and defaults (the table).
* :mod:`gpuvec.index.validate` — checks of build/search/range parameters against it.
* :mod:`gpuvec.index.params` — ``IndexParams`` (pymilvus ``prepare_index_params``).
* :mod:`gpuvec.index.base` — the ``VectorIndex`` protocol and result conventions.
* :mod:`gpuvec.index.flat` — FLAT / GPU_BRUTE_FORCE on ``gpuvec.ops.knn``.
* :mod:`gpuvec.index.faiss_index` — IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW (+ AUTOINDEX and the
  GPU types served by their CPU equivalents) on faiss-cpu.
* :mod:`gpuvec.index.search` — the selective-filter rule and exact scans.
* :mod:`gpuvec.index.threads` — faiss thread count per batch size.
* :mod:`gpuvec.index.registry` — ``build_index`` / ``load_index`` and the file format.

Importing this package does not import faiss (it is imported on the first build/load).
"""

from gpuvec.index.base import SearchResult, VectorIndex
from gpuvec.index.params import IndexParams
from gpuvec.index.registry import build_index, load_index
from gpuvec.index.spec import INDEX_TYPES, METRICS
from gpuvec.index.validate import check_build_params, check_range_params, check_search_params

__all__ = [
    "INDEX_TYPES",
    "METRICS",
    "IndexParams",
    "SearchResult",
    "VectorIndex",
    "build_index",
    "check_build_params",
    "check_range_params",
    "check_search_params",
    "load_index",
]
