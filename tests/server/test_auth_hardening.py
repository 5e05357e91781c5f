"""Authentication against hostile credentials: a password must match exactly (a trailing
NUL, newline or space, or a prefix, is a wrong password on every RPC), passwords and user
names with control characters are refused when created, malformed ``authorization``
metadata is a plain UNAUTHENTICATED (never a server error), and password records written
before the length-framed hash still verify and are upgraded."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2

from gpuvec.server.app import Server
from gpuvec.server.auth import Credentials
from gpuvec.storage.meta.sqlite import SqliteMetaStore

DIM = 4
NEAR_MISSES = [
    "Milvus\x00",
    "Milvus\n",
    "Milvu",
    "Milvus ",
    "milvus",
    "Milvus\x00\x00",
    "\x00Milvus",
]
METHODS = {  # a few RPCs of each family: the check is the same for every one
    "GetVersion": milvus_pb2.GetVersionRequest(),
    "ShowCollections": milvus_pb2.ShowCollectionsRequest(),
    "Query": milvus_pb2.QueryRequest(collection_name="c", expr="id >= 0"),
    "Insert": milvus_pb2.InsertRequest(collection_name="c"),
    "CreateCredential": milvus_pb2.CreateCredentialRequest(username="eve", password="eA=="),
}


def _header(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _call(srv: Server, method: str, request: Any, header: str | None) -> Any:
    with grpc.insecure_channel(srv.address) as channel:
        fn = channel.unary_unary(
            f"/milvus.proto.milvus.MilvusService/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        md = None if header is None else [("authorization", header)]
        return fn(request, metadata=md, timeout=10)


def test_password_must_match_exactly_on_every_rpc(auth_server: Server) -> None:
    for password in NEAR_MISSES:
        for method, request in METHODS.items():
            with pytest.raises(grpc.RpcError) as err:
                _call(auth_server, method, request, _header("root", password))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (password, method)
        with pytest.raises(MilvusException):  # pymilvus sends the same header
            MilvusClient(uri=f"http://{auth_server.address}", user="root", password=password)
    assert _call(auth_server, "GetVersion", METHODS["GetVersion"], _header("root", "Milvus"))


def test_control_characters_are_refused_when_users_are_created(auth_server: Server) -> None:
    root = MilvusClient(
        uri=f"http://{auth_server.address}", user="root", password="Milvus", timeout=10
    )
    try:
        for bad in ("secret\x00", "sec\nret-pw", "\x7fsecret"):
            with pytest.raises(MilvusException, match="control character") as err:
                root.create_user("bob", bad)
            assert err.value.code == 1100
        for name in ("bo\x00b", "1bob", "b" * 33, ""):
            with pytest.raises(MilvusException) as err:
                root.create_user(name, "secret-pw")
            assert err.value.code == 1100 and "username" in err.value.message
        assert sorted(root.list_users()) == ["root"]
        root.create_user("bob", "secret-pw")
        with pytest.raises(MilvusException, match="control character"):
            root.update_password("bob", "secret-pw", "secret-pw\x00")
        with pytest.raises(MilvusException, match="not correct"):  # never equal to the old one
            root.update_password("bob", "secret-pw\x00", "another-pw")
    finally:
        root.close()
    bob = MilvusClient(uri=f"http://{auth_server.address}", token="bob:secret-pw", timeout=10)
    bob.close()
    with pytest.raises(grpc.RpcError) as rpc_err:
        _call(auth_server, "GetVersion", METHODS["GetVersion"], _header("bob", "secret-pw\x00"))
    assert rpc_err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_malformed_authorization_is_unauthenticated(auth_server: Server) -> None:
    raw_headers = [
        "",
        "%%%",
        "Basic cm9vdDpNaWx2dXM=",  # a scheme prefix is not what pymilvus sends
        "cm9vdDpNaWx2dXM",  # padding missing
        base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
        base64.b64encode(b"root").decode(),  # no colon
        base64.b64encode(b":Milvus").decode(),  # no user
        base64.b64encode(b"\x00root:Milvus").decode(),
        base64.b64encode(b"r\x00:Milvus").decode(),  # a name meta storage cannot hold
        base64.b64encode(b"a" * 4000 + b":Milvus").decode(),
        base64.b64encode(b"root:" + b"M" * 3000).decode(),  # within gRPC's 8 KiB
        _header("nobody", "Milvus"),
    ]
    for header in raw_headers:
        with pytest.raises(grpc.RpcError) as err:
            _call(auth_server, "ShowCollections", METHODS["ShowCollections"], header)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, header[:40]
        assert "auth check failure" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:  # past gRPC's metadata limit: refused by gRPC
        huge = base64.b64encode(b"root:" + b"M" * 100_000).decode()
        _call(auth_server, "ShowCollections", METHODS["ShowCollections"], huge)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with grpc.insecure_channel(auth_server.address) as channel:  # two headers: first counts
        fn = channel.unary_unary(
            "/milvus.proto.milvus.MilvusService/GetVersion",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=milvus_pb2.GetVersionResponse.FromString,
        )
        md = [("authorization", "%%%"), ("authorization", _header("root", "Milvus"))]
        with pytest.raises(grpc.RpcError) as err:
            fn(milvus_pb2.GetVersionRequest(), metadata=md, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # the server still serves good credentials, data RPCs included
    client = MilvusClient(
        uri=f"http://{auth_server.address}", user="root", password="Milvus", timeout=10
    )
    try:
        client.create_collection("c", dimension=DIM, consistency_level="Strong")
        client.insert("c", [{"id": 1, "vector": [0.1] * DIM}])
        assert client.query("c", filter="id == 1", output_fields=["id"]) == [{"id": 1}]
    finally:
        client.close()


def test_legacy_records_verify_exactly_and_are_upgraded(tmp_path: Path) -> None:
    meta = SqliteMetaStore(tmp_path / "m.db")
    try:
        creds = Credentials(meta, "Milvus")
        salt = os.urandom(16)
        old_hash = hashlib.pbkdf2_hmac("sha256", b"old-secret", salt, 100_000).hex()
        meta.put("auth/users/legacy", json.dumps({"salt": salt.hex(), "hash": old_hash}).encode())
        # the old hash cannot tell a trailing NUL apart: such passwords are refused outright
        assert not creds.verify("legacy", "old-secret\x00")
        assert not creds.verify("legacy", "old-secre")
        assert json.loads(meta.get("auth/users/legacy").value).get("v") is None
        assert creds.verify("legacy", "old-secret")
        upgraded = json.loads(meta.get("auth/users/legacy").value)
        assert upgraded["v"] == 2 and upgraded["hash"] != old_hash
        assert creds.verify("legacy", "old-secret")
        assert not creds.verify("legacy", "old-secret\x00")
        assert not creds.verify("root", "Milvus\x00") and creds.verify("root", "Milvus")
    finally:
        meta.close()
