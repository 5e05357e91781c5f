"""Prometheus ``/metrics``, ``GetComponentStates`` and ``GetMetrics`` of ``gpuvec serve``.

A real ``gpuvec serve`` subprocess is driven by unmodified pymilvus and its ``/metrics`` is
scraped and parsed with ``prometheus_client``'s own parser: every request is counted once,
by the Milvus RPC name, and the row and segment figures match what was done. The
in-process server (same registry as the test) checks that a request through the servicer
is not counted a second time by the client it calls, and that a taken metrics port never
stops the server.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pymilvus import MilvusClient as PyMilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc
from serve_process import free_port, spawn_serve  # type: ignore[import-not-found]

from gpuvec.config import Config
from gpuvec.server.app import Server, ServerOptions, start_server

DIM = 8
FAST = Config(dashboard_address="", datanode_processes=False, index_min_rows=256)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def open_server(data: Path, **opts: int) -> Server:
    return start_server(str(data), ServerOptions(port=0, **opts), config=FAST)


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``: (name, labels without node_id) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "node_id")
            out[(s.name, labels)] = out.get((s.name, labels), 0.0) + s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over the samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lb), v in samples.items() if n == name and want <= lb)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A ``gpuvec serve`` subprocess with /metrics: (gRPC address, metrics port)."""
    tmp = tmp_path_factory.mktemp("metrics")
    metrics_port = free_port()
    proc, port = spawn_serve(tmp / "data", tmp / "serve.log", "--metrics-port", str(metrics_port))
    try:
        yield f"127.0.0.1:{port}", metrics_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
            proc.wait(timeout=10)


def test_requests_rows_and_segments_are_counted(served: tuple[str, int]) -> None:
    address, mport = served
    client = PyMilvusClient(uri=f"http://{address}", timeout=30)
    try:
        client.create_collection("metered", dimension=DIM)
        client.insert("metered", [{"id": -1, "vector": [0.5] * DIM}])  # pymilvus caches schema
        before = scrape(mport)
        rng = np.random.default_rng(1)
        inserts, searches, queries, rows = 3, 4, 2, 0
        for i in range(inserts):
            batch = [{"id": i * 100 + j, "vector": rng.random(DIM).tolist()} for j in range(20)]
            client.insert("metered", batch)
            rows += len(batch)
        for _ in range(searches):
            client.search("metered", rng.random((2, DIM)).tolist(), limit=3)
        for _ in range(queries):
            client.query("metered", filter="id < 50", output_fields=["id"])
        client.flush("metered")
        after = scrape(mport)
    finally:
        client.close()

    for rpc, calls in (("Insert", inserts), ("Search", searches), ("Query", queries)):
        counted = "gpuvec_proxy_req_count_total"
        ok = {"function_name": rpc, "status": "success"}
        assert value(after, counted, **ok) - value(before, counted, **ok) == calls, rpc
        observed = "gpuvec_proxy_req_latency_seconds_count"
        fn = {"function_name": rpc}
        assert value(after, observed, **fn) - value(before, observed, **fn) == calls, rpc
        per = "gpuvec_proxy_collection_req_count_total"
        coll = {"function_name": rpc, "collection_name": "metered"}
        assert value(after, per, **coll) - value(before, per, **coll) == calls, rpc
        inf = {"function_name": rpc, "le": "+Inf"}
        bucket = "gpuvec_proxy_req_latency_seconds_bucket"
        assert value(after, bucket, **inf) == value(after, observed, **fn)

    inserted = "gpuvec_proxy_insert_vectors_count_total"
    assert value(after, inserted, collection_name="metered") == rows + 1
    nq = "gpuvec_proxy_search_vectors_count_total"
    assert value(after, nq, collection_name="metered") == 2 * searches
    sealed = total(after, "gpuvec_querynode_segment_num", collection_name="metered",
                   segment_state="sealed")  # fmt: skip
    assert sealed > 0
    assert total(after, "gpuvec_querynode_segment_num", collection_name="metered",
                 segment_state="growing") == 0  # fmt: skip
    assert total(after, "gpuvec_querynode_entity_num", collection_name="metered") == rows + 1
    assert total(after, "gpuvec_querynode_segment_bytes", collection_name="metered") > 0
    assert total(after, "gpuvec_querynode_segment_num", device="gpu") == 0  # no GPU here
    assert value(after, "gpuvec_streaming_wal_append_latency_seconds_count", wal_type="local") > (
        value(before, "gpuvec_streaming_wal_append_latency_seconds_count", wal_type="local")
    )


def test_component_states_and_system_info(served: tuple[str, int]) -> None:
    address, _ = served
    client = PyMilvusClient(uri=f"http://{address}", timeout=30)
    try:
        client.create_collection("described", dimension=DIM)
        client.insert("described", [{"id": i, "vector": [float(i)] * DIM} for i in range(7)])
    finally:
        client.close()
    with grpc.insecure_channel(address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        states = stub.GetComponentStates(milvus_pb2.GetComponentStatesRequest(), timeout=30)
        assert states.status.code == 0
        assert states.state.role == "Proxy"
        assert states.state.state_code == common_pb2.Healthy
        roles = {c.role for c in states.subcomponent_states}
        assert {"MixCoord", "QueryNode", "StreamingNode", "DataNode"} <= roles
        assert all(c.state_code == common_pb2.Healthy for c in states.subcomponent_states)

        req = milvus_pb2.GetMetricsRequest(request=json.dumps({"metric_type": "system_info"}))
        resp = stub.GetMetrics(req, timeout=30)
        assert resp.status.code == 0, resp.status.reason
        info = json.loads(resp.response)
        node = info["nodes_info"][0]
        assert node["infos"]["type"] == "proxy" and not node["infos"]["has_error"]
        assert node["infos"]["system_info"]["deploy_mode"] == "STANDALONE"
        assert node["infos"]["hardware_infos"]["cpu_core_count"] >= 1
        colls = {c["name"]: c for c in info["collections"]}
        assert colls["described"]["row_count"] == 7
        assert colls["described"]["db_name"] == "default"
        assert info["requests"]["Insert"]["success"] >= 1

        for bad in ('{"metric_type": "system_statistics"}', "not json", "[]"):
            resp = stub.GetMetrics(milvus_pb2.GetMetricsRequest(request=bad), timeout=30)
            assert resp.status.code == 1100, bad
            assert "metric_type" in resp.status.reason or "JSON" in resp.status.reason


def _counted(rpc: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "gpuvec_proxy_req_count_total",
            {"node_id": _node_id(), "function_name": rpc, "status": "success"},
        )
        or 0.0
    )


def _node_id() -> str:
    from gpuvec.observability.metrics import NODE_ID

    return NODE_ID


def test_a_served_request_is_counted_once(tmp_path: Path) -> None:
    """The servicer calls gpuvec.MilvusClient, which counts its own calls: one RPC must
    still be one request (the rpc wrapper marks the context)."""
    srv: Server = open_server(tmp_path / "data")
    client = PyMilvusClient(uri=f"http://{srv.address}", timeout=30)
    try:
        client.create_collection("once", dimension=DIM)
        client.insert("once", [{"id": 1, "vector": [1.0] * DIM}])
        before = {rpc: _counted(rpc) for rpc in ("Search", "Query", "Insert", "Delete")}
        client.search("once", [[1.0] * DIM], limit=1)
        client.query("once", filter="id >= 0")
        client.get("once", ids=[1])  # pymilvus sends a Query RPC
        client.insert("once", [{"id": 2, "vector": [2.0] * DIM}])
        client.delete("once", ids=[2])
        after = {rpc: _counted(rpc) for rpc in before}
    finally:
        client.close()
        srv.stop(grace=1)
    assert {rpc: after[rpc] - before[rpc] for rpc in before} == {
        "Search": 1, "Query": 2, "Insert": 1, "Delete": 1,
    }  # fmt: skip


def test_a_taken_metrics_port_does_not_stop_the_server(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        srv = open_server(tmp_path / "data", metrics_port=taken)
        try:
            assert srv.metrics is None
            client = PyMilvusClient(uri=f"http://{srv.address}", timeout=30)
            try:
                assert client.list_collections() == []
            finally:
                client.close()
        finally:
            srv.stop(grace=1)


def test_in_process_server_serves_metrics_and_stops_them(tmp_path: Path) -> None:
    port = free_port()
    srv = open_server(tmp_path / "data", metrics_port=port)
    try:
        assert srv.metrics is not None and srv.metrics.port == port
        families = {f.name for f in text_string_to_metric_families(_get(port))}
        assert {"gpuvec_proxy_req_count", "gpuvec_querynode_segment_num"} <= families
    finally:
        srv.stop(grace=1)
    with pytest.raises(OSError):
        _get(port)


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()
