"""LangChain's Milvus vector store against ``gpuvec serve``, as a RAG user wires it: a
dense embedding field plus a BM25 built-in function over the text (``BM25BuiltInFunction``),
documents added through the store, hybrid (dense + BM25, RRF) retrieval, and a BM25-only
store —
through unmodified ``langchain-milvus`` and pymilvus over a socket."""

from __future__ import annotations

from pathlib import Path

import pytest

lc_milvus = pytest.importorskip(
    "langchain_milvus", reason="langchain-milvus is not installed (pip install .[test])"
)

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from gpuvec.server.app import ServerOptions, start_server  # noqa: E402

TEXTS = [
    "Alan Turing was the first person to conduct substantial research in AI.",
    "Born in Maida Vale, London, Turing was raised in southern England.",
    "The quick brown fox jumps over the lazy dog.",
    "Artificial intelligence was founded as an academic discipline in 1956.",
]


def test_langchain_store_with_a_bm25_builtin_function(tmp_path: Path) -> None:
    srv = start_server(str(tmp_path / "data"), ServerOptions(port=0))
    try:
        store = lc_milvus.Milvus(
            embedding_function=DeterministicFakeEmbedding(size=16),
            builtin_function=lc_milvus.BM25BuiltInFunction(),
            vector_field=["dense", "sparse"],
            connection_args={"uri": f"http://{srv.address}"},
            consistency_level="Strong",
            drop_old=True,
            auto_id=True,
        )
        ids = store.add_documents([Document(page_content=t, metadata={"n": i})
                                   for i, t in enumerate(TEXTS)])  # fmt: skip
        assert len(ids) == len(TEXTS)
        hybrid = store.similarity_search("Turing research", k=2, ranker_type="rrf")
        assert len(hybrid) == 2
        assert any("Turing" in d.page_content for d in hybrid)
        # a BM25-only store (no embedding): full-text search alone ranks the fox first
        bm25 = lc_milvus.Milvus(
            embedding_function=None,
            builtin_function=lc_milvus.BM25BuiltInFunction(output_field_names="sparse"),
            vector_field="sparse",
            collection_name="bm25_only",
            connection_args={"uri": f"http://{srv.address}"},
            consistency_level="Strong",
            drop_old=True,
            auto_id=True,
        )
        bm25.add_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
        only = bm25.similarity_search_with_score("lazy fox", k=2)
        assert only and "fox" in only[0][0].page_content and only[0][0].metadata["n"] == 2
        assert len(only) == 1 or only[0][1] > only[1][1]  # BM25 scores, best first
    finally:
        srv.stop()
