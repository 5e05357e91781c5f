"""Node reports for the cluster dashboard page: what a query node, streaming node and proxy
write under ``cluster/reports/``, and how the page's snapshot reads them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import Counter, Histogram

from gpuvec.observability import reports
from gpuvec.observability.snapshot import RequestMeter, snapshot
from gpuvec.storage.meta.sqlite import SqliteMetaStore


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[SqliteMetaStore]:
    m = SqliteMetaStore(tmp_path / "m.db")
    yield m
    m.close()


def _seg(sid: int, n: int, on_device: bool = False) -> SimpleNamespace:
    return SimpleNamespace(segment_id=sid, n=n, on_device=on_device, indexes={"v": 1},
                           nbytes=lambda: n * 16, device_bytes=lambda: n * 20)  # fmt: skip


def query_node() -> SimpleNamespace:
    query = SimpleNamespace(held=lambda: {7: [_seg(70, 100, True), _seg(71, 50)]},
                            residency=SimpleNamespace(used=2000, budget=10_000))  # fmt: skip
    tail = SimpleNamespace(reader=SimpleNamespace(cached_lag=lambda: 3))
    return SimpleNamespace(role="querynode", node_id="qn-1", address="127.0.0.1:1",
                           metas={7: SimpleNamespace(name="docs")}, query=query,
                           tails={"c7_dml_0": tail})  # fmt: skip


def streaming_node() -> SimpleNamespace:
    shard = SimpleNamespace(meta=SimpleNamespace(name="docs"), next_position=40, checkpoint=10,
                            growing={1: _seg(80, 30), 2: _seg(81, 0)})  # fmt: skip
    return SimpleNamespace(role="streamingnode", node_id="sn-1", address="127.0.0.1:2",
                           shards={"c7_dml_0": shard}, handoff={"c7_dml_0": {}})  # fmt: skip


def test_build_report_of_each_role() -> None:
    qn = reports.build_report(query_node())
    assert qn["role"] == "querynode" and qn["node_id"] == "qn-1"
    assert [(s["segment"], s["device"], s["bytes"]) for s in qn["segments"]] == [
        (70, "gpu", 2000), (71, "host", 800)]  # fmt: skip
    assert qn["segments"][0]["collection"] == "docs" and qn["lag"] == {"c7_dml_0": 3}
    assert "used" in qn["gpu"] and "reason" in qn["gpu"]
    sn = reports.build_report(streaming_node())
    (ch,) = sn["channels"]
    assert ch == {"channel": "c7_dml_0", "collection": "docs", "position": 40, "checkpoint": 10,
                  "growing_segments": 1, "growing_rows": 30, "growing_bytes": 480,
                  "handoff": 0}  # fmt: skip
    px = reports.build_report(SimpleNamespace(role="proxy", node_id="px-1"))
    assert px["role"] == "proxy" and isinstance(px["requests"], dict)
    for rep in (qn, sn, px):
        assert json.loads(json.dumps(rep, allow_nan=False)) == rep  # plain JSON
    with pytest.raises(ValueError):
        reports.build_report(SimpleNamespace(role="datanode", node_id="d"))


def test_reports_live_under_the_lease_and_never_raise(meta: SqliteMetaStore) -> None:
    lease = meta.grant_lease(5).id
    assert reports.write_report(meta, query_node(), lease)
    assert reports.write_report(meta, streaming_node(), lease)
    broken = SimpleNamespace(role="querynode", node_id="qn-bad")  # no query: build fails
    assert not reports.write_report(meta, broken, lease)
    got = reports.read_reports(meta)
    assert [(r["role"], r["node_id"]) for r in got] == [("querynode", "qn-1"),
                                                        ("streamingnode", "sn-1")]  # fmt: skip
    assert meta.get(reports.report_key("querynode", "qn-1")).lease == lease
    meta.revoke_lease(lease)  # the node died: its report goes with its session
    assert reports.read_reports(meta) == []


def test_proxy_reporter_thread_writes_and_revokes(meta: SqliteMetaStore) -> None:
    rep = reports.Reporter(meta, SimpleNamespace(role="proxy", node_id="px-9"), period=0.05)
    try:
        for _ in range(100):
            if reports.read_reports(meta):
                break
            rep._stop.wait(0.05)
        assert [r["node_id"] for r in reports.read_reports(meta)] == ["px-9"]
    finally:
        rep.close()
    assert reports.read_reports(meta) == []


def _proxy_report(t: float, ok: float, buckets: dict[str, float]) -> dict:
    return {"role": "proxy", "node_id": "px-1", "time": t,
            "requests": {"Search": {"ok": ok, "fail": 0.0, "buckets": buckets}}}  # fmt: skip


def test_cluster_snapshot_reads_the_reports() -> None:
    catalog_seg = SimpleNamespace(id=70, rows=100)
    meta = SimpleNamespace(id=7, name="docs", index_params=[], loaded=True)
    catalog = SimpleNamespace(list=lambda: [meta], segments=lambda cid: [catalog_seg],
                              segment_indexes=lambda cid: {})  # fmt: skip
    reps = [reports.build_report(query_node()), reports.build_report(streaming_node()),
            _proxy_report(100.0, 10, {"0.01": 10, "0.1": 10, "+Inf": 10})]  # fmt: skip
    meter = RequestMeter()
    snap = snapshot([], catalogs=[catalog], meter=meter, reports=reps)
    assert {n["role"] for n in snap["nodes"]} == {"querynode", "streamingnode", "proxy"}
    segs = {s["segment"]: s for s in snap["segments"]}
    assert segs[70]["where"] == "GPU (qn-1)" and segs[70]["bytes"] == 2000
    assert segs[71]["where"] == "host (qn-1)"  # held but not (yet) in this catalog
    (qn,) = snap["query_nodes"]
    assert (qn["gpu_segments"], qn["gpu_bytes"], qn["host_segments"]) == (1, 2000, 1)
    (ch,) = snap["channels"]
    assert (ch["owner"], ch["lag"], ch["position"], ch["growing_rows"]) == ("sn-1", 3, 40, 30)
    assert snap["collections"][0]["growing"] == 1
    assert snap["requests"]["Search"]["count"] == 10
    # the same report again (reports come every 2 s, the page every 1 s): same interval
    again = snapshot([], catalogs=[catalog], meter=meter, reports=reps)
    assert again["requests"]["Search"]["rate"] == 0.0
    reps[2] = _proxy_report(102.0, 30, {"0.01": 10, "0.1": 30, "+Inf": 30})
    later = snapshot([], catalogs=[catalog], meter=meter, reports=reps)["requests"]["Search"]
    assert later["count"] == 30 and later["rate"] == pytest.approx(10.0)
    assert 0.01 < later["p50"] <= 0.1  # only the 20 new requests, all in (0.01, 0.1]
    same = snapshot([], catalogs=[catalog], meter=meter, reports=reps)["requests"]["Search"]
    assert same["rate"] == pytest.approx(10.0)  # an unchanged report keeps its interval


def test_proxy_report_buckets_round_trip_the_registry() -> None:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry()
    count = Counter("gpuvec_proxy_req_count", "", ["node_id", "function_name", "status"],
                    registry=reg)  # fmt: skip
    latency = Histogram("gpuvec_proxy_req_latency_seconds", "", ["node_id", "function_name"],
                        buckets=(0.001, 0.01), registry=reg)  # fmt: skip
    count.labels("a", "Query", "success").inc(2)
    latency.labels("a", "Query").observe(0.005)
    latency.labels("a", "Query").observe(0.005)
    from gpuvec.observability.snapshot import proxy_samples, read_requests

    direct = read_requests(reg)
    rec = {fn: {**r, "buckets": {reports._le(b): c for b, c in r["buckets"].items()}}
           for fn, r in direct.items()}  # fmt: skip
    (sample,) = proxy_samples([{"role": "proxy", "node_id": "p", "time": 1.0,
                                "requests": json.loads(json.dumps(rec))}]).values()  # fmt: skip
    assert sample[1] == direct


def test_coordinator_report_brings_builds_and_compactions_to_the_cluster_page() -> None:
    build = {"key": "gpuvec-build-index-70-v-x", "collection": "docs", "segment": 70,
             "field": "v", "index_type": "HNSW", "rows": 100, "state": "Finished",
             "started": 1.0, "ended": 2.0, "error": None}  # fmt: skip
    job = {"job": 5, "name": "docs", "collection": 7, "state": "Completed", "plans": 2,
           "done": 2, "failed": 0, "rows": 150, "started": 1.0, "ended": 3.0}  # fmt: skip
    coord = SimpleNamespace(role="coordinator", node_id="co-1",
                            indexer=SimpleNamespace(recent=lambda: [build], failures=dict),
                            compactor=SimpleNamespace(recent=lambda: [job]))  # fmt: skip
    rep = json.loads(json.dumps(reports.build_report(coord)))  # as read back from etcd
    assert rep["builds"] == [build] and rep["compactions"] == [job]
    meta = SimpleNamespace(id=7, name="docs", index_params=[], loaded=True)
    catalog = SimpleNamespace(list=lambda: [meta], segments=lambda cid: [],
                              segment_indexes=lambda cid: {})  # fmt: skip
    snap = snapshot([], catalogs=[catalog], reports=[rep])
    (c,) = snap["compactions"]
    assert (c["job"], c["collection"], c["state"], c["progress"]) == (5, "docs", "Completed", 1.0)
    assert [b["segment"] for b in snap["builds"]] == [70]
    # an idle standby has no builder yet: an empty report, not an error
    idle = reports.build_report(SimpleNamespace(role="coordinator", node_id="co-2"))
    assert idle["builds"] == [] and idle["compactions"] == []
