"""Connection, health and metrics, index, compaction, database, alias and timestamp RPCs
of the Milvus service (``GetComponentStates`` / ``GetMetrics`` answer with the data of
:mod:`gpuvec.observability.system_info`).

Translation only (see :mod:`gpuvec.server.servicer`). Index requests arrive as pymilvus
sends them: ``extra_params`` holds ``index_type``, ``metric_type`` and either each build
parameter as its own string pair (MilvusClient) or one JSON ``params`` pair (older clients).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from gpuvec.errors import IndexNotFoundError, InvalidArgumentError
from gpuvec.observability.metrics import NODE_ID
from gpuvec.rows_json import JSON_MAX_DEPTH, JSON_MAX_LENGTH, json_too_deep, load_json
from gpuvec.server.convert import check_param_numbers
from gpuvec.server.servicer_ddl import kv_dict, kv_pairs
from gpuvec.server.status import ok, rpc

__all__ = ["AdminRPCs", "index_request_params"]

_INDEX_KEYS = ("index_type", "metric_type", "params")
_COMPACTION_STATE = {
    "Completed": common_pb2.Completed,
    "Executing": common_pb2.Executing,
}


def _value(key: str, text: str) -> Any:
    """A parameter value as pymilvus stringified it: JSON when it parses (within the JSON
    limits of :mod:`gpuvec.rows_json`), else the text; JSON nested too deep is refused."""
    if len(text) <= JSON_MAX_LENGTH and json_too_deep(text):
        raise InvalidArgumentError(
            f"index param {key!r}: JSON nested deeper than {JSON_MAX_DEPTH} levels"
        )
    try:
        return load_json(text, f"index param {key!r}", error=InvalidArgumentError)
    except InvalidArgumentError:
        return text  # not JSON: the index type's own validation names the bad value


def index_request_params(pairs: Any) -> tuple[str, str | None, dict[str, Any]]:
    """(index_type, metric_type, build params) of a CreateIndex request's extra_params."""
    raw = kv_dict(pairs)
    params: dict[str, Any] = {}
    if raw.get("params"):
        inner = _value("params", raw["params"])
        if not isinstance(inner, dict):
            raise InvalidArgumentError(
                f"index params must be a JSON object, got {raw['params']!r:.60}"
            )
        params.update(inner)
    for key, text in raw.items():
        if key not in _INDEX_KEYS:
            params[key] = _value(key, text)
    check_param_numbers(params, "index param")
    itype = raw.get("index_type") or "AUTOINDEX"
    metric = raw.get("metric_type") or None
    return itype, metric, params


class AdminRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer`."""

    client: Any
    _root: Any
    _version: str

    # --- connection --------------------------------------------------------------------------
    @rpc
    def Connect(self, request: Any, context: Any) -> Any:
        info = common_pb2.ServerInfo(
            build_tags=self._version,
            deploy_mode="STANDALONE",
            reserved={"server": "gpuvec", "host": socket.gethostname()},
        )
        return milvus_pb2.ConnectResponse(
            status=ok(),
            server_info=info,
            identifier=self.identifier(),  # type: ignore[attr-defined]
        )

    @rpc
    def GetVersion(self, request: Any, context: Any) -> Any:
        return milvus_pb2.GetVersionResponse(status=ok(), version=self._version)

    @rpc
    def CheckHealth(self, request: Any, context: Any) -> Any:
        healthy, reasons = self._root.check_health()
        return milvus_pb2.CheckHealthResponse(status=ok(), isHealthy=healthy, reasons=reasons)

    @rpc
    def GetComponentStates(self, request: Any, context: Any) -> Any:
        _, reasons = self._root.check_health()
        parts = [
            milvus_pb2.ComponentInfo(
                nodeID=int(c["node_id"]) if str(c["node_id"]).isdigit() else 0,
                role=c["role"],
                state_code=common_pb2.Healthy if c["healthy"] else common_pb2.Abnormal,
                extra_info=kv_pairs({"node": str(c["node_id"]), "reason": c["reason"]}),
            )
            for c in self._root.components(reasons)
        ]
        return milvus_pb2.ComponentStates(
            status=ok(), state=parts[0], subcomponent_states=parts[1:]
        )

    @rpc
    def GetMetrics(self, request: Any, context: Any) -> Any:
        info = self._root.system_info(request.request, self._version)
        return milvus_pb2.GetMetricsResponse(
            status=ok(), response=json.dumps(info), component_name=f"proxy-{NODE_ID}"
        )

    @rpc
    def AllocTimestamp(self, request: Any, context: Any) -> Any:
        return milvus_pb2.AllocTimestampResponse(
            status=ok(), timestamp=self._root.alloc_timestamp()
        )

    # --- indexes -----------------------------------------------------------------------------
    @rpc
    def CreateIndex(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        itype, metric, params = index_request_params(request.extra_params)
        idx = client.prepare_index_params()
        kwargs: dict[str, Any] = {"index_type": itype, "params": params}
        if metric:
            kwargs["metric_type"] = metric
        if request.index_name:
            kwargs["index_name"] = request.index_name
        idx.add_index(request.field_name, **kwargs)
        client.create_index(request.collection_name, idx, _async=True)  # pymilvus polls

    def _descriptions(self, request: Any, context: Any) -> list[dict[str, Any]]:
        client = self.client(request, context)
        name = request.collection_name
        names = [request.index_name] if request.index_name else client.list_indexes(name)
        out = [d for n in names if (d := client.describe_index(name, n)) is not None]
        if request.field_name:
            out = [d for d in out if d["field_name"] == request.field_name]
        if not out:
            what = request.index_name or request.field_name or name
            raise IndexNotFoundError(f"index not found[indexName={what}]")
        return out

    @rpc
    def DescribeIndex(self, request: Any, context: Any) -> Any:
        descs = []
        for d in self._descriptions(request, context):
            # flattened, as Milvus stores what MilvusClient.create_index sends
            params = {"index_type": d["index_type"]}
            if d.get("metric_type"):
                params["metric_type"] = d["metric_type"]
            for key, value in (d.get("params") or {}).items():
                params[key] = json.dumps(value) if isinstance(value, dict | list) else value
            params.update(d.get("properties") or {})
            descs.append(
                milvus_pb2.IndexDescription(
                    index_name=d["index_name"],
                    field_name=d["field_name"],
                    params=kv_pairs(params),
                    total_rows=int(d.get("total_rows", 0)),
                    indexed_rows=int(d.get("indexed_rows", 0)),
                    pending_index_rows=int(d.get("pending_index_rows", 0)),
                    state=common_pb2.IndexState.Value(str(d.get("state", "Finished"))),
                    index_state_fail_reason=str(d.get("index_state_fail_reason", "")),
                )
            )
        return milvus_pb2.DescribeIndexResponse(status=ok(), index_descriptions=descs)

    @rpc
    def GetIndexState(self, request: Any, context: Any) -> Any:
        d = self._descriptions(request, context)[0]
        state = common_pb2.IndexState.Value(str(d.get("state", "Finished")))
        return milvus_pb2.GetIndexStateResponse(
            status=ok(), state=state, fail_reason=str(d.get("index_state_fail_reason", ""))
        )

    @rpc
    def GetIndexBuildProgress(self, request: Any, context: Any) -> Any:
        d = self._descriptions(request, context)[0]
        return milvus_pb2.GetIndexBuildProgressResponse(
            status=ok(),
            indexed_rows=int(d.get("indexed_rows", 0)),
            total_rows=int(d.get("total_rows", 0)),
        )

    @rpc
    def DropIndex(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        name = request.index_name
        if not name:
            matching = [
                d["index_name"]
                for d in self._descriptions(request, context)
                if not request.field_name or d["field_name"] == request.field_name
            ]
            name = matching[0]
        client.drop_index(request.collection_name, name)

    # --- compaction --------------------------------------------------------------------------
    @rpc
    def ManualCompaction(self, request: Any, context: Any) -> Any:
        job = self.client(request, context).compact(request.collection_name)
        return milvus_pb2.ManualCompactionResponse(
            status=ok(), compactionID=int(job), compactionPlanCount=1
        )

    @rpc
    def GetCompactionState(self, request: Any, context: Any) -> Any:
        state = self._root.get_compaction_state(int(request.compactionID))
        wire = _COMPACTION_STATE.get(str(state), common_pb2.UndefiedState)
        done = wire == common_pb2.Completed
        return milvus_pb2.GetCompactionStateResponse(
            status=ok(),
            state=wire,
            executingPlanNo=0 if done else 1,
            completedPlanNo=1 if done else 0,
        )

    @rpc
    def GetCompactionStateWithPlans(self, request: Any, context: Any) -> Any:
        job = int(request.compactionID)
        plans = self._root.get_compaction_plans(job)
        merges = [milvus_pb2.CompactionMergeInfo(sources=p.sources, target=p.target)
                  for p in plans.plans]  # fmt: skip
        return milvus_pb2.GetCompactionPlansResponse(
            status=ok(), state=plans.state.value, mergeInfos=merges
        )

    # --- databases ---------------------------------------------------------------------------
    @rpc
    def CreateDatabase(self, request: Any, context: Any) -> Any:
        self._root.create_database(request.db_name, properties=kv_dict(request.properties))

    @rpc
    def DropDatabase(self, request: Any, context: Any) -> Any:
        self._root.drop_database(request.db_name)

    @rpc
    def ListDatabases(self, request: Any, context: Any) -> Any:
        return milvus_pb2.ListDatabasesResponse(
            status=ok(), db_names=list(self._root.list_databases())
        )

    @rpc
    def DescribeDatabase(self, request: Any, context: Any) -> Any:
        info = self._root.describe_database(request.db_name)
        props = {k: v for k, v in info.items() if k not in ("name", "db_name", "id", "created")}
        return milvus_pb2.DescribeDatabaseResponse(
            status=ok(),
            db_name=str(info.get("name", request.db_name)),
            dbID=int(info.get("id", 0)),
            created_timestamp=int(info.get("created", 0)),
            properties=kv_pairs(props),
        )

    @rpc
    def AlterDatabase(self, request: Any, context: Any) -> Any:
        if request.properties:
            self._root.alter_database_properties(request.db_name, kv_dict(request.properties))
        if request.delete_keys:
            self._root.drop_database_properties(request.db_name, list(request.delete_keys))

    # --- aliases -----------------------------------------------------------------------------
    @rpc
    def CreateAlias(self, request: Any, context: Any) -> Any:
        self.client(request, context).create_alias(request.collection_name, request.alias)

    @rpc
    def DropAlias(self, request: Any, context: Any) -> Any:
        self.client(request, context).drop_alias(request.alias)

    @rpc
    def AlterAlias(self, request: Any, context: Any) -> Any:
        self.client(request, context).alter_alias(request.collection_name, request.alias)

    @rpc
    def DescribeAlias(self, request: Any, context: Any) -> Any:
        info = self.client(request, context).describe_alias(request.alias)
        return milvus_pb2.DescribeAliasResponse(
            status=ok(),
            db_name=self.db_name(request, context),  # type: ignore[attr-defined]
            alias=info["alias"],
            collection=info["collection_name"],
        )

    @rpc
    def ListAliases(self, request: Any, context: Any) -> Any:
        info = self.client(request, context).list_aliases(request.collection_name)
        return milvus_pb2.ListAliasesResponse(
            status=ok(),
            db_name=self.db_name(request, context),  # type: ignore[attr-defined]
            collection_name=request.collection_name,
            aliases=list(info.get("aliases", [])),
        )
