"""A GPU asked for and unusable is refused when gpuvec opens, as users run it (a
``python -c`` subprocess): ``GPUVEC_DEVICE=gpu`` without a usable device fails
``MilvusClient(dir)`` at once with the reason, before the directory is touched; ``cpu``
opens; a misspelt mode names itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gpuvec.ops.backend import gpu_unavailable_reason

SCRIPT = (
    "import sys; from gpuvec import MilvusClient; "
    "MilvusClient(sys.argv[1]).close(); print('opened')"
)


def open_with(mode: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPUVEC_DEVICE": mode, "GPUVEC_DASHBOARD_ADDRESS": ""}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_gpu_requested_is_checked_at_open(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    got = open_with("gpu", folder)
    reason = gpu_unavailable_reason()
    if reason is None:  # a usable GPU here: it opens on it
        assert got.returncode == 0 and "opened" in got.stdout, got.stderr
        return
    assert got.returncode != 0
    assert "DeviceUnavailableError" in got.stderr
    assert "GPUVEC_DEVICE=gpu but the GPU backend is unavailable" in got.stderr
    assert not folder.exists()  # refused before anything was written


def test_cpu_opens_and_a_misspelt_mode_is_named(tmp_path: Path) -> None:
    ok = open_with("cpu", tmp_path / "a")
    assert ok.returncode == 0 and "opened" in ok.stdout, ok.stderr
    bad = open_with("tpu", tmp_path / "b")
    assert bad.returncode != 0 and "GPUVEC_DEVICE='tpu' is not one of" in bad.stderr
