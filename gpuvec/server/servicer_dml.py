"""Data RPCs of the Milvus service: Insert, Upsert, Delete, Query, Search, Flush and
GetFlushState.

Translation only (see :mod:`gpuvec.server.servicer`): :mod:`gpuvec.server.convert` turns
requests into the embedded client's arguments and its results into protobuf. Mutation
results carry the write's timestamp (pymilvus keeps it per collection and sends it back as
the guarantee timestamp of Session reads); reads pass the request's guarantee timestamp
through, unless it is ahead of the server's clock (see :func:`_guarantee`). Insert/Upsert
columns are checked (types, lengths, ``num_rows``, required fields) before a row is built.
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from gpuvec.coord.tso import now_ts, physical_ms
from gpuvec.errors import InvalidArgumentError, NotSupportedYetError
from gpuvec.rows_json import load_json
from gpuvec.server.convert import (
    consistency_of,
    parse_delete_request,
    parse_query_request,
    parse_search_request,
    query_result_to_proto,
    rows_from_field_data,
    search_result_to_proto,
)
from gpuvec.server.search_iter import finish_page, iterator_page, iterator_v2
from gpuvec.server.status import ok, rpc

__all__ = ["MAX_GUARANTEE_AHEAD_MS", "DataRPCs", "ids_proto"]

MAX_GUARANTEE_AHEAD_MS = 10_000  # a guarantee timestamp may lead the server's clock this much


def _rank_value(key: str, text: str) -> Any:
    """A hybrid search rank param: pymilvus sends JSON, except plain strings (``rrf``)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped[:1].isdigit() or stripped[:1] == "-":
        return load_json(text, f"rank param {key}", error=InvalidArgumentError)
    return {"true": True, "false": False}.get(stripped.lower(), stripped)


def _guarantee(client: Any, ts: int) -> int:
    """A read's guarantee timestamp. One the server has handed out (or the wall clock has
    passed) stands. One a moment ahead (pymilvus's iterators send "now + 1 s"; clocks
    drift) becomes a fresh timestamp, which already covers every acknowledged write. One
    further ahead than :data:`MAX_GUARANTEE_AHEAD_MS` can never be met and is refused."""
    if ts <= now_ts():
        return ts
    current = int(client.alloc_timestamp())
    if ts <= current:
        return ts
    if physical_ms(ts) - physical_ms(current) > MAX_GUARANTEE_AHEAD_MS:
        raise InvalidArgumentError(
            f"guarantee_timestamp {ts} is more than {MAX_GUARANTEE_AHEAD_MS // 1000} s ahead "
            "of the server's clock: it can never be met"
        )
    return current


def ids_proto(ids: list[Any]) -> schema_pb2.IDs:
    """Primary keys → ``schema.IDs`` (int or string keys)."""
    if ids and isinstance(ids[0], str):
        return schema_pb2.IDs(str_id=schema_pb2.StringArray(data=ids))
    return schema_pb2.IDs(int_id=schema_pb2.LongArray(data=[int(i) for i in ids]))


class DataRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer` (uses its ``client``)."""

    client: Any

    def _write(self, op: str, request: Any, context: Any) -> Any:
        if request.namespace:
            raise NotSupportedYetError(f"{op}: namespaces are not supported by gpuvec")
        partial = op == "upsert" and bool(request.partial_update)
        if op == "upsert" and len(request.field_ops):
            raise NotSupportedYetError("upsert: field operations are not supported by gpuvec")
        client = self.client(request, context)
        schema = client.collection_schema(request.collection_name)
        rows = rows_from_field_data(  # a partial update leaves fields out on purpose
            request.fields_data, int(request.num_rows), schema, operation=None if partial else op
        )
        kw = {"partial_update": True} if partial else {}
        fn = client.insert if op == "insert" else client.upsert
        res = fn(request.collection_name, rows, partition_name=request.partition_name or None,
                 **kw)  # fmt: skip
        count = int(res[f"{op}_count"])
        out = milvus_pb2.MutationResult(
            status=ok(),
            IDs=ids_proto(list(res["ids"])),
            succ_index=list(range(count)),
            timestamp=int(res.get("timestamp", 0)),
        )
        if op == "insert":
            out.insert_cnt = count
        else:
            out.upsert_cnt = count
        return out

    @rpc
    def Insert(self, request: Any, context: Any) -> Any:
        return self._write("insert", request, context)

    @rpc
    def Upsert(self, request: Any, context: Any) -> Any:
        return self._write("upsert", request, context)

    @rpc
    def Delete(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        args = parse_delete_request(request, client.collection_schema(request.collection_name))
        res = client.delete(**args.kwargs())
        count = int(res.get("delete_count", 0))
        return milvus_pb2.MutationResult(
            status=ok(), delete_cnt=count, timestamp=int(res.get("timestamp", 0))
        )

    @rpc
    def Query(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        schema = client.collection_schema(request.collection_name)
        args = parse_query_request(request, schema)
        kwargs = args.kwargs()
        if args.guarantee_timestamp:
            kwargs["guarantee_timestamp"] = _guarantee(client, args.guarantee_timestamp)
        rows = client.query(**kwargs)
        resp = query_result_to_proto(rows, schema, args.output_fields, request.collection_name)
        resp.status.CopyFrom(ok())
        return resp

    @rpc
    def Search(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        args = parse_search_request(request)
        schema = client.collection_schema(request.collection_name)
        kwargs = args.kwargs()
        if args.guarantee_timestamp:
            kwargs["guarantee_timestamp"] = _guarantee(client, args.guarantee_timestamp)
        iterating = iterator_v2(request)
        session_ts = 0
        limit = args.limit
        page: dict[str, Any] | None = kwargs
        if iterating is not None:  # pymilvus's search_iterator (v2): the next page
            session_ts = self._root.alloc_timestamp()
            page = iterator_page(client, kwargs, iterating, schema)
            limit = iterating.batch_size
        hits = client.search(**page) if page is not None else [[] for _ in range(args.nq)]
        if iterating is not None:
            hits = [finish_page(iterating, h) for h in hits]
        data = search_result_to_proto(
            hits, schema, args.output_fields, args.nq, limit, args.round_decimal
        )
        if iterating is not None:
            bound = iterating.last_bound
            if hits and hits[0]:
                bound = float(hits[0][-1]["distance"])
            data.search_iterator_v2_results.token = iterating.token
            data.search_iterator_v2_results.last_bound = bound if bound is not None else 0.0
        return milvus_pb2.SearchResults(
            status=ok(), results=data, collection_name=request.collection_name,
            session_ts=session_ts,
        )  # fmt: skip

    @rpc
    def HybridSearch(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        rank = {p.key: _rank_value(p.key, p.value) for p in request.rank_params}
        if request.HasField("function_score") and request.function_score.functions:
            raise NotSupportedYetError("hybrid_search: function rankers are not supported")
        reqs = []
        for sub in request.requests:
            args = parse_search_request(sub)
            reqs.append({"data": args.data, "anns_field": args.anns_field,
                         "param": args.search_params, "limit": args.limit,
                         "expr": args.filter, "expr_params": args.filter_params})  # fmt: skip
        limit = int(rank.get("limit", 10))
        decimal = int(rank.get("round_decimal", -1))
        kwargs: dict[str, Any] = {"offset": int(rank.get("offset", 0) or 0)}
        for key in ("group_by_field", "group_size", "strict_group_size", "rank_group_scorer"):
            if rank.get(key) not in (None, ""):
                kwargs[key] = rank[key]
        level = consistency_of(request.consistency_level, request.use_default_consistency)
        if level is not None:
            kwargs["consistency_level"] = level
        if request.guarantee_timestamp:
            kwargs["guarantee_timestamp"] = _guarantee(client, request.guarantee_timestamp)
        ranker = {"strategy": rank.get("strategy", "rrf"), "params": rank.get("params") or {}}
        output = list(request.output_fields)
        hits = client.hybrid_search(
            request.collection_name, reqs, ranker, limit=limit, output_fields=output or None,
            partition_names=list(request.partition_names) or None, **kwargs,
        )  # fmt: skip
        schema = client.collection_schema(request.collection_name)
        nq = len(hits)
        data = search_result_to_proto(hits, schema, output, nq, limit, decimal)
        return milvus_pb2.SearchResults(
            status=ok(), results=data, collection_name=request.collection_name
        )

    # --- flush -------------------------------------------------------------------------------
    @rpc
    def Flush(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        resp = milvus_pb2.FlushResponse(status=ok(), db_name=self.db_name(request, context))  # type: ignore[attr-defined]
        for name in request.collection_names:
            client.flush(name)  # synchronous: sealed and committed on return
            ts = int(client.alloc_timestamp())
            resp.coll_segIDs[name].CopyFrom(schema_pb2.LongArray(data=[]))
            resp.flush_coll_segIDs[name].CopyFrom(schema_pb2.LongArray(data=[]))
            resp.coll_seal_times[name] = (ts >> 18) // 1000
            resp.coll_flush_ts[name] = ts
        return resp

    @rpc
    def FlushAll(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        for name in client.list_collections():
            client.flush(name)
        return milvus_pb2.FlushAllResponse(status=ok(), flush_all_ts=client.alloc_timestamp())

    @rpc
    def GetFlushAllState(self, request: Any, context: Any) -> Any:
        # FlushAll is synchronous like Flush: answered means done
        return milvus_pb2.GetFlushAllStateResponse(status=ok(), flushed=True)

    @rpc
    def GetFlushState(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        if request.collection_name:
            client.describe_collection(request.collection_name)  # unknown → not found
        # Flush is synchronous: once it answered, everything before its timestamp is sealed
        return milvus_pb2.GetFlushStateResponse(status=ok(), flushed=True)
