"""``gpuvec serve`` as its own process on a free loopback port, for the server tests that
need a real subprocess (its output goes to a log file, never a pipe that could fill up)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_serve(data: Path, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """Start ``python -m gpuvec serve --data data`` (plus ``args``) with small test
    settings; returns the process and its port once the port accepts connections."""
    port = free_port()
    env = dict(
        os.environ,
        GPUVEC_DASHBOARD_ADDRESS="",
        GPUVEC_DATANODE_PROCESSES="0",
        GPUVEC_INDEX_MIN_ROWS="256",
        GPUVEC_METRICS_PORT="0",  # no /metrics unless a test passes --metrics-port
    )
    cmd = [sys.executable, "-m", "gpuvec", "serve", "--data", str(data), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"gpuvec serve exited: {text}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gpuvec serve did not open its port within 60 s")
