"""RBAC on the cluster: a second proxy started with ``--auth`` next to the cluster's own
serves the same etcd catalog and enforces roles and grants kept in etcd — a reader can
search but not write, drop or grant, and a grant made through one proxy call is seen by
the next. Unmodified pymilvus over the socket."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from gpuvec.cluster.launcher import LocalCluster, free_port, port_open

pytestmark = [pytest.mark.etcd, pytest.mark.kafka]
DIM = 4


@pytest.fixture
def auth_proxy(cluster: LocalCluster) -> Iterator[str]:
    port = free_port()
    log = cluster.directory / f"proxy-auth-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpuvec", "proxy", "--config", str(cluster.config_path),
             "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0", "--auth"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the --auth proxy did not open its port"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_roles_and_grants_are_enforced_by_an_auth_proxy(
    auth_proxy: str, milvus: MilvusClient
) -> None:
    root = MilvusClient(uri=auth_proxy, token="root:Milvus")
    with pytest.raises(MilvusException):  # authentication is required there
        MilvusClient(uri=auth_proxy, token="root:wrong").list_collections()
    root.create_collection("rb", dimension=DIM, metric_type="L2", consistency_level="Strong")
    root.insert("rb", [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(8)])
    for user in [u for u in root.list_users() if u != "root"]:
        root.drop_user(user)
    for role in [r for r in root.list_roles() if r not in ("admin", "public")]:
        root.drop_role(role, force_drop=True)
    root.create_user("carol", "carol-pass")
    root.create_role("searcher")
    root.grant_privilege_v2("searcher", "Search", "rb", db_name="default")
    root.grant_role("carol", "searcher")
    carol = MilvusClient(uri=auth_proxy, token="carol:carol-pass")
    hits = carol.search("rb", data=[[3.0, 0.0, 0.0, 1.0]], limit=1)
    assert hits[0][0]["id"] == 3
    message = "permission deny to carol in the `default` database"
    for call in (
        lambda: carol.insert("rb", [{"id": 99, "vector": [0.0] * DIM}]),
        lambda: carol.drop_collection("rb"),
        lambda: carol.grant_role("carol", "admin"),
        lambda: carol.query("rb", filter="id > 0"),
    ):
        with pytest.raises((MilvusException, grpc.RpcError), match=message):
            call()
    assert milvus.query("rb", filter="id == 99") == []  # the plain proxy sees the same data
    root.revoke_privilege_v2("searcher", "Search", "rb", db_name="default")
    with pytest.raises((MilvusException, grpc.RpcError), match="PrivilegeSearch"):
        carol.search("rb", data=[[3.0, 0.0, 0.0, 1.0]], limit=1)
