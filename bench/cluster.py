"""Cluster benchmark: search QPS and latency through the disaggregated gpuvec cluster with 1,
2 and 4 query nodes, against ``gpuvec serve`` and the embedded runtime on the same data, and
insert throughput through the cluster's Kafka WAL, in one run.

    python bench/cluster.py [--rows 100000] [--queries 300] [--nodes 1,2,4] [--threads 4]
                            [--etcd HOST:PORT --kafka HOST:PORT] [--quick] [--keep]

Data: GloVe-50 from ``/tmp/gpuvec-data/glove50`` (COSINE) when present, else random 50-d
Gaussian vectors (L2); loaded by ``bench/server.py``'s loader. Every system gets the same
rows through unmodified pymilvus ``insert`` in batches of 2,000 (timed: rows/s), with a
``flush`` after every ~rows/8 rows (untimed), so each system has the same 8–9 sealed
segments to spread over query nodes (automatic compaction off); then flush, an HNSW index
(M 16, efConstruction 100; until ``describe_index`` says Finished) and load.

Systems, in this order:

* ``serve``: ``gpuvec serve`` in its own process (as the cluster's proxy is), pymilvus;
* ``embedded``: ``gpuvec.MilvusClient`` in this process on the same directory, no RPC
  (its concurrent clients are threads sharing that one client);
* ``cluster-N``: ``LocalCluster`` (2 coordinators, 1 streaming node, 1 Dask data node, a
  proxy) with N query nodes. The coordinator places only unassigned segments, so after
  starting query nodes the collection is released and loaded again, which places every
  segment afresh, least rows first; the placement is read back from etcd
  (``segment_servers``) and recorded;
* ``serve-again``: ``gpuvec serve`` once more at the end, to show how much the (shared)
  host's load drifted during the run.

Per system and consistency level (Strong, Bounded): batch 1 (``--queries`` sequential
searches: QPS, p50, p99), batch 100 (best of 3) and ``--threads`` concurrent batch-1
clients (each its own connection; aggregate QPS); recall@10 against the exact top 10
(NumPy brute force), limit 10, ef 64. Also the latency the cluster adds (cluster p50 −
serve p50, and − embedded p50), and at the first and last node count a breakdown of one
cluster search (at the last also of one 2,000-row insert) into its etcd requests,
coordinator TSO call and Flight calls to the nodes, measured through a second proxy started
in this process, beside the round trip of a no-op Flight call.

On a 2-core host the roles (10 processes at 4 query nodes) share the cores with the
client, so the scaling figures measure the cluster's overhead, not its capacity.

Writes ``bench/results/cluster.json`` and ``cluster.png``. ``--quick``: 20k rows, 60
queries: a smoke run, about 1 minute; the full run takes about 2 on 2 quiet cores. The
JSON records the git commit, the CPU count and the load average during the run (the host
may be shared: ``serve-again`` shows the drift). etcd and Kafka: ``--etcd``/``--kafka``; by
default deploy/local's (127.0.0.1:23790 / 127.0.0.1:19092), started by the launcher when
down and stopped after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads (DESIGN §9)

import numpy as np
from cluster_measure import NAME, LoadSampler, exact_topk, measure, overhead_breakdown
from cluster_report import fmt_breakdown, plot, summarise
from server import _load, _start_gpuvec
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


# --- filling a system ----------------------------------------------------------------------
def ingest(client: Any, batches: list[list[dict]], data: dict[str, Any]) -> dict[str, Any]:
    """Create ``NAME``; insert (timed: the insert calls only), flushing every
    ``seg_rows`` rows so every system gets the same sealed segments; flush, index (until
    ``describe_index`` says Finished) and load."""
    from pymilvus import DataType

    dim, metric, seg_rows = data["dim"], data["metric"], data["seg_rows"]
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(NAME, schema=schema, consistency_level="Bounded")
    rows = sum(len(b) for b in batches)
    insert_s = seal_s = 0.0
    done = 0
    for b in tqdm(batches, desc="  insert", unit="batch", leave=False):
        t0 = time.perf_counter()
        client.insert(NAME, b)
        insert_s += time.perf_counter() - t0
        done += len(b)
        if done % seg_rows == 0 and done < rows:  # seal a segment (not timed as insert)
            t0 = time.perf_counter()
            client.flush(NAME)
            seal_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    client.flush(NAME)
    flush_s = time.perf_counter() - t0
    idx = client.prepare_index_params()
    idx.add_index(
        "vector", index_type="HNSW", metric_type=metric, params={"M": 16, "efConstruction": 100}
    )
    t0 = time.perf_counter()
    client.create_index(NAME, idx)
    info: dict[str, Any] = {}
    while time.perf_counter() - t0 < 900:
        info = client.describe_index(NAME, "vector")
        if info.get("state") == "Finished":
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"index not Finished after 900 s: {info}")
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.load_collection(NAME)
    load_s = time.perf_counter() - t0
    out = {
        "rows": rows,
        "batch_rows": len(batches[0]),
        "insert_s": insert_s,
        "rows_per_s": rows / insert_s,
        "seal_flushes_s": seal_s,
        "rows_per_s_with_seal_flushes": rows / (insert_s + seal_s),
        "flush_s": flush_s,
        "index_s": index_s,
        "load_s": load_s,
        "index_rows": info.get("indexed_rows"),
    }
    log(
        f"  inserted {rows:,} rows in {insert_s:.1f} s ({out['rows_per_s']:,.0f} rows/s); "
        f"flush {flush_s:.1f} s, index {index_s:.1f} s, load {load_s:.1f} s"
    )
    return out


# --- the cluster ---------------------------------------------------------------------------
def _wait(what: str, check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def placement(cluster: Any) -> dict[str, Any]:
    """The collection's sealed segments and which query node serves each (etcd)."""
    from gpuvec.cluster.sessions import SEGMENTS, segment_servers, sessions
    from gpuvec.cluster.settings import ClusterSettings
    from gpuvec.cluster.streamingnode import SERVED
    from gpuvec.coord.catalog import Catalog

    meta = ClusterSettings.load(cluster.config_path).open_meta()
    try:
        (coll,) = Catalog(meta).list()
        segs = {s.id: s.rows for s in Catalog(meta).segments(coll.id)}
        servers = segment_servers(meta, coll.id)
        served = {int(kv.key.split("/")[-2]) for kv in meta.range(f"{SERVED}{coll.id}/")[0]}
        live = sessions(meta, "querynode")
        rows_per_node: dict[str, int] = {}
        for sid, nodes in servers.items():
            for n in nodes:
                rows_per_node[n] = rows_per_node.get(n, 0) + segs.get(sid, 0)
        return {
            "segments": len(segs),
            "segment_rows": sorted(segs.values()),
            "assigned": len(servers),
            "served": len(served & set(segs)),
            "nodes_live": len(live),
            "nodes_used": len(rows_per_node),
            "rows_per_node": sorted(rows_per_node.values()),
            "stale_keys": len(meta.range(f"{SEGMENTS}{coll.id}/")[0]) - len(servers),
        }
    finally:
        meta.close()


def spread(cluster: Any, client: Any, n: int) -> dict[str, Any]:
    """Bring the cluster to ``n`` live query nodes and re-place every segment over them
    (release, wait until the old placement is gone, load, wait until all are served)."""
    while len([p for p in cluster.processes["querynode"] if not p.get("killed")]) < n:
        cluster.start("querynode")
    cluster.wait_sessions("querynode", n, 120)
    t0 = time.perf_counter()
    client.release_collection(NAME)
    _wait("the release", lambda: (p := placement(cluster))["assigned"] == 0 and p["served"] == 0)
    release_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.load_collection(NAME)
    load_call_s = time.perf_counter() - t0
    done = lambda p: p["assigned"] == p["served"] == p["segments"]  # noqa: E731
    _wait("every segment served", lambda: done(placement(cluster)))
    place = placement(cluster)
    place |= {
        "release_s": release_s,
        "load_call_s": load_call_s,
        "load_until_served_s": time.perf_counter() - t0,
    }
    log(
        f"  {n} query node(s): {place['segments']} segments on {place['nodes_used']} node(s), "
        f"rows per node {place['rows_per_node']}; load {place['load_until_served_s']:.1f} s"
    )
    return place


def run_cluster(args: argparse.Namespace, work: Path, batches: list, data: dict, res: dict) -> None:
    from pymilvus import MilvusClient

    from gpuvec.cluster.launcher import LocalCluster

    cluster = LocalCluster(
        work / "cluster",
        query_nodes=1,
        streaming_nodes=1,
        data_nodes=1,
        coordinators=2,
        port=0,
        etcd=args.etcd or None,
        kafka=args.kafka or None,
        engine=data["engine"],
        progress=lambda m: log(f"  [launcher] {m}"),
    )
    client = None
    try:
        t0 = time.perf_counter()
        cluster.up(timeout=300)
        res["cluster_up_s"] = time.perf_counter() - t0
        log(f"cluster up in {res['cluster_up_s']:.1f} s at {cluster.uri}")
        client = MilvusClient(uri=cluster.uri, timeout=600)
        log("cluster: ingest through the proxy → streaming node → Kafka")
        ingest_out = ingest(client, batches, data)
        make = lambda: MilvusClient(uri=cluster.uri, timeout=600)  # noqa: E731
        for n in args.node_counts:
            label = f"cluster-{n}"
            place = spread(cluster, client, n)
            first = res["systems"].get(f"cluster-{args.node_counts[0]}", {}).get("placement")
            if first and place["segments"] != first["segments"]:
                res.setdefault("warnings", []).append(
                    f"{label}: {place['segments']} segments, {first['segments']} before"
                )
                log(f"  WARNING: the segments changed under the run: {res['warnings'][-1]}")
            got = measure(make, data["q"], data["gt"], data["sp"], label, args.threads)
            entry: dict[str, Any] = {"query_nodes": n, "placement": place, "search": got}
            if n == args.node_counts[0]:
                entry["ingest"] = ingest_out
            if n in (args.node_counts[0], args.node_counts[-1]):
                last = n == args.node_counts[-1]  # inserts change the data: only at the end
                entry["breakdown"] = b = overhead_breakdown(
                    cluster.config_path, data["q"], data["sp"], min(50, len(data["q"])),
                    inserts=_shifted(batches[:5], data["rows"]) if last else [],
                )  # fmt: skip
                for kind in ("search", "insert"):
                    if kind in b:
                        log(f"  one {kind}: {fmt_breakdown(b[kind])}")
                log(f"  no-op Flight call round trip: {b['flight_noop_rtt_ms']}")
            res["systems"][label] = entry
        with contextlib.suppress(Exception):
            client.drop_collection(NAME)  # its Kafka topics go with it
    except BaseException:
        log(f"cluster failed; logs under {cluster.log_dir}")
        args.keep = True
        raise
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        t0 = time.perf_counter()
        cluster.down()
        log(f"cluster down ({time.perf_counter() - t0:.1f} s)")


def _shifted(batches: list[list[dict]], offset: int) -> list[list[dict]]:
    """The same rows under new primary keys (``offset`` up)."""
    return [[{"id": r["id"] + offset, "vector": r["vector"]} for r in b] for b in batches]


# --- the baselines -------------------------------------------------------------------------
def run_baselines(args: argparse.Namespace, work: Path, batches: list, data: dict, res: dict):
    from pymilvus import MilvusClient

    import gpuvec

    folder = work / "serve"
    log("serve: gpuvec serve (own process), pymilvus")
    proc, uri = _start_gpuvec(str(folder))
    try:
        client = MilvusClient(uri=uri, timeout=600)
        try:
            ingest_out = ingest(client, batches, data)
        finally:
            client.close()
        make = lambda: MilvusClient(uri=uri, timeout=600)  # noqa: E731
        got = measure(make, data["q"], data["gt"], data["sp"], "serve", args.threads)
        res["systems"]["serve"] = {"ingest": ingest_out, "search": got}
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    log("embedded: gpuvec.MilvusClient in this process, same directory")
    emb = gpuvec.MilvusClient(str(folder))
    try:
        emb.load_collection(NAME)
        info = emb.describe_index(NAME, "vector")
        got = measure(
            lambda: emb, data["q"], data["gt"], data["sp"], "embedded", args.threads, shared=True
        )
        res["systems"]["embedded"] = {
            "search": got,
            "index": {k: info.get(k) for k in ("sealed_segments", "indexed_segments", "backend")},
        }
    finally:
        emb.close()


def rerun_serve(args: argparse.Namespace, work: Path, data: dict, res: dict) -> None:
    """``gpuvec serve`` again on the same directory after the cluster: how much the host's
    load drifted during the run (the machine is shared)."""
    from pymilvus import MilvusClient

    log("serve again (drift check): gpuvec serve on the same directory")
    proc, uri = _start_gpuvec(str(work / "serve"))
    try:
        with contextlib.closing(MilvusClient(uri=uri, timeout=600)) as client:
            client.load_collection(NAME)
        make = lambda: MilvusClient(uri=uri, timeout=600)  # noqa: E731
        got = measure(make, data["q"], data["gt"], data["sp"], "serve-again", args.threads)
        res["systems"]["serve-again"] = {"search": got}
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def _git() -> dict[str, Any]:
    """The commit measured, and whether gpuvec/ had uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    run = lambda *a: subprocess.run(  # noqa: E731
        ["git", "-C", str(root), *a], capture_output=True, text=True
    ).stdout.strip()
    with contextlib.suppress(OSError):
        return {"commit": run("rev-parse", "HEAD"),
                "gpuvec_dirty": bool(run("status", "--porcelain", "--", "gpuvec"))}  # fmt: skip
    return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--batch-rows", type=int, default=2_000, help="rows per insert call")
    ap.add_argument("--nodes", default="1,2,4", help="query-node counts, ascending")
    ap.add_argument("--threads", type=int, default=4, help="concurrent clients")
    ap.add_argument("--etcd", default="", help="host:port (default: deploy/local's, 23790)")
    ap.add_argument("--kafka", default="", help="host:port (default: deploy/local's, 19092)")
    ap.add_argument("--quick", action="store_true", help="20k rows, 60 queries (smoke run)")
    ap.add_argument("--keep", action="store_true", help="keep the data and log directories")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.queries = 20_000, 60
    args.node_counts = sorted({int(n) for n in args.nodes.split(",")})
    import faiss
    import pymilvus

    from gpuvec.ops import backend_name

    base, q, desc = _load(args.rows, args.queries)
    real = "real" in desc
    metric = "COSINE" if real else "L2"
    # a segment every ~rows/8 rows (whole insert batches), sealed by flush; the engine's
    # own row trigger only as a backstop, so every system gets the same segments. No
    # automatic compaction: no segment counts as small (the cluster's coordinator runs its
    # first pass as soon as time.monotonic() passes the interval, i.e. at any time on a host
    # up longer than that, so a long interval alone does not keep the segments apart)
    seg_rows = args.batch_rows * max(1, round(len(base) / 8 / args.batch_rows))
    engine = {"seal_rows": 2 * seg_rows, "compaction_small_rows": 1,
              "compaction_interval_s": 3600.0}  # fmt: skip
    for k, v in engine.items():  # gpuvec serve and the embedded runtime read these
        os.environ[f"GPUVEC_{k.upper()}"] = str(v)
    os.environ["GPUVEC_DASHBOARD_ADDRESS"] = ""
    t0 = time.perf_counter()
    gt = exact_topk(base, q, metric)
    log(
        f"data: {desc}, {len(base):,}×{base.shape[1]}, {len(q)} queries, metric {metric}; "
        f"exact top 10 in {time.perf_counter() - t0:.1f} s; a segment every {seg_rows:,} rows"
    )
    ids = np.arange(len(base))
    batches = [
        [{"id": int(i), "vector": v} for i, v in zip(ids[s:e], base[s:e].tolist(), strict=True)]
        for s, e in ((s, s + args.batch_rows) for s in range(0, len(base), args.batch_rows))
    ]
    sp = {"metric_type": metric, "params": {"ef": 64}}
    data = {
        "q": q,
        "gt": gt,
        "sp": sp,
        "dim": base.shape[1],
        "metric": metric,
        "engine": engine,
        "seg_rows": seg_rows,
        "rows": len(base),
    }
    res: dict[str, Any] = {
        "data": f"{desc} ({'GloVe-50' if real else 'SYNTHETIC'}) {len(base)}x{base.shape[1]}",
        "synthetic": not real,
        "rows": len(base),
        "queries": len(q),
        "metric": metric,
        "index": {"type": "HNSW", "M": 16, "efConstruction": 100},
        "search_params": sp,
        "limit": 10,
        "threads": args.threads,
        "engine": engine,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
            "backend": backend_name(),
            "pymilvus": pymilvus.__version__,
            "faiss": faiss.__version__,
        },
        "etcd": args.etcd or "deploy/local 127.0.0.1:23790",
        "kafka": args.kafka or "deploy/local 127.0.0.1:19092",
        "git": _git(),
        "systems": {},
    }
    sampler = LoadSampler()
    work = Path(tempfile.mkdtemp(prefix="gpuvec-bench-cluster-"))
    try:
        run_baselines(args, work, batches, data, res)
        run_cluster(args, work, batches, data, res)
        rerun_serve(args, work, data, res)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if _git() != res["git"]:  # the tree is shared: say so when it moved under the run
        res["git_end"] = _git()
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["loadavg_1min_during_run"] = load = sampler.stop()
    res["wall_s"] = time.perf_counter() - T0
    if load["max"] > 2 * (os.cpu_count() or 1):
        res["note"] = (
            f"1-min load average peaked at {load['max']:.1f} (mean {load['mean']:.1f}) on "
            f"{os.cpu_count()} CPUs; it counts this run's own server and role processes, "
            f"and was {res['loadavg_start'][0]:.1f} before the run started"
        )
    summarise(res)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(res, indent=2))
    plot(res, RESULTS / "cluster.png")
    print(
        f"\nwrote {RESULTS / 'cluster.json'} and {RESULTS / 'cluster.png'} ({res['wall_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
