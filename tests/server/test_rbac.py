"""Role-based access control through unmodified pymilvus against ``gpuvec serve --auth``:
roles, user roles, grants (v1 and v2), built-in and custom privilege groups, the built-in
``admin`` / ``public`` roles, persistence across a restart — and every denial path: a user
without the privilege cannot read, write, drop or grant, and gets Milvus's
PERMISSION_DENIED (gRPC status 7) naming the privilege, the user and the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from gpuvec.server.app import Server, ServerOptions, start_server

DIM = 4
ROOT_TOKEN = "root:Milvus"


def client(srv: Server, token: str) -> MilvusClient:
    return MilvusClient(uri=f"http://{srv.address}", token=token)


def denied(privilege: str, user: str, db: str = "default") -> Any:
    """pymilvus surfaces Milvus's gRPC PERMISSION_DENIED as the gRPC error itself for some
    calls and as a MilvusException for others (as against Milvus): either, with the text."""
    message = f"Privilege{privilege}: permission deny to {user} in the `{db}` database"
    return pytest.raises((MilvusException, grpc.RpcError), match=message)


def seed(root: MilvusClient) -> None:
    root.create_collection("docs", dimension=DIM, metric_type="L2")
    root.create_collection("other", dimension=DIM, metric_type="L2")
    rows = [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(10)]
    root.insert("docs", rows)
    root.insert("other", rows)
    root.create_user("alice", "alice-pass")
    root.create_user("bob", "bob-pass1")


def test_roles_grants_and_denials(auth_server: Server) -> None:
    root = client(auth_server, ROOT_TOKEN)
    seed(root)
    root.create_role("reader")
    root.create_role("writer")
    assert {"admin", "public", "reader", "writer"} <= set(root.list_roles())
    root.grant_privilege("reader", "Collection", "Search", "docs")
    root.grant_privilege("reader", "Collection", "Query", "docs")
    root.grant_role("alice", "reader")
    assert "reader" in root.describe_user("alice")["roles"]
    privileges = root.describe_role("reader")["privileges"]
    assert {(p["object_name"], p["privilege"]) for p in privileges} == {
        ("docs", "Search"), ("docs", "Query")}  # fmt: skip

    alice = client(auth_server, "alice:alice-pass")
    hits = alice.search("docs", data=[[1.0, 0.0, 0.0, 1.0]], limit=3)
    assert hits[0][0]["id"] == 1
    assert len(alice.query("docs", filter="id < 5")) == 5
    alice.describe_collection("docs")  # public: DescribeCollection
    with denied("Search", "alice"):  # another collection
        alice.search("other", data=[[1.0, 0.0, 0.0, 1.0]], limit=3)
    with denied("Insert", "alice"):  # write
        alice.insert("docs", [{"id": 99, "vector": [0.0] * DIM}])
    with denied("Delete", "alice"):
        alice.delete("docs", ids=[1])
    with denied("DropCollection", "alice"):  # drop
        alice.drop_collection("docs")
    with denied("ManageOwnership", "alice"):  # grant
        alice.grant_privilege("reader", "Collection", "Insert", "docs")
    with denied("CreateOwnership", "alice"):
        alice.create_role("mine")
    with denied("SelectOwnership", "alice"):
        alice.list_roles()
    assert root.query("docs", filter="id == 1")  # nothing of the denied calls happened

    # a v2 grant of a built-in group on every collection of the database
    root.grant_privilege_v2("writer", "CollectionReadWrite", "*", db_name="default")
    root.grant_role("bob", "writer")
    bob = client(auth_server, "bob:bob-pass1")
    bob.insert("other", [{"id": 50, "vector": [0.5] * DIM}])
    bob.delete("docs", ids=[9])
    assert not root.query("docs", filter="id == 9")
    with denied("DropCollection", "bob"):
        bob.drop_collection("other")
    with denied("CreateAlias", "bob"):  # CollectionAdmin only
        bob.create_alias("other", "o2")

    # revocations take effect; admin holds everything
    root.revoke_privilege("reader", "Collection", "Search", "docs")
    with denied("Search", "alice"):
        alice.search("docs", data=[[1.0, 0.0, 0.0, 1.0]], limit=3)
    root.grant_role("alice", "admin")
    alice.drop_collection("other")
    alice.create_role("mine")
    root.revoke_role("alice", "admin")
    with denied("DropCollection", "alice"):
        alice.drop_collection("docs")


def test_privilege_groups_and_role_rules(auth_server: Server) -> None:
    root = client(auth_server, ROOT_TOKEN)
    seed(root)
    root.create_privilege_group("peek")
    root.add_privileges_to_group("peek", ["Query", "GetStatistics"])
    groups = {g["privilege_group"]: g["privileges"] for g in root.list_privilege_groups()}
    assert sorted(groups["peek"]) == ["GetStatistics", "Query"]
    root.create_role("peeker")
    root.grant_privilege_v2("peeker", "peek", "docs", db_name="default")
    root.grant_role("alice", "peeker")
    alice = client(auth_server, "alice:alice-pass")
    assert len(alice.query("docs", filter="id < 3")) == 3
    with denied("Search", "alice"):
        alice.search("docs", data=[[1.0, 0.0, 0.0, 1.0]], limit=1)
    root.remove_privileges_from_group("peek", ["Query"])
    with denied("Query", "alice"):
        alice.query("docs", filter="id < 3")
    with pytest.raises(MilvusException, match="is used by role peeker"):
        root.drop_privilege_group("peek")
    with pytest.raises(MilvusException, match="privilege name \\[Nope\\] is not defined"):
        root.add_privileges_to_group("peek", ["Nope"])
    with pytest.raises(MilvusException, match="already exists"):
        root.create_role("peeker")
    with pytest.raises(MilvusException, match="default role, which can't be dropped"):
        root.drop_role("admin")
    with pytest.raises(MilvusException, match="it has privileges"):
        root.drop_role("peeker")
    root.drop_role("peeker", force_drop=True)
    assert "peeker" not in root.list_roles()
    assert "peeker" not in root.describe_user("alice")["roles"]
    with pytest.raises(MilvusException, match="role not found"):
        root.grant_role("alice", "ghost")
    with pytest.raises(MilvusException, match="user not found"):
        root.grant_role("ghost", "admin")
    alice.update_password("alice", "alice-pass", "alice-pass2")  # one's own password
    assert client(auth_server, "alice:alice-pass2").describe_user("alice")["user_name"] == "alice"


def test_a_privilege_counts_under_its_own_object_type_only(auth_server: Server) -> None:
    root = client(auth_server, ROOT_TOKEN)
    seed(root)
    root.create_role("typed")
    root.grant_role("alice", "typed")
    alice = client(auth_server, "alice:alice-pass")
    # v1 grants: a privilege only under its object type, groups only through v2 (Milvus)
    with pytest.raises(MilvusException, match="not found the privilege name\\[Search\\] in "
                                              "object\\[Global\\]"):  # fmt: skip
        root.grant_privilege("typed", "Global", "Search", "*")
    with pytest.raises(MilvusException, match="not found the privilege name\\[CreateCollection"
                                              "\\] in object\\[Collection\\]"):  # fmt: skip
        root.grant_privilege("typed", "Collection", "CreateCollection", "*")
    with pytest.raises(MilvusException, match="can not operate the built-in privilege group "
                                              "\\[CollectionReadOnly\\]"):  # fmt: skip
        root.grant_privilege("typed", "Collection", "CollectionReadOnly", "*")
    assert root.describe_role("typed")["privileges"] == []  # nothing granted
    with denied("Search", "alice"):
        alice.search("docs", data=[[1.0, 0.0, 0.0, 1.0]], limit=1)
    # "All" granted on collections covers collection privileges, not global ones
    root.grant_privilege("typed", "Collection", "All", "docs")
    assert alice.search("docs", data=[[1.0, 0.0, 0.0, 1.0]], limit=1)[0][0]["id"] == 1
    with denied("CreateCollection", "alice"):
        alice.create_collection("mine", dimension=DIM)
    # a v2 grant takes the privilege's own type: DescribeAlias is a Global privilege
    root.create_alias("docs", "docs_alias")
    root.grant_privilege_v2("typed", "ListAliases", "*", db_name="default")
    assert "docs_alias" in alice.list_aliases("docs")["aliases"]
    kinds = {(p["object_type"], p["privilege"]) for p in root.describe_role("typed")["privileges"]}
    assert kinds == {("Collection", "All"), ("Global", "ListAliases")}


def test_grants_survive_a_restart(tmp_path: Path, fast: dict[str, Any]) -> None:
    data = str(tmp_path / "d")
    srv = start_server(data, ServerOptions(port=0, auth=True), **fast)
    try:
        root = client(srv, ROOT_TOKEN)
        seed(root)
        root.create_role("reader")
        root.grant_privilege("reader", "Collection", "Query", "docs")
        root.grant_role("alice", "reader")
    finally:
        srv.stop(grace=1)
    srv = start_server(data, ServerOptions(port=0, auth=True), **fast)
    try:
        alice = client(srv, "alice:alice-pass")
        assert len(alice.query("docs", filter="id < 4")) == 4
        with denied("Insert", "alice"):
            alice.insert("docs", [{"id": 77, "vector": [0.0] * DIM}])
    finally:
        srv.stop(grace=1)


def _stub(srv: Server, user: str, password: str) -> Any:
    """A raw MilvusService stub (pymilvus's MilvusClient has no backup_rbac/restore_rbac)
    with the ``authorization`` metadata pymilvus sends."""
    import base64

    from pymilvus.grpc_gen import milvus_pb2_grpc

    channel = grpc.insecure_channel(srv.address)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return milvus_pb2_grpc.MilvusServiceStub(channel), [("authorization", token)]


def test_backup_rbac_restores_on_another_server(tmp_path: Path, fast: dict[str, Any]) -> None:
    from pymilvus.grpc_gen import milvus_pb2

    src = start_server(str(tmp_path / "a"), ServerOptions(port=0, auth=True), **fast)
    try:
        root = client(src, ROOT_TOKEN)
        seed(root)
        root.create_role("reader")
        root.create_privilege_group("peek")
        root.add_privileges_to_group("peek", ["Query", "Search"])
        root.grant_privilege_v2("reader", "peek", "docs")
        root.grant_role("alice", "reader")
        stub, md = _stub(src, "alice", "alice-pass")
        with pytest.raises(grpc.RpcError, match="PrivilegeBackupRBAC: permission deny"):
            stub.BackupRBAC(milvus_pb2.BackupRBACMetaRequest(), metadata=md)
        stub, md = _stub(src, "root", "Milvus")
        got = stub.BackupRBAC(milvus_pb2.BackupRBACMetaRequest(), metadata=md)
        assert got.status.code == 0, got.status
        meta = got.RBAC_meta
    finally:
        src.stop(grace=1)
    assert sorted(u.user for u in meta.users) == ["alice", "bob"]  # root is the server's own
    assert "alice-pass" not in str(meta)  # a salted hash travels, never the password
    assert [r.name for r in meta.roles] == ["reader"]
    assert [(g.group_name, sorted(p.name for p in g.privileges))
            for g in meta.privilege_groups] == [("peek", ["Query", "Search"])]  # fmt: skip

    dst = start_server(str(tmp_path / "b"), ServerOptions(port=0, auth=True), **fast)
    try:
        root = client(dst, ROOT_TOKEN)
        root.create_collection("docs", dimension=DIM, metric_type="L2")
        root.insert("docs", [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(10)])
        stub, md = _stub(dst, "root", "Milvus")
        req = milvus_pb2.RestoreRBACMetaRequest(RBAC_meta=meta)
        assert stub.RestoreRBAC(req, metadata=md).code == 0
        alice = client(dst, "alice:alice-pass")  # her password, from the stored record
        assert len(alice.query("docs", filter="id < 4")) == 4  # through the restored group
        with denied("Insert", "alice"):
            alice.insert("docs", [{"id": 77, "vector": [0.0] * DIM}])
        assert root.describe_role("reader")["privileges"]
        root.drop_user("bob")  # a second restore: the role exists, so nothing is written
        status = stub.RestoreRBAC(req, metadata=md)
        assert status.code != 0 and "role [reader] already exists" in status.reason
        assert "bob" not in root.list_users()
        bad = milvus_pb2.RestoreRBACMetaRequest()
        bad.RBAC_meta.users.add(user="carol", password="not-a-record")
        status = stub.RestoreRBAC(bad, metadata=md)
        assert status.code != 0 and "carol" in status.reason
        assert "carol" not in root.list_users()
        odd = milvus_pb2.RestoreRBACMetaRequest()
        odd.RBAC_meta.users.add(user="9 lives", password=meta.users[0].password)
        status = stub.RestoreRBAC(odd, metadata=md)
        assert status.code != 0 and "invalid username" in status.reason
    finally:
        dst.stop(grace=1)
