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

from __future__ import annotations

import importlib
from typing import Any

# name → submodule: resolved on first use (PEP 562), so importing one submodule never runs
# the others' imports (two threads importing index modules at once cannot see a partly
# initialised package)
_EXPORTS = {
    "SearchResult": "base", "VectorIndex": "base", "IndexParams": "params",
    "build_index": "registry", "load_index": "registry", "INDEX_TYPES": "spec",
    "METRICS": "spec", "check_build_params": "validate", "check_range_params": "validate",
    "check_search_params": "validate",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpuvec.index' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gpuvec.index.{module}"), name)
