"""Command line: ``gpuvec demo`` / ``python -m gpuvec demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpuvec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the embedded demo (no servers needed)")
    demo.add_argument("--dir", default="./gpuvec-demo-data", help="data directory (recreated)")
    demo.add_argument("--rows", type=int, default=100_000, help="vectors to insert")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from gpuvec.demo import run_demo

        return run_demo(args.dir, rows=args.rows)
    return 2


if __name__ == "__main__":
    sys.exit(main())
