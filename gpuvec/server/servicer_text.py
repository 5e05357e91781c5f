"""Text-analysis RPCs of the Milvus service: ``RunAnalyzer``, as pymilvus's
``run_analyzer`` calls it. Translation only: the work is the client's ``run_analyzer``
(:mod:`gpuvec.client.analyzers`)."""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from gpuvec.client.analyzers import analyze
from gpuvec.errors import NotSupportedYetError
from gpuvec.server.status import ok, rpc
from gpuvec.text.analyzer import analyzer
from gpuvec.text.bm25 import field_analyzer

__all__ = ["TextRPCs"]


class TextRPCs:
    client: Any

    @rpc
    def RunAnalyzer(self, request: Any, context: Any) -> Any:
        if len(request.analyzer_names):
            raise NotSupportedYetError("run_analyzer: multi-analyzer fields (analyzer_names) "
                                       "are not supported by gpuvec")  # fmt: skip
        if request.collection_name and request.field_name:
            schema = self.client(request, context).collection_schema(request.collection_name)
            an = field_analyzer(schema.field(request.field_name))
        else:
            an = analyzer(request.analyzer_params or None)
        results = []
        for raw in request.placeholder:
            tokens = analyze(an, raw.decode("utf-8"), True, True)
            results.append(milvus_pb2.AnalyzerResult(tokens=[milvus_pb2.AnalyzerToken(
                token=t["token"], start_offset=t["start_offset"], end_offset=t["end_offset"],
                position=t["position"], position_length=t["position_length"],
                hash=t["hash"]) for t in tokens]))  # fmt: skip
        return milvus_pb2.RunAnalyzerResponse(status=ok(), results=results)
