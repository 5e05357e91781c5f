"""Command lines of the cluster roles: ``gpuvec coordinator``, ``gpuvec streamingnode``,
``gpuvec querynode`` and ``gpuvec proxy``. Each reads the cluster settings (``--config``
file, then ``GPUVEC_*`` env), runs until SIGINT/SIGTERM and then leaves cleanly (its
session key and, for a coordinator, its leadership are released at once). Each serves
Prometheus ``/metrics`` on ``--metrics-port`` (default 9091; 0: off) of its ``--host``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

ROLES = {
    "coordinator": ("coordinator (exactly one active; others stand by)", 19600),
    "streamingnode": ("streaming node (owns WAL channels, serves growing data)", 19610),
    "querynode": ("query node (serves sealed segments)", 19620),
    "proxy": ("proxy: the Milvus gRPC endpoint of the cluster", 19530),
}


def add_metrics_port(parser: argparse.ArgumentParser) -> None:
    """The ``--metrics-port`` option (``gpuvec serve`` and every role)."""
    from gpuvec.observability.exporter import METRICS_PORT_ENV, default_metrics_port

    parser.add_argument(
        "--metrics-port", type=int, default=default_metrics_port(), metavar="PORT",
        help=f"Prometheus /metrics port on --host (env {METRICS_PORT_ENV}; default 9091, "
        "Milvus's; 0: off; a port in use is a warning, not an error)",
    )  # fmt: skip


def add_parsers(sub: Any) -> None:
    for role, (text, port) in ROLES.items():
        p = sub.add_parser(role, help=f"run a cluster {text}")
        p.add_argument("--config", default=os.environ.get("GPUVEC_CONFIG"),
                       help="cluster config file (TOML; env GPUVEC_CONFIG)")  # fmt: skip
        p.add_argument("--host", default="127.0.0.1", help="address to bind")
        p.add_argument("--port", type=int, default=0 if role != "proxy" else port,
                       help=f"port (0: any free one; conventional {port})")  # fmt: skip
        p.add_argument("--advertise", default=None,
                       help="host other nodes reach this one at (default --host)")  # fmt: skip
        if role == "proxy":
            p.add_argument("--workers", type=int, default=32, help="RPC threads")
            p.add_argument("--auth", action="store_true",
                           help="require user/password, and enforce roles and privileges "
                           "(users and grants live in the cluster's etcd)")  # fmt: skip
            p.add_argument("--root-password", default=os.environ.get("GPUVEC_ROOT_PASSWORD"),
                           help="root's password when the cluster has no users yet "
                           "(default Milvus's: Milvus; env GPUVEC_ROOT_PASSWORD)")  # fmt: skip
        add_metrics_port(p)


def _wait_for_signal(stop: threading.Event) -> None:
    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def run(args: argparse.Namespace) -> int:
    from gpuvec.cluster.settings import ClusterSettings
    from gpuvec.ops import check_requested

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    check_requested()  # GPUVEC_DEVICE=gpu on a node without a usable GPU: refuse to start
    settings = ClusterSettings.load(args.config)
    role = args.command
    if role == "proxy":
        import gpuvec.client  # noqa: F401  (imported before the engine's threads start)
        from gpuvec.cluster.proxy import ClusterEngine
        from gpuvec.server.app import ServerOptions, serve_forever

        opts = ServerOptions(host=args.host, port=args.port, max_workers=args.workers,
                             flush_on_stop=False, metrics_port=args.metrics_port,
                             auth=args.auth)  # fmt: skip
        if args.root_password:
            opts.root_password = args.root_password
        return serve_forever(f"cluster {settings.etcd_root}", opts, engine=ClusterEngine(settings))
    from gpuvec.observability.engines import register_node
    from gpuvec.observability.exporter import start_metrics_server

    metrics = start_metrics_server(args.metrics_port, args.host)
    if metrics is not None:
        print(f"gpuvec: {role} metrics {metrics.url}", flush=True)
    stop = threading.Event()
    _wait_for_signal(stop)
    if role == "coordinator":
        from gpuvec.cluster.coordinator import CoordinatorNode

        node: Any = CoordinatorNode(settings, args.host, args.port, args.advertise)
        node.stop_event = stop
        register_node(node)
        print(f"gpuvec: coordinator {node.node_id} at {node.address} (standing by)", flush=True)
        try:
            node.run()
        finally:
            node.close()
        return 0
    if role == "streamingnode":
        from gpuvec.cluster.streamingnode import StreamingNode

        node = StreamingNode(settings, args.host, args.port, args.advertise)
    else:
        from gpuvec.cluster.querynode import QueryNodeProcess

        node = QueryNodeProcess(settings, args.host, args.port, args.advertise)
    register_node(node)
    print(f"gpuvec: {role} {node.node_id} at {node.address}", flush=True)
    while not stop.wait(0.5):
        if node.stop_event.is_set():  # its session was lost: leave, the cluster moves on
            print(f"gpuvec: {role} {node.node_id} lost its session; exiting", flush=True)
            node.close()
            return 1
    node.close()
    return 0
