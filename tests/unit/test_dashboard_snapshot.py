"""The gpuvec dashboard's data without a browser: the snapshot of an embedded engine (and of
its catalog, as the cluster page reads it), build progress events, request rates and
quantiles from a prometheus registry, the page registration on Dask's dashboard, and the
bokeh page filled from a snapshot."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.errors import InvalidArgumentError
from gpuvec.observability import dashboard
from gpuvec.observability.snapshot import (
    RequestMeter,
    _quantile,
    build_progress,
    parse_build_key,
    snapshot,
)
from gpuvec.schema import DataType

DIM = 8


def test_quantile_interpolates_within_buckets() -> None:
    bounds = [0.001, 0.01, 0.1, float("inf")]
    assert _quantile(0.5, bounds, [0, 0, 0, 0]) is None
    assert _quantile(0.5, bounds, [10, 10, 10, 10]) == pytest.approx(0.0005)
    assert _quantile(0.5, bounds, [0, 10, 10, 10]) == pytest.approx(0.0055)
    assert _quantile(0.99, bounds, [0, 0, 5, 10]) == 0.1  # in +Inf: the last finite bound


def test_request_meter_rates_and_latency_between_samples() -> None:
    reg = CollectorRegistry()
    count = Counter("gpuvec_proxy_req_count", "", ["node_id", "function_name", "status"],
                    registry=reg)  # fmt: skip
    latency = Histogram("gpuvec_proxy_req_latency_seconds", "", ["node_id", "function_name"],
                        buckets=(0.001, 0.01, 0.1, 1), registry=reg)  # fmt: skip
    meter = RequestMeter(reg)
    assert meter.sample(now=100.0) == {}  # nothing yet: no series at all
    for node in ("a", "b"):  # two nodes of one process are summed
        for _ in range(5):
            count.labels(node, "Search", "success").inc()
            latency.labels(node, "Search").observe(0.005)
    count.labels("a", "Search", "fail").inc()
    latency.labels("a", "Search").observe(0.5)
    first = meter.sample(now=101.0)["Search"]
    assert first["count"] == 11 and first["rate"] == 11.0 and first["errors"] == 1.0
    assert RequestMeter(reg).sample()["Search"]["rate"] == 0.0  # a first sample: no interval
    for _ in range(20):
        count.labels("a", "Search", "success").inc()
        latency.labels("a", "Search").observe(0.05)
    second = meter.sample(now=103.0)["Search"]
    assert second["count"] == 31
    assert second["rate"] == pytest.approx(10.0) and second["errors"] == 0.0
    assert 0.01 < second["p50"] < 0.1 and 0.01 < second["p99"] <= 0.1  # only the new ones
    assert meter.sample(now=104.0)["Search"]["p50"] is None  # an idle second


def test_build_progress_and_keys() -> None:
    events = [(1.0, {"key": "gpuvec-build-index-7-vector-abc", "done": 0, "total": 100}),
              (2.0, {"key": "gpuvec-build-index-7-vector-abc", "done": 40, "total": 100}),
              (2.5, "not a progress event")]  # fmt: skip
    assert build_progress(events) == {"gpuvec-build-index-7-vector-abc": (40, 100)}
    assert parse_build_key("gpuvec-build-index-7-my_vec-0123456789ab") == (7, "my_vec")
    # a build only the scheduler knows of (another process submitted it)
    snap = snapshot([], events=events, tasks={"gpuvec-build-index-7-vector-abc": "processing"})
    (build,) = snap["builds"]
    assert (build["segment"], build["field"], build["state"]) == (7, "vector", "Running")
    assert build["progress"] == pytest.approx(0.4) and snap["device"] is None


def _engine_with_data(tmp_path: Path) -> MilvusClient:
    cfg = Config(seal_idle_s=3600, datanode_processes=False, dashboard_address="",
                 index_min_rows=100, compaction_interval_s=3600)  # fmt: skip
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    s = MilvusClient.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    idx = c.prepare_index_params()
    idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
    c.create_collection("snap", schema=s, index_params=idx)
    vec = np.random.default_rng(0).standard_normal((900, DIM)).astype(np.float32)
    for part in (range(0, 400), range(400, 800)):
        c.insert("snap", [{"id": i, "vector": vec[i]} for i in part])
        c.flush("snap")
    c.insert("snap", [{"id": i, "vector": vec[i]} for i in range(800, 900)])  # growing
    c.wait_for_index("snap", timeout=60)
    return c


def test_snapshot_of_an_embedded_engine(tmp_path: Path) -> None:
    c = _engine_with_data(tmp_path)
    try:
        engine = c._engine
        job = c.compact("snap")
        deadline = time.monotonic() + 60
        while c.get_compaction_state(job) == "Executing" and time.monotonic() < deadline:
            time.sleep(0.05)
        c.wait_for_index("snap", timeout=60)  # the merged segment's build
        snap = snapshot([engine], meter=RequestMeter(CollectorRegistry()))
        (coll,) = snap["collections"]
        assert coll | {"sealed": 0} == {"name": "snap", "rows": 900, "growing": 1, "sealed": 0,
                                        "indexed": 1.0, "index": "vector: HNSW",
                                        "load_state": "Loaded"}  # fmt: skip
        assert coll["sealed"] == 1  # two merged into one
        kinds = sorted((s["state"], s["where"], s["rows"]) for s in snap["segments"])
        assert kinds == [("growing", "host", 100), ("sealed", "host", 800)]
        assert all(s["bytes"] > 0 for s in snap["segments"])
        builds = snap["builds"]
        assert len(builds) == 3 and {b["state"] for b in builds} == {"Finished"}
        assert all(b["progress"] == 1.0 and b["collection"] == "snap" for b in builds)
        assert all(b["ended"] >= b["started"] for b in builds)
        (comp,) = snap["compactions"]
        assert (comp["collection"], comp["state"], comp["rows"]) == ("snap", "Completed", 800)
        assert comp["progress"] == 1.0 and comp["ended"] >= comp["started"]
        device = snap["device"]
        assert device["gpu"] in (True, False) and device["backend"]
        if not device["gpu"]:
            assert device["reason"] and device["used"] == 0
        assert snap["requests"] == {} and snap["engines"] == [str(engine.root)]
        # the cluster page's view of the same catalog: committed segments only
        cat = snapshot([], catalogs=[engine.catalog], min_rows=100)
        assert [(x["name"], x["rows"], x["sealed"], x["indexed"]) for x in cat["collections"]] \
            == [("snap", 800, 1, 1.0)]  # fmt: skip
        # the page fills its models from the snapshot (no server needed)
        page = dashboard.GpuvecPage(SimpleNamespace())
        page.show(snap)
        assert page.sources["collections"].data["name"] == ["snap"]
        assert page.sources["builds"].data["status"][0] == "Finished (800 rows)"
        assert "no GPU" in page.header.text or "GPU" in page.header.text
        page.show(cat)
        assert "cluster catalog" in page.header.text
    finally:
        c.close()


def test_running_build_joins_its_progress_events() -> None:
    job = {"key": "gpuvec-build-index-3-v-abc", "collection": "c", "segment": 3, "field": "v",
           "index_type": "HNSW", "rows": 30_000, "state": "Running", "started": 1.0,
           "ended": None, "error": None}  # fmt: skip
    engine = SimpleNamespace(
        indexer=SimpleNamespace(recent=lambda: [job]),
        compactor=SimpleNamespace(recent=lambda: []),
        query=SimpleNamespace(held=dict, residency=SimpleNamespace(used=0, budget=0)),
        collections={}, config=SimpleNamespace(index_min_rows=1024), root="x",
    )  # fmt: skip
    events = [(1.0, {"key": job["key"], "done": 12_000, "total": 30_000})]
    (build,) = snapshot([engine], events=events)["builds"]
    assert build["progress"] == pytest.approx(0.4) and build["done_rows"] == 12_000
    assert dashboard.build_status(build) == "Running 40% (12,000 / 30,000 rows)"


def test_page_registered_on_the_dask_dashboard() -> None:
    from distributed.dashboard import scheduler as dask_dashboard

    assert dashboard.register() and dashboard.register()  # idempotent
    assert dask_dashboard.applications[dashboard.ROUTE] is dashboard.gpuvec_doc

    class Scheduler:  # what Dask's template variables read of it (hashable: memoised)
        jupyter = False

    pages = dask_dashboard.template_variables(Scheduler())["pages"]
    assert pages.count("gpuvec") == 1 and pages.index("gpuvec") == pages.index("info") - 1
    assert dashboard.page_link("http://127.0.0.1:8787/status") == "http://127.0.0.1:8787/gpuvec"
    assert dashboard.page_link(None) is None


@pytest.mark.parametrize(
    ("address", "pinned"),
    [(":8787", True), ("127.0.0.1:8787", True), (":0", False), ("", False),
     ("127.0.0.1:0", False), (None, False)],
)  # fmt: skip
def test_fixed_dashboard_ports_start_at_open(address: str | None, pinned: bool) -> None:
    assert DataNodeRuntime(dashboard_address=address).dashboard_pinned is pinned
    assert not DataNodeRuntime("tcp://x:8786", dashboard_address=":8787").dashboard_pinned


def test_client_keywords_reach_the_engine_config() -> None:
    """``MilvusClient(uri, dashboard_address=...)`` goes through ``Config.for_client``."""
    assert Config.for_client(None, {"dashboard_address": ":8787"}).dashboard_address == ":8787"
    base = Config(seal_rows=5)
    both = Config.for_client(base, {"dashboard_address": ":9", "secure": False})
    assert (both.seal_rows, both.dashboard_address) == (5, ":9")
    assert Config.for_client(base, {}) is base
    assert Config.for_client(base, {"seal_rows": 7, "seal_idle_s": 2}).seal_idle_s == 2
    with pytest.raises(InvalidArgumentError, match="dashboard_address"):
        Config.for_client(None, {"dashboard_address": 8787})
    with pytest.raises(InvalidArgumentError, match="seal_rows must be an int"):
        Config.for_client(None, {"seal_rows": "many"})
    with pytest.raises(
        InvalidArgumentError, match=r"unknown MilvusClient keyword\(s\) \['sael_rows'\]"
    ):
        Config.for_client(None, {"sael_rows": 1})
