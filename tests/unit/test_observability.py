"""gpuvec's Prometheus metrics in process: the embedded client counts each public call once
(nested calls and calls inside a counted request are not counted again), writes count
their rows, the scrape-time collector reports the live engines' segments, background task
tracking keeps its queue gauge right, and the ``/metrics`` endpoint never stops a process
(a taken port is a warning). Also: the cluster roles accept ``--metrics-port`` and start
the endpoint (with stand-in nodes: no etcd, Kafka or cluster)."""

from __future__ import annotations

import argparse
import socket
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import CollectionNotFoundError
from gpuvec.observability import engines, internals
from gpuvec.observability.collector import EngineCollector, register_collector
from gpuvec.observability.exporter import default_metrics_port, start_metrics_server
from gpuvec.observability.metrics import NODE_ID, observe_write, request_scope

DIM = 4


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"node_id": NODE_ID, **labels}) or 0.0


def calls(rpc: str, status: str = "success") -> float:
    return sample("gpuvec_proxy_req_count_total", function_name=rpc, status=status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MilvusClient]:
    cfg = Config(dashboard_address="", datanode_processes=False, index_min_rows=1 << 30)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    c.create_collection("c", dimension=DIM, metric_type="L2")
    try:
        yield c
    finally:
        c.close()


def test_each_public_call_is_counted_once(client: MilvusClient) -> None:
    rpcs = ("Insert", "Upsert", "Delete", "Query", "Search", "Flush")
    before = {r: calls(r) for r in rpcs}
    client.insert("c", [{"id": i, "vector": [float(i)] * DIM} for i in range(5)])
    client.upsert("c", [{"id": 1, "vector": [9.0] * DIM}])
    client.delete("c", ids=[4])
    client.get("c", ids=[1])
    client.query("c", filter="id >= 0")
    client.search("c", [[0.0] * DIM, [1.0] * DIM], limit=2)
    client.flush("c")
    got = {r: calls(r) - before[r] for r in rpcs}
    assert got == {"Insert": 1, "Upsert": 1, "Delete": 1, "Query": 2, "Search": 1, "Flush": 1}
    assert sample("gpuvec_proxy_req_latency_seconds_count", function_name="Search") >= 1
    per = sample("gpuvec_proxy_collection_req_count_total", function_name="Search",
                 collection_name="c")  # fmt: skip
    assert per >= 1


def test_a_failed_call_is_counted_as_failed_and_still_raises(client: MilvusClient) -> None:
    before_fail, before_ok = calls("Search", "fail"), calls("Search")
    with pytest.raises(CollectionNotFoundError):
        client.search("missing", [[0.0] * DIM], limit=1)
    assert calls("Search", "fail") == before_fail + 1
    assert calls("Search") == before_ok
    # a failure names no collection: no series for a name that does not exist
    assert sample("gpuvec_proxy_collection_req_count_total", function_name="Search",
                  collection_name="missing") == 0  # fmt: skip


def test_calls_inside_a_counted_request_are_not_counted_again(client: MilvusClient) -> None:
    before = calls("Search")
    with request_scope():  # what the gRPC rpc wrapper does around a handler
        client.search("c", [[0.0] * DIM], limit=1)
    assert calls("Search") == before


def test_writes_count_rows_by_collection(client: MilvusClient) -> None:
    def rows(kind: str) -> float:
        return sample(f"gpuvec_proxy_{kind}_vectors_count_total", collection_name="c")

    ins, ups, dels = rows("insert"), rows("upsert"), rows("delete")
    client.insert("c", [{"id": i, "vector": [1.0] * DIM} for i in range(10)])
    client.upsert("c", [{"id": i, "vector": [2.0] * DIM} for i in range(3)])
    client.delete("c", ids=[7, 8])
    assert (rows("insert") - ins, rows("upsert") - ups, rows("delete") - dels) == (10, 3, 2)
    observe_write("c", 0, 0)  # an empty write counts nothing
    assert rows("delete") - dels == 2


def _gauges() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in EngineCollector().collect():
        for s in family.samples:
            if s.labels.get("node_id") == NODE_ID:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _segments(state: str, collection: str = "c") -> float:
    return sum(v for (name, labels), v in _gauges().items()
               if name == "gpuvec_querynode_segment_num"
               and ("segment_state", state) in labels
               and ("collection_name", collection) in labels)  # fmt: skip


def test_collector_reads_live_engines_at_scrape_time(client: MilvusClient) -> None:
    engine = client._engine
    assert engine in engines.live()
    client.insert("c", [{"id": i, "vector": [float(i)] * DIM} for i in range(6)])
    assert _segments("growing") == 1 and _segments("sealed") == 0
    client.flush("c")
    assert _segments("growing") == 0 and _segments("sealed") == 1
    entity = "gpuvec_querynode_entity_num"
    rows = sum(v for (name, lb), v in _gauges().items()
               if name == entity and ("collection_name", "c") in lb)  # fmt: skip
    assert rows == 6
    client.close()
    assert engine not in engines.live()


def test_collector_describes_every_family_and_registers_once() -> None:
    assert register_collector() is register_collector()
    names = {f.name for f in EngineCollector().describe()}
    assert {"gpuvec_querynode_segment_num", "gpuvec_querynode_gpu_memory_budget_bytes",
            "gpuvec_querynode_consumer_lag", "gpuvec_gpu_memory_total_bytes"} <= names  # fmt: skip
    # without a GPU the device families have no samples (absent, not 0)
    from gpuvec.ops.backend import resolved_gpu

    if not resolved_gpu():
        assert not [k for k in _gauges() if k[0] == "gpuvec_gpu_memory_total_bytes"]


def test_index_build_and_compaction_tracking() -> None:
    queue = "gpuvec_datacoord_index_task_num"
    built = "gpuvec_datacoord_index_build_latency_seconds_count"
    q0 = sample(queue)
    ok0 = sample(built, index_type="HNSW", status="success")
    fail0 = sample(built, index_type="HNSW", status="fail")
    good, bad = Future(), Future()
    internals.track_index_build(good, "HNSW")
    internals.track_index_build(bad, "HNSW")
    assert sample(queue) == q0 + 2
    good.set_result({"path": "x"})
    bad.set_exception(RuntimeError("build failed"))
    assert sample(queue) == q0
    assert sample(built, index_type="HNSW", status="success") == ok0 + 1
    assert sample(built, index_type="HNSW", status="fail") == fail0 + 1

    running = "gpuvec_datacoord_compaction_task_num"
    c0, done0 = sample(running), sample("gpuvec_datacoord_compaction_latency_seconds_count",
                                        status="success")  # fmt: skip
    fut: Future[Any] = Future()
    internals.track_compaction(fut)
    assert sample(running) == c0 + 1
    fut.set_result({})
    assert sample(running) == c0
    assert sample("gpuvec_datacoord_compaction_latency_seconds_count", status="success") == (
        done0 + 1
    )


def test_metrics_endpoint_off_taken_and_served(monkeypatch: pytest.MonkeyPatch) -> None:
    assert start_metrics_server(0) is None
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert start_metrics_server(held.getsockname()[1]) is None  # warned, not raised
    srv = start_metrics_server(free_port())
    assert srv is not None
    try:
        with urllib.request.urlopen(srv.url, timeout=5) as resp:
            names = {f.name for f in text_string_to_metric_families(resp.read().decode())}
        assert {"gpuvec_proxy_req_count", "gpuvec_streaming_wal_append_latency_seconds",
                "gpuvec_querynode_segment_num"} <= names  # fmt: skip
    finally:
        srv.stop()
    monkeypatch.setenv("GPUVEC_METRICS_PORT", "0")
    assert default_metrics_port() == 0
    monkeypatch.setenv("GPUVEC_METRICS_PORT", "not-a-port")
    assert default_metrics_port() == 9091
    monkeypatch.delenv("GPUVEC_METRICS_PORT")
    assert default_metrics_port() == 9091


def _parser() -> argparse.ArgumentParser:
    from gpuvec.cluster import roles_cli

    parser = argparse.ArgumentParser(prog="gpuvec")
    roles_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("role", ["coordinator", "streamingnode", "querynode", "proxy"])
def test_roles_accept_metrics_port(role: str) -> None:
    args = _parser().parse_args([role, "--metrics-port", "19999"])
    assert args.metrics_port == 19999
    assert _parser().parse_args([role]).metrics_port == default_metrics_port()


class _StandInNode:
    """A query node stand-in: scrapes its process's /metrics when closed."""

    scraped: str = ""
    url: str = ""

    def __init__(self, settings: Any, host: str, port: int, advertise: Any) -> None:
        self.node_id, self.address = "querynode-test", f"{host}:{port}"
        self.stop_event = threading.Event()
        self.stop_event.set()  # leave at once, as after a lost session

    def close(self) -> None:
        with urllib.request.urlopen(type(self).url, timeout=5) as resp:
            type(self).scraped = resp.read().decode()


def test_role_process_starts_its_metrics_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuvec.cluster import querynode, roles_cli, settings

    port = free_port()
    _StandInNode.url = f"http://127.0.0.1:{port}/metrics"
    monkeypatch.setattr(settings.ClusterSettings, "load", staticmethod(lambda path: None))
    monkeypatch.setattr(querynode, "QueryNodeProcess", _StandInNode)
    monkeypatch.setattr(roles_cli, "_wait_for_signal", lambda stop: None)
    args = _parser().parse_args(["querynode", "--metrics-port", str(port)])
    assert roles_cli.run(args) == 1  # the stand-in "lost its session"
    assert "gpuvec_proxy_req_count" in _StandInNode.scraped


class _Seg:
    def __init__(self, n: int, on_device: bool = False) -> None:
        self.n, self.on_device = n, on_device

    def nbytes(self) -> int:
        return self.n * 10


def _node_gauges(node: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    engines.register_node(node)
    try:
        return {k: v for k, v in _gauges().items() if "gpu_memory" not in k[0]}
    finally:
        engines.unregister_node(node)


def _segment_nums(got: dict[Any, float]) -> dict[tuple[str, str], float]:
    return {(dict(lb)["segment_state"], dict(lb)["device"]): v for (n, lb), v in got.items()
            if n == "gpuvec_querynode_segment_num"}  # fmt: skip


class _Node:
    """A weakly referenceable stand-in for a cluster role object."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def test_collector_reads_cluster_streaming_and_query_nodes() -> None:
    """Stand-ins with the attributes the cluster role objects have (no cluster needed)."""
    from types import SimpleNamespace as NS

    meta = NS(name="shop.items", id=7)
    shard = NS(channel="c7_dml_0", meta=meta, growing={1: _Seg(5), 2: _Seg(0)})
    streaming = _Node(shards={"c7_dml_0": shard}, handoff={"c7_dml_0": {9: _Seg(4)}})
    got = _node_gauges(streaming)
    # the empty growing segment is skipped; a handed-off segment is sealed on the host
    assert _segment_nums(got) == {("growing", "host"): 1, ("sealed", "host"): 1}
    colls = {dict(lb)["collection_name"] for (n, lb) in got if n.endswith("segment_num")}
    assert colls == {"shop.items"}

    class _Query:
        residency = NS(used=0)

        @staticmethod
        def held() -> dict[int, list[_Seg]]:
            return {7: [_Seg(3, on_device=True), _Seg(2)], 8: [_Seg(1)]}  # 8: no meta yet

    tail = NS(reader=NS(cached_lag=lambda: 4))
    query = _Node(metas={7: meta}, query=_Query(), tails={"c7_dml_0": tail})
    got = _node_gauges(query)
    assert _segment_nums(got) == {("sealed", "gpu"): 1, ("sealed", "host"): 1}
    lag = {dict(lb)["channel"]: v for (n, lb), v in got.items()
           if n == "gpuvec_querynode_consumer_lag"}  # fmt: skip
    assert lag == {"c7_dml_0": 4}


def test_system_info_components_of_a_cluster_proxy() -> None:
    from types import SimpleNamespace as NS

    from gpuvec.observability.system_info import components, is_cluster

    kvs = [NS(key="cluster/sessions/querynode/querynode-ab12"),
           NS(key="cluster/sessions/streamingnode/streamingnode-cd34")]  # fmt: skip
    proxy_engine = NS(kind="cluster", meta=NS(range=lambda prefix: (kvs, 1)))
    assert is_cluster(proxy_engine)
    got = components(proxy_engine, [])
    assert [(c["role"], c["node_id"], c["healthy"]) for c in got] == [
        ("Proxy", got[0]["node_id"], True),
        ("querynode", "querynode-ab12", True),
        ("streamingnode", "streamingnode-cd34", True),
    ]
    sick = components(NS(collections={}), ["coordinator: lease lost"])
    assert not sick[0]["healthy"]
    assert [c["role"] for c in sick if not c["healthy"]] == ["Proxy", "MixCoord"]
