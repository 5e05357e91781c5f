"""Helpers for tests and benchmarks that use the real services of ``deploy/local``:
reachability checks and private, throw-away service instances for fault tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "local"


def reachable(hostport: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def private_service(
    script: str, port_env: str, port: int, run_dir: Path, timeout: float
) -> Iterator[Callable[..., None]]:
    """Start ``deploy/local/<script>`` on ``port`` with its data under ``run_dir``; yield
    ``ctl(*args)`` (runs the script with those args, asserting success); always stop it
    hard at the end."""
    path = DEPLOY / script
    env = {
        **os.environ,
        port_env: str(port),
        "GPUVEC_RUN_DIR": str(run_dir),
        "PYTHON": sys.executable,
    }

    def ctl(*args: str) -> None:
        proc = subprocess.run(
            ["bash", str(path), *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{proc.stderr}"

    try:
        ctl("start", "--fresh")
        yield ctl
    finally:
        subprocess.run(["bash", str(path), "stop", "--hard"], env=env, timeout=timeout, check=False)
