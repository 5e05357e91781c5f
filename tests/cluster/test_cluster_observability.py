"""Observability of the real local cluster: every gpuvec role process serves Prometheus
``/metrics`` with gpuvec's metric families, the proxy counts the requests it answered, and
the Dask scheduler's dashboard serves gpuvec's page (its ``--preload``)."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymilvus import MilvusClient

from gpuvec.cluster.launcher import LocalCluster

pytestmark = [pytest.mark.etcd, pytest.mark.kafka]
ROLES = ("coordinator", "streamingnode", "querynode", "proxy")


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as res:
        text = res.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_every_role_serves_gpuvec_metrics(cluster: LocalCluster, milvus: MilvusClient) -> None:
    procs = cluster.processes
    for role in ROLES:
        assert procs.get(role), f"no {role} process"
        for p in procs[role]:
            assert p.get("metrics_port"), f"{role} {p} was started without a metrics port"
            families = scrape(int(p["metrics_port"]))
            assert any(name.startswith("gpuvec_") for name in families), (role, families.keys())

    milvus.create_collection("obs", dimension=4, consistency_level="Strong")
    vec = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    milvus.insert("obs", [{"id": i, "vector": vec[i]} for i in range(20)])
    for i in range(3):
        milvus.search("obs", data=[vec[i].tolist()], limit=1)
    searches = 0.0
    for p in procs["proxy"]:
        samples = scrape(int(p["metrics_port"])).get("gpuvec_proxy_req_count", [])
        searches += sum(
            s.value
            for s in samples
            if s.labels.get("function_name") == "Search" and s.labels.get("status") == "success"
        )
    assert searches >= 3, "the proxy must count the searches it answered"


def test_the_scheduler_dashboard_serves_the_gpuvec_page(cluster: LocalCluster) -> None:
    with urllib.request.urlopen(cluster.dashboard, timeout=30) as res:
        assert res.status == 200
        page = res.read().decode(errors="replace")
    assert "gpuvec" in page.lower()
