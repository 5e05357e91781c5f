"""Inspection RPCs of the Milvus service: ``GetReplicas`` (pymilvus ``describe_replica``),
``GetQuerySegmentInfo`` / ``GetPersistentSegmentInfo`` (``list_loaded_segments`` /
``list_persistent_segments``), ``AlterIndex`` (``alter_index_properties`` /
``drop_index_properties``) and ``GetIndexStatistics``. Translation only: the answers are
:mod:`gpuvec.client.segments`'s and :meth:`MilvusClient.describe_index`'s."""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from gpuvec.server.servicer_ddl import kv_dict
from gpuvec.server.status import ok, rpc


class SegmentRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer`."""

    client: Any

    @rpc
    def GetReplicas(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        if request.collection_name:
            found = client.describe_replica(request.collection_name)
        else:
            found = client.describe_replica_of(request.collectionID)
        replicas = [
            milvus_pb2.ReplicaInfo(
                replicaID=r.id, collectionID=request.collectionID,
                shard_replicas=[milvus_pb2.ShardReplica(
                    leaderID=s.shard_leader, dm_channel_name=s.channel_name,
                    node_ids=s.shard_nodes) for s in r.shards],
                node_ids=r.group_nodes, resource_group_name=r.resource_group,
            )
            for r in found
        ]  # fmt: skip
        return milvus_pb2.GetReplicasResponse(status=ok(), replicas=replicas)

    @rpc
    def GetQuerySegmentInfo(self, request: Any, context: Any) -> Any:
        segs = self.client(request, context).list_loaded_segments(request.collectionName)
        infos = [
            milvus_pb2.QuerySegmentInfo(
                segmentID=s.segment_id, collectionID=s.collection_id,
                partitionID=s.partition_id, num_rows=s.num_rows, index_name=s.index_name,
                nodeID=s.node_ids[0], nodeIds=s.node_ids, state=s.state, level=s.level,
                is_sorted=s.is_sorted,
            )
            for s in segs
        ]  # fmt: skip
        return milvus_pb2.GetQuerySegmentInfoResponse(status=ok(), infos=infos)

    @rpc
    def GetPersistentSegmentInfo(self, request: Any, context: Any) -> Any:
        segs = self.client(request, context).list_persistent_segments(request.collectionName)
        wanted = set(request.states)
        infos = [
            milvus_pb2.PersistentSegmentInfo(
                segmentID=s.segment_id, collectionID=s.collection_id,
                partitionID=s.partition_id, num_rows=s.num_rows, state=s.state,
                level=s.level, is_sorted=s.is_sorted, insert_channel=s.insert_channel,
            )
            for s in segs
            if not wanted or s.state in wanted
        ]  # fmt: skip
        return milvus_pb2.GetPersistentSegmentInfoResponse(status=ok(), infos=infos)

    @rpc
    def AlterIndex(self, request: Any, context: Any) -> Any:
        client = self.client(request, context)
        if request.delete_keys:
            client.drop_index_properties(request.collection_name, request.index_name,
                                         list(request.delete_keys))  # fmt: skip
        props = kv_dict(request.extra_params)
        if props:
            client.alter_index_properties(request.collection_name, request.index_name, props)

    @rpc
    def GetIndexStatistics(self, request: Any, context: Any) -> Any:
        resp = self.DescribeIndex(request, context)  # the same descriptions, as Milvus
        return milvus_pb2.GetIndexStatisticsResponse(
            status=resp.status, index_descriptions=resp.index_descriptions
        )

    @rpc
    def ListResourceGroups(self, request: Any, context: Any) -> Any:
        names = self.client(request, context).list_resource_groups()
        return milvus_pb2.ListResourceGroupsResponse(status=ok(), resource_groups=names)

    @rpc
    def DescribeResourceGroup(self, request: Any, context: Any) -> Any:
        group = self.client(request, context).resource_group_proto(request.resource_group)
        return milvus_pb2.DescribeResourceGroupResponse(status=ok(), resource_group=group)
