"""Observability of the real local cluster: every gpuvec role process serves Prometheus
``/metrics`` with gpuvec's metric families, the proxy counts the requests it answered, and
the Dask scheduler's dashboard serves gpuvec's page (its ``--preload``), and every node
reports to that page through etcd (``cluster/reports/``)."""

from __future__ import annotations

import shutil
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymilvus import MilvusClient

from gpuvec.cluster.launcher import LocalCluster
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.coord.catalog import Catalog
from gpuvec.observability.reports import read_reports
from gpuvec.observability.snapshot import snapshot

pytestmark = [pytest.mark.etcd, pytest.mark.kafka]
ROLES = ("coordinator", "streamingnode", "querynode", "proxy")


def scrape(port: int, wait_s: float = 30.0) -> dict[str, list]:
    """The /metrics families on ``port``, waiting for a process that was just started
    (an earlier test's replacement coordinator) to open it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as res:
                text = res.read().decode()
            return {f.name: f.samples for f in text_string_to_metric_families(text)}
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_every_role_serves_gpuvec_metrics(cluster: LocalCluster, milvus: MilvusClient) -> None:
    procs = cluster.processes
    for role in ROLES:
        live = [p for p in procs.get(role, []) if not p.get("killed")]  # failover tests kill
        assert live, f"no {role} process"
        for p in live:
            assert p.get("metrics_port"), f"{role} {p} was started without a metrics port"
            families = scrape(int(p["metrics_port"]))
            assert any(name.startswith("gpuvec_") for name in families), (role, families.keys())

    milvus.create_collection("obs", dimension=4, consistency_level="Strong")
    vec = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    milvus.insert("obs", [{"id": i, "vector": vec[i]} for i in range(20)])
    for i in range(3):
        milvus.search("obs", data=[vec[i].tolist()], limit=1)
    searches = 0.0
    for p in (p for p in procs["proxy"] if not p.get("killed")):
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


def test_every_node_reports_to_the_dashboard_through_etcd(
    cluster: LocalCluster, milvus: MilvusClient
) -> None:
    milvus.create_collection("rep", dimension=4, consistency_level="Strong", num_shards=2)
    vec = np.random.default_rng(1).standard_normal((300, 4)).astype(np.float32)
    milvus.insert("rep", [{"id": i, "vector": vec[i]} for i in range(300)])
    milvus.flush("rep")
    milvus.load_collection("rep")  # waits until the query nodes serve every segment
    milvus.search("rep", data=[vec[0].tolist()], limit=1)
    meta = ClusterSettings.load(cluster.config_path).open_meta()
    try:
        cid = milvus.describe_collection("rep")["collection_id"]
        sealed = {s.id for s in Catalog(meta).segments(cid)}
        assert sealed, "the flush sealed nothing"
        want = {role: len(cluster.processes[role]) for role in ("querynode", "streamingnode",
                                                               "proxy")}  # fmt: skip
        want["coordinator"] = 1  # only the active one reports
        deadline = time.monotonic() + 60
        while True:
            reps = read_reports(meta)
            got = {r: [x for x in reps if x["role"] == r] for r in want}
            held = {s["segment"] for x in got["querynode"] for s in x["segments"]
                    if s["collection_id"] == cid}  # fmt: skip
            searched = any("Search" in x["requests"] for x in got["proxy"])
            if all(len(got[r]) >= n for r, n in want.items()) and held >= sealed and searched:
                break
            assert time.monotonic() < deadline, (want, reps, sealed)
            time.sleep(0.5)
        for q in got["querynode"]:
            assert q["gpu"]["gpu"] is not None or q["gpu"]["reason"], q["gpu"]
        channels = {c["channel"] for x in got["streamingnode"] for c in x["channels"]}
        assert {f"c{cid}_dml_0", f"c{cid}_dml_1"} <= channels, channels
        snap = snapshot([], catalogs=[Catalog(meta)], reports=reps)
        wheres = {s["where"] for s in snap["segments"] if s["collection"] == "rep"}
        assert wheres and all(w.startswith(("GPU (", "host (")) for w in wheres), wheres
        assert len(snap["query_nodes"]) == want["querynode"]
        # the active coordinator's compactions reach the page through its report
        job = milvus.compact("rep")
        deadline = time.monotonic() + 90
        while True:
            reps = read_reports(meta)
            jobs = [c for r in reps if r["role"] == "coordinator" for c in r["compactions"]]
            if any(c["job"] == job and c["state"] != "Executing" for c in jobs):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.5)
        snap = snapshot([], catalogs=[Catalog(meta)], reports=reps)
        assert any(c["job"] == job and c["collection"] == "rep" for c in snap["compactions"])
    finally:
        meta.close()


def _datanode_metrics(cluster: LocalCluster) -> dict[str, list]:
    """The gpuvec families on the data-node worker's /metrics (its Dask dashboard port)."""
    from distributed import Client

    with Client(f"tcp://127.0.0.1:{cluster.state['scheduler_port']}", timeout=30) as dask:
        workers = dask.scheduler_info()["workers"].values()
        ports = [w["services"]["dashboard"] for w in workers if "dashboard" in w["services"]]
    assert ports, "the data-node worker serves no dashboard (and so no /metrics)"
    out: dict[str, list] = {}
    for port in ports:
        for name, samples in scrape(int(port)).items():
            out.setdefault(name, []).extend(samples)
    return out


def _build_failures(families: dict[str, list]) -> float:
    return sum(s.value for s in families.get("gpuvec_datanode_task_latency_seconds", [])
               if s.name.endswith("_count") and s.labels.get("task_type") == "index_build"
               and s.labels.get("status") == "fail")  # fmt: skip


def test_a_failed_build_reaches_pymilvus_and_the_data_node_metrics(
    cluster: LocalCluster, milvus: MilvusClient
) -> None:
    """A build that cannot succeed (its segment's vectors are gone from object storage) is
    ``Failed`` with its reason through the proxy: pymilvus's create_index raises it, and
    describe_index says so; the data node counts the failed tasks on its own /metrics."""
    from pymilvus import DataType, MilvusException

    before = _build_failures(_datanode_metrics(cluster))
    schema = milvus.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    milvus.create_collection("doomed", schema=schema, consistency_level="Strong")
    vec = np.random.default_rng(2).standard_normal((300, 4)).astype(np.float32)
    milvus.insert("doomed", [{"id": i, "vector": vec[i].tolist()} for i in range(300)])
    milvus.flush("doomed")
    cid = milvus.describe_collection("doomed")["collection_id"]
    objects = cluster.directory / "objects" / cluster.state["etcd_root"]
    segments = objects / "collections" / str(cid) / "segments"
    gone = list(segments.glob("*/v1/vectors/vector"))  # the array itself (a missing chunk
    assert gone, f"no sealed segment of collection {cid} under {objects}"  # reads as zeros)
    for path in gone:
        shutil.rmtree(path)
    idx = milvus.prepare_index_params()
    idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
    with pytest.raises(MilvusException) as err:
        milvus.create_index("doomed", idx, timeout=120)  # pymilvus waits for the build
    assert "vector" in str(err.value), str(err.value)
    info = milvus.describe_index("doomed", "vector")
    assert info["state"] == "Failed", info
    assert _build_failures(_datanode_metrics(cluster)) >= before + 1
