"""Text analysis for full-text search (BM25) and ``text_match``: Milvus-compatible
analyzers (a tokenizer and its filters) built from ``analyzer_params``
(:mod:`.analyzer`, :mod:`.tokenizers`, :mod:`.filters`) and BM25's term counts, query
weights and statistics (:mod:`.bm25`, which registers the BM25 function's runner with
:mod:`gpuvec.functions` when imported — importing this package does that)."""

from gpuvec.text import bm25 as _bm25  # noqa: F401 (registers the BM25 runner)
from gpuvec.text.analyzer import Analyzer, analyzer, check_analyzer_params

__all__ = ["Analyzer", "analyzer", "check_analyzer_params"]
