"""Smoke run of ``bench/import.py``: every method reports a positive rows/s or an
explicit skip reason, and the JSON and PNG are written where ``--out`` says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rich")
pytest.importorskip("matplotlib")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "import.py"
METHODS = (
    "import_parquet",
    "import_parquet_hnsw",
    "import_numpy",
    "insert_rows",
    "insert_columns",
    "milvus_lite_insert",
    "raw_disk_write",
)


@pytest.mark.timeout(120)
def test_import_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, str(BENCH), "--rows", "5000", "--quick", "--out", str(out)]
    cmd += ["--work-dir", str(tmp_path / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads((out / "import.json").read_text())
    assert (out / "import.png").stat().st_size > 0
    assert res["rows"] == 5000
    for key in METHODS:
        v = res["methods"][key]
        if isinstance(v, str):
            assert v.startswith(("skipped", "not supported")), (key, v)
        else:
            assert v["rows_s"] > 0 and v["vector_MBps"] > 0, (key, v)
    for key in ("import_parquet", "import_parquet_hnsw", "import_numpy", "insert_rows"):
        assert isinstance(res["methods"][key], dict), (key, res["methods"][key])
    assert res["methods"]["import_parquet_hnsw"]["index_state"] == "Finished"
