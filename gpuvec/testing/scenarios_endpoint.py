"""End-to-end scenarios of a Milvus gRPC endpoint (``gpuvec serve`` or a cluster proxy)
through an unmodified ``pymilvus.MilvusClient``: what only exists over the socket, so the
embedded runtime does not run them.

:class:`GrpcEndpointScenarios` checks the server version and the CheckHealth RPC, that an
RPC gpuvec does not implement answers gRPC UNIMPLEMENTED naming it, that
``gpuvec.MilvusClient`` given a remote URI is pymilvus's client speaking gRPC, and the
AllocTimestamp RPC.

To run it against an endpoint, subclass it in a test module and provide the fixtures:

- ``server``: an object whose ``address`` is the endpoint's ``host:port``, on an empty
  runtime;
- ``milvus``: a ``pymilvus.MilvusClient`` connected to ``server.address``.

The runtime-independent scenarios are in :mod:`gpuvec.testing.scenarios_data` and
:mod:`gpuvec.testing.scenarios_collections`.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from gpuvec.testing.scenarios_support import DIM


class GrpcEndpointScenarios:
    def test_connect_version_and_health(self, milvus: MilvusClient, server: Any) -> None:
        assert "gpuvec" in milvus.get_server_version()
        assert milvus.list_collections() == []
        channel = grpc.insecure_channel(server.address)
        try:
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            resp = stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=5)
        finally:
            channel.close()
        assert resp.status.code == 0 and resp.isHealthy and not list(resp.reasons)

    def test_batch_describe_collection(self, milvus: MilvusClient, server: Any) -> None:
        milvus.create_collection("bd1", dimension=4)
        milvus.create_collection("bd2", dimension=8)
        cid = milvus.describe_collection("bd2")["collection_id"]
        channel = grpc.insecure_channel(server.address)
        try:
            stub = milvus_pb2_grpc.MilvusServiceStub(channel)
            req = milvus_pb2.BatchDescribeCollectionRequest(collection_name=["bd1"],
                                                            collectionID=[cid])  # fmt: skip
            resp = stub.BatchDescribeCollection(req, timeout=5)
            missing = stub.BatchDescribeCollection(
                milvus_pb2.BatchDescribeCollectionRequest(collection_name=["nope"]), timeout=5)
        finally:
            channel.close()
        assert resp.status.code == 0
        assert [r.collection_name for r in resp.responses] == ["bd1", "bd2"]
        assert resp.responses[1].collectionID == cid
        assert missing.status.code == 100 and "nope" in missing.status.reason

    def test_unimplemented_rpc_is_named(self, milvus: MilvusClient) -> None:
        # gRPC UNIMPLEMENTED (pymilvus passes it through without retrying), naming the RPC
        with pytest.raises(grpc.RpcError, match="does not implement the Milvus RPC CreateResou"):
            milvus.create_resource_group("rg1")

    def test_gpuvec_client_with_a_remote_uri_speaks_grpc(self, server: Any) -> None:
        import gpuvec

        remote = gpuvec.MilvusClient(f"http://{server.address}")
        try:
            assert isinstance(remote, MilvusClient)  # pymilvus's client, over the socket
            remote.create_collection("r", dimension=DIM)
            assert remote.list_collections() == ["r"]
        finally:
            remote.close()

    def test_alloc_timestamp(self, milvus: MilvusClient) -> None:
        ts = milvus._get_connection().alloc_timestamp()
        assert ts >> 18 > 1_700_000_000_000  # a hybrid timestamp of this era (ms << 18)
