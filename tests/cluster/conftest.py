"""Fixtures for the cluster tests: one real local cluster per session — etcd and Kafka
(the ones ``make test`` starts), a Dask scheduler and data-node worker, two coordinators,
two streaming nodes, two query nodes and a proxy, each its own process, started by
:class:`gpuvec.cluster.launcher.LocalCluster` — and unmodified pymilvus clients of its
proxy. Each test starts from an empty cluster: the ``milvus`` fixture drops every
collection, alias and database the previous test left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient

from gpuvec.cluster.launcher import LocalCluster
from gpuvec.config import Config

pytestmark = [pytest.mark.etcd, pytest.mark.kafka]

ENGINE = {"index_min_rows": 256, "compaction_interval_s": 3600.0, "compaction_retention_s": 1.0}


@pytest.fixture(scope="session")
def cluster(
    etcd_endpoint: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    c = LocalCluster(
        tmp_path_factory.mktemp("cluster"),
        query_nodes=2,
        streaming_nodes=2,
        data_nodes=1,
        coordinators=2,
        port=0,
        etcd=etcd_endpoint,
        kafka=kafka_bootstrap,
        engine=ENGINE,
        progress=lambda msg: print(f"[cluster] {msg}", flush=True),
    )
    try:
        c.up(timeout=240)
    except Exception:
        c.down()
        raise
    try:
        yield c
    finally:
        c.down()


class _Endpoint:
    def __init__(self, address: str) -> None:
        self.address = address


def wipe(uri: str) -> None:
    """Drop every alias, collection and non-default database."""
    c = MilvusClient(uri=uri, timeout=60)
    try:
        for db in c.list_databases():
            c.use_database(db)
            for name in c.list_collections():
                for alias in c.list_aliases(collection_name=name)["aliases"]:
                    c.drop_alias(alias)
                c.drop_collection(name)
            if db != "default":
                c.drop_database(db)
    finally:
        c.close()


@pytest.fixture
def server(cluster: LocalCluster) -> _Endpoint:
    """The proxy's address, as the server tests' ``server.address`` (cluster emptied)."""
    wipe(cluster.uri)
    return _Endpoint(cluster.uri.removeprefix("http://"))


@pytest.fixture
def milvus(cluster: LocalCluster, server: _Endpoint) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=cluster.uri, timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fast() -> dict[str, Any]:
    """Keyword arguments of the embedded client the congruence test compares with."""
    return {"config": Config(dashboard_address="", datanode_processes=False, index_min_rows=256)}


def pid_index(cluster: LocalCluster, role: str, pid: int) -> int:
    for i, p in enumerate(cluster.processes.get(role, [])):
        if p["pid"] == pid:
            return i
    raise AssertionError(f"no {role} with pid {pid} in {cluster.processes.get(role)}")


def leader(cluster: LocalCluster) -> dict[str, Any]:
    from gpuvec.cluster.settings import ClusterSettings

    meta = ClusterSettings.load(cluster.config_path).open_meta()
    try:
        kv = meta.get("election/coordinator")
        return json.loads(kv.value) if kv else {}
    finally:
        meta.close()


def log_tails(cluster: LocalCluster) -> str:
    out = []
    for path in sorted(Path(cluster.log_dir).glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()[-15:]
        out.append(f"== {path.name}\n" + "\n".join(lines))
    return "\n".join(out)
