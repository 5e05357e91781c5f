"""Command line: ``gpuvec demo``, ``gpuvec serve``, ``gpuvec import`` / ``build-index``
(:mod:`gpuvec.jobs_cli`), the cluster roles (``gpuvec coordinator |
streamingnode | querynode | proxy``) and ``gpuvec cluster up|down|status`` (also
``python -m gpuvec ...``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

DESCRIPTION = """\
gpuvec: a GPU-accelerated, Milvus-compatible vector database.

  gpuvec demo                 the embedded engine on real word vectors (no servers)
  gpuvec serve --data DIR     a Milvus gRPC endpoint for pymilvus on a data directory
  gpuvec import --data DIR --collection C FILE...
                              bulk-import Parquet / NumPy / JSON files (Dask job)
  gpuvec build-index --data DIR --collection C
                              build or rebuild a collection's indexes (Dask job)
  gpuvec cluster up|down|status
                              a local disaggregated cluster (etcd, Kafka, Dask, roles)
  gpuvec coordinator | streamingnode | querynode | proxy --config FILE
                              one role of a cluster

Run `gpuvec COMMAND --help` for a command's options; `python -m gpuvec` works the same."""


def _served_rpcs() -> str:
    """The Milvus RPCs the server implements (for ``gpuvec serve --help``)."""
    import textwrap

    from gpuvec.server.servicer import implemented_rpcs

    names = sorted(implemented_rpcs())
    body = textwrap.fill(", ".join(names), 88, initial_indent="  ", subsequent_indent="  ")
    return f"Milvus RPCs served ({len(names)}; the others answer UNIMPLEMENTED):\n{body}"


def main(argv: list[str] | None = None) -> int:
    from gpuvec import __version__

    parser = argparse.ArgumentParser(
        prog="gpuvec", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gpuvec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the embedded demo (no servers needed)")
    demo.add_argument("--dir", default="./gpuvec-demo-data", help="data directory (recreated)")
    demo.add_argument("--rows", type=int, default=100_000, help="vectors to insert")
    demo.add_argument(
        "--keep-dashboard",
        action="store_true",
        help="after the report, keep the engine up and print its gpuvec dashboard page "
        "(http://…/gpuvec) until Ctrl-C; GPUVEC_DASHBOARD_ADDRESS=:8787 fixes the port",
    )
    serve = sub.add_parser(
        "serve",
        help="serve a data directory over the Milvus gRPC protocol (pymilvus connects to it)",
        epilog=_served_rpcs() if {"-h", "--help"} & set(sys.argv) else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--data", required=True, help="data directory (created if missing)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=19530, help="port (default 19530; 0: any)")
    serve.add_argument(
        "--auth", action="store_true", help="require user/password (default user root)"
    )
    serve.add_argument(
        "--root-password",
        default=os.environ.get("GPUVEC_ROOT_PASSWORD", "Milvus"),
        help="root's password when the data directory has no users yet (env "
        "GPUVEC_ROOT_PASSWORD; default Milvus, as Milvus)",
    )
    serve.add_argument("--tls-cert", help="PEM certificate: serve TLS (with --tls-key)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--workers", type=int, default=32, help="RPC threads (default 32)")
    serve.add_argument("--max-message-mb", type=int, default=256, help="largest response (MiB)")
    serve.add_argument(
        "--max-recv-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest request, refused before decoding (Milvus serverMaxRecvSize; env "
        "GPUVEC_MAX_RECV_SIZE; default 67108864 = 64 MiB)",
    )
    from gpuvec import jobs_cli
    from gpuvec.cluster import launcher_cli, roles_cli

    jobs_cli.add_parsers(sub)

    roles_cli.add_metrics_port(serve)

    roles_cli.add_parsers(sub)
    launcher_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command in roles_cli.ROLES:
        return roles_cli.run(args)
    if args.command == "cluster":
        return launcher_cli.run(args)
    if args.command == "import":
        return jobs_cli.run_import(args)
    if args.command == "build-index":
        return jobs_cli.run_build_index(args)
    if args.command == "demo":
        from gpuvec.demo import run_demo

        return run_demo(args.dir, rows=args.rows, keep_dashboard=args.keep_dashboard)
    if args.command == "serve":
        from gpuvec.server.app import ServerOptions, serve_forever

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        extra = {} if args.max_recv_size is None else {"max_recv_size": args.max_recv_size}
        opts = ServerOptions(
            host=args.host,
            port=args.port,
            auth=args.auth,
            root_password=args.root_password,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            max_workers=args.workers,
            max_message_mb=args.max_message_mb,
            metrics_port=args.metrics_port,
            **extra,
        )
        return serve_forever(args.data, opts)
    return 2


if __name__ == "__main__":
    sys.exit(main())
