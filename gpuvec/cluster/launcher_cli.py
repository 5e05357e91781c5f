"""``gpuvec cluster up|down|status``: the command line of :mod:`gpuvec.cluster.launcher`.

This module owns the argument parsing and the printed output only; every action is a
:class:`~gpuvec.cluster.launcher.LocalCluster` call. ``up`` returns once the cluster is
ready and leaves its processes running detached; ``down`` and ``status`` find them again
through ``<dir>/cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import Any

from gpuvec.cluster.launcher import ROLES, ClusterError, LocalCluster

DEFAULT_DIR = "/tmp/gpuvec-cluster"


def _engine_item(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value when it is one (``seal_rows=1000``),
    else kept as a string (``index=HNSW``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``cluster`` command (``up``/``down``/``status``) to ``subparsers``."""
    cluster = subparsers.add_parser(
        "cluster",
        help="run a local disaggregated cluster (etcd, Kafka, Dask and every gpuvec role)",
        description="Start, inspect or stop a local gpuvec cluster on loopback: etcd and "
        "Kafka (reused when running), a Dask scheduler and workers, coordinators, streaming "
        "nodes, query nodes and a proxy (the Milvus endpoint). `up` returns once the cluster "
        "is ready; `down` and `status` find it again through <dir>/cluster.json.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="start a cluster and return once it serves")
    down = sub.add_parser(
        "down", help="stop a cluster's processes (and etcd/Kafka if it started them)"
    )
    status = sub.add_parser("status", help="show a cluster's processes, sessions and leader")
    for p in (up, down, status):
        p.add_argument(
            "--dir", default=DEFAULT_DIR, help=f"cluster directory (default {DEFAULT_DIR})"
        )
    up.add_argument(
        "--query-nodes", type=int, default=1, metavar="N", help="query nodes (default 1)"
    )
    up.add_argument(
        "--streaming-nodes", type=int, default=1, metavar="M", help="streaming nodes (default 1)"
    )
    up.add_argument(
        "--data-nodes", type=int, default=1, metavar="K", help="Dask workers (default 1)"
    )
    up.add_argument(
        "--coordinators",
        type=int,
        default=2,
        metavar="C",
        help="one active, the rest standby (default 2)",
    )
    up.add_argument("--port", type=int, default=19530, help="proxy (Milvus gRPC) port; 0: any free")
    up.add_argument("--etcd", help="HOST:PORT of a running etcd (default: deploy/local/etcd.sh)")
    up.add_argument("--kafka", help="HOST:PORT of a running Kafka (default: deploy/local/kafka.sh)")
    up.add_argument(
        "--engine",
        type=_engine_item,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an [engine] setting for every role (repeatable), e.g. seal_rows=1000",
    )
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait (default 180)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    return cluster


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed ``cluster`` command; the exit status."""
    try:
        if args.cluster_command == "up":
            return _up(args)
        cluster = LocalCluster.attach(args.dir)
        if args.cluster_command == "down":
            cluster.progress = print
            cluster.down()
            print(f"cluster in {cluster.directory} stopped")
            return 0
        return _status(cluster, as_json=args.json)
    except ClusterError as e:
        print(f"gpuvec cluster {args.cluster_command}: {e}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(
        args.dir,
        query_nodes=args.query_nodes,
        streaming_nodes=args.streaming_nodes,
        data_nodes=args.data_nodes,
        coordinators=args.coordinators,
        port=args.port,
        etcd=args.etcd,
        kafka=args.kafka,
        engine=dict(args.engine),
        progress=lambda msg: print(f"  {msg}", flush=True),
    )
    print(f"starting a gpuvec cluster in {cluster.directory}", flush=True)
    cluster.up(timeout=args.timeout)
    print(f"endpoint:  {cluster.uri}")
    print(f"dashboard: {cluster.dashboard}")
    print(f"logs:      {cluster.log_dir}")
    print(f"config:    {cluster.config_path}")
    print(f"stop with: gpuvec cluster down --dir {cluster.directory}")
    return 0


def _status(cluster: LocalCluster, *, as_json: bool) -> int:
    """Print the status; exit 0 only when every recorded process runs."""
    info = cluster.status()
    procs = [p for role in ROLES for p in info["processes"].get(role, [])]
    code = 0 if procs and all(p["alive"] for p in procs) else 1
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return code
    print(f"cluster    {info['directory']}")
    print(f"endpoint   {info['uri']}    dashboard {info['dashboard']}")
    print(f"etcd       {info['etcd']} (root {info['etcd_root']})    kafka {info['kafka']}")
    print(f"\n{'ROLE':<14}{'#':>3}  {'PID':>8}  {'STATE':<6}{'PORT':>7}{'METRICS':>8}  LOG")
    for role in ROLES:
        for p in info["processes"].get(role, []):
            state = "alive" if p["alive"] else "dead"
            port, metrics = p.get("port", ""), p.get("metrics_port", "")
            print(f"{role:<14}{p['index']:>3}  {p['pid']:>8}  {state:<6}{port:>7}{metrics:>8}  "
                  f"{p['log']}")  # fmt: skip
    if "meta_error" in info:
        print(f"\netcd not readable: {info['meta_error']}")
        return code
    leader = info["leader"] or {}
    print("\nleader     " + ("; ".join(f"{k} = {v}" for k, v in leader.items()) or "(none)"))
    sessions = info["sessions"] or {}
    print(f"sessions   {len(sessions)}")
    for key, value in sessions.items():
        print(f"  {key} = {value}")
    return code


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m gpuvec.cluster.launcher_cli up ...``)."""
    parser = argparse.ArgumentParser(prog="gpuvec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["cluster", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
