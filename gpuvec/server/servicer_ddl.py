"""Collection and partition RPCs of the Milvus service: create/describe/list/drop/rename/alter/
truncate collections, statistics, load/release and load state, partitions.

Translation only (see :mod:`gpuvec.server.servicer`): each handler reads the request, calls
the database's proxy (an embedded :class:`gpuvec.MilvusClient`) and builds the response.
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from gpuvec.errors import CollectionNotFoundError, InvalidArgumentError, NotSupportedYetError
from gpuvec.server.convert import field_from_proto, schema_from_proto, schema_to_proto
from gpuvec.server.status import ok, rpc

__all__ = ["CollectionRPCs", "consistency_name", "kv_dict", "kv_pairs"]


def kv_dict(pairs: Any) -> dict[str, str]:
    """Repeated ``KeyValuePair`` → dict."""
    return {p.key: p.value for p in pairs}


def kv_pairs(d: dict[str, Any]) -> list[common_pb2.KeyValuePair]:
    """dict → repeated ``KeyValuePair`` (values as strings, as Milvus sends them)."""
    return [common_pb2.KeyValuePair(key=str(k), value=str(v)) for k, v in d.items()]


def consistency_name(level: int) -> str:
    """Wire ``ConsistencyLevel`` → the embedded client's name (Customized → Bounded); a
    value outside the enum is refused."""
    if level not in common_pb2.ConsistencyLevel.values():
        raise InvalidArgumentError(f"consistency_level: unknown level {level}")
    if level not in (0, 1, 2, 3):
        return "Bounded"
    return common_pb2.ConsistencyLevel.Name(level)


def _consistency_value(name: str) -> int:
    try:
        return common_pb2.ConsistencyLevel.Value(name)
    except ValueError:
        return common_pb2.Bounded


class CollectionRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer` (uses its ``client``)."""

    client: Any

    # --- collections -------------------------------------------------------------------------
    @rpc
    def AddCollectionField(self, request: Any, context: Any) -> Any:
        try:
            pb = schema_pb2.FieldSchema.FromString(request.schema)
        except Exception as e:  # protobuf's DecodeError
            raise InvalidArgumentError(
                f"AddCollectionField: the field schema is unreadable: {e}"
            ) from None
        field = field_from_proto(pb)
        kwargs = {"nullable": field.nullable, "default_value": field.default_value,
                  **({"element_type": field.element_type} if field.element_type else {}),
                  **field.params}  # fmt: skip
        self.client(request, context).add_collection_field(
            request.collection_name, field.name, field.dtype, desc=field.description,
            is_primary=field.is_primary, is_partition_key=field.is_partition_key,
            auto_id=field.auto_id, **kwargs,
        )  # fmt: skip

    @rpc
    def AlterCollectionField(self, request: Any, context: Any) -> Any:
        if request.delete_keys:
            raise NotSupportedYetError("AlterCollectionField: delete_keys is not supported")
        self.client(request, context).alter_collection_field(
            request.collection_name, request.field_name, kv_dict(request.properties)
        )

    @rpc
    def CreateCollection(self, request: Any, context: Any) -> Any:
        pb = schema_pb2.CollectionSchema()
        try:
            pb.ParseFromString(request.schema)
        except Exception as exc:
            raise InvalidArgumentError(
                f"schema: not a valid CollectionSchema message: {exc}"
            ) from exc
        schema = schema_from_proto(pb)
        props = kv_dict(request.properties)
        kwargs: dict[str, Any] = {
            "consistency_level": consistency_name(request.consistency_level),
        }
        if request.shards_num:
            kwargs["num_shards"] = int(request.shards_num)
        if request.num_partitions:
            kwargs["num_partitions"] = int(request.num_partitions)
        if props:
            kwargs["properties"] = props
        self.client(request, context).create_collection(
            request.collection_name, schema=schema, **kwargs
        )

    @rpc
    def DropCollection(self, request: Any, context: Any) -> Any:
        self.client(request, context).drop_collection(request.collection_name)

    @rpc
    def HasCollection(self, request: Any, context: Any) -> Any:
        value = self.client(request, context).has_collection(request.collection_name)
        return milvus_pb2.BoolResponse(status=ok(), value=bool(value))

    @rpc
    def DescribeCollection(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        return self._described(client, request, context, request.collection_name)

    @rpc
    def BatchDescribeCollection(self, request: Any, context: Any) -> Any:
        """DescribeCollection of each named collection (or id), in the request's order."""
        client = self.client(request, context)
        names = list(request.collection_name)
        if request.collectionID:
            by_id = {int(client.describe_collection(c)["collection_id"]): c
                     for c in client.list_collections()}  # fmt: skip
            for cid in request.collectionID:
                if int(cid) not in by_id:
                    raise CollectionNotFoundError(f"collection not found[collection={cid}]")
                names.append(by_id[int(cid)])
        out = [self._described(client, request, context, n) for n in names]
        return milvus_pb2.BatchDescribeCollectionResponse(status=ok(), responses=out)

    def _described(self, client: Any, request: Any, context: Any, name: str) -> Any:
        info = client.describe_collection(name)
        schema = client.collection_schema(name)
        created = int(info.get("created_timestamp", 0))
        return milvus_pb2.DescribeCollectionResponse(
            status=ok(),
            schema=schema_to_proto(schema, info["collection_name"], info.get("description", "")),
            collectionID=int(info.get("collection_id", 0)),
            collection_name=info["collection_name"],
            shards_num=int(info.get("num_shards", 1)),
            num_partitions=int(info.get("num_partitions", 1)),
            consistency_level=_consistency_value(str(info.get("consistency_level", "Bounded"))),
            aliases=list(info.get("aliases", [])),
            properties=kv_pairs(info.get("properties", {})),
            created_timestamp=created << 18,
            created_utc_timestamp=created,
            db_name=self.db_name(request, context),  # type: ignore[attr-defined]
            virtual_channel_names=[
                f"c{info.get('collection_id', 0)}_dml_{i}" for i in range(info.get("num_shards", 1))
            ],
        )

    @rpc
    def ShowCollections(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        names = list(client.list_collections())
        wanted = list(request.collection_names)
        if wanted:
            missing = [n for n in wanted if n not in names]
            if missing:
                raise InvalidArgumentError(f"collection not found[collection={missing[0]}]")
            names = wanted
        loaded = [
            100 if int(client.get_load_state(n)["state"]) == common_pb2.LoadStateLoaded else 0
            for n in names
        ]
        return milvus_pb2.ShowCollectionsResponse(
            status=ok(), collection_names=names, inMemory_percentages=loaded
        )

    @rpc
    def RenameCollection(self, request: Any, context: Any) -> Any:
        db = self.db_name(request, context)  # type: ignore[attr-defined]
        if request.newDBName and request.newDBName != db:
            raise InvalidArgumentError(
                f"renaming a collection into another database ({request.newDBName!r}) is not "
                "supported"
            )
        self.client(request, context).rename_collection(request.oldName, request.newName)

    @rpc
    def AlterCollection(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        if request.properties:
            client.alter_collection_properties(
                request.collection_name, properties=kv_dict(request.properties)
            )
        if request.delete_keys:
            client.drop_collection_properties(
                request.collection_name, property_keys=list(request.delete_keys)
            )

    @rpc
    def TruncateCollection(self, request: Any, context: Any) -> Any:
        self.client(request, context).truncate_collection(request.collection_name)

    @rpc
    def GetCollectionStatistics(self, request: Any, context: Any) -> Any:
        stats = self.client(request, context).get_collection_stats(request.collection_name)
        return milvus_pb2.GetCollectionStatisticsResponse(
            status=ok(), stats=kv_pairs({"row_count": int(stats["row_count"])})
        )

    # --- load / release ----------------------------------------------------------------------
    @rpc
    def LoadCollection(self, request: Any, context: Any) -> Any:
        self.client(request, context).load_collection(request.collection_name)

    @rpc
    def ReleaseCollection(self, request: Any, context: Any) -> Any:
        self.client(request, context).release_collection(request.collection_name)

    @rpc
    def GetLoadState(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        parts = list(request.partition_names)
        if parts:
            states = [
                int(client.get_load_state(request.collection_name, partition_name=p)["state"])
                for p in parts
            ]
            state = min(states)
        else:
            state = int(client.get_load_state(request.collection_name)["state"])
        return milvus_pb2.GetLoadStateResponse(status=ok(), state=state)

    @rpc
    def GetLoadingProgress(self, request: Any, context: Any) -> Any:
        resp = self.GetLoadState(request, context)
        if resp.status.code:
            return milvus_pb2.GetLoadingProgressResponse(status=resp.status)
        if resp.state == common_pb2.LoadStateNotExist:
            raise InvalidArgumentError(
                f"collection not found[collection={request.collection_name}]"
            )
        done = 100 if resp.state == common_pb2.LoadStateLoaded else 0
        return milvus_pb2.GetLoadingProgressResponse(
            status=ok(), progress=done, refresh_progress=done
        )

    # --- partitions --------------------------------------------------------------------------
    @rpc
    def CreatePartition(self, request: Any, context: Any) -> Any:
        self.client(request, context).create_partition(
            request.collection_name, request.partition_name
        )

    @rpc
    def DropPartition(self, request: Any, context: Any) -> Any:
        self.client(request, context).drop_partition(
            request.collection_name, request.partition_name
        )

    @rpc
    def HasPartition(self, request: Any, context: Any) -> Any:
        value = self.client(request, context).has_partition(
            request.collection_name, request.partition_name
        )
        return milvus_pb2.BoolResponse(status=ok(), value=bool(value))

    @rpc
    def ShowPartitions(self, request: Any, context: Any) -> Any:
        names = list(self.client(request, context).list_partitions(request.collection_name))
        return milvus_pb2.ShowPartitionsResponse(status=ok(), partition_names=names)

    @rpc
    def LoadPartitions(self, request: Any, context: Any) -> Any:
        self.client(request, context).load_partitions(
            request.collection_name, list(request.partition_names)
        )

    @rpc
    def ReleasePartitions(self, request: Any, context: Any) -> Any:
        self.client(request, context).release_partitions(
            request.collection_name, list(request.partition_names)
        )

    @rpc
    def GetPartitionStatistics(self, request: Any, context: Any) -> Any:
        stats = self.client(request, context).get_partition_stats(
            request.collection_name, request.partition_name
        )
        return milvus_pb2.GetPartitionStatisticsResponse(
            status=ok(), stats=kv_pairs({"row_count": int(stats["row_count"])})
        )
