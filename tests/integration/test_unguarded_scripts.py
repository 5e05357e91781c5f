"""The embedded client in users' code as it is: scripts without an ``if __name__ ==
"__main__":`` guard, run as a file, with ``python -c`` and from stdin, build an index on
the data nodes and search it — with the default thread workers and with worker programs
(``GPUVEC_DATANODE_PROCESSES=1``), neither of which may re-run the user's script. A
``kill -9`` of the embedding process leaves no worker process behind, and a build that
fails is reported as ``Failed`` with its reason while searches keep answering.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import IndexBuildError

# the user code both scripts share: an index built on the data nodes
BUILD = """
idx = client.prepare_index_params()
idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
client.create_collection("docs", dimension=16, index_params=idx)
vec = np.random.default_rng(0).standard_normal((3000, 16)).astype("float32")
client.insert("docs", [{"id": i, "vector": vec[i]} for i in range(3000)])
client.flush("docs")
client.wait_for_index("docs", timeout=120)
"""

SCRIPT = (
    """
import json, sys
import numpy as np
from gpuvec import MilvusClient

print("script body ran", flush=True)  # a re-imported __main__ would print this twice
client = MilvusClient(sys.argv[1] if len(sys.argv) > 1 else __DIR__)
"""
    + BUILD
    + """info = client.describe_index("docs", "vector")
hits = client.search("docs", data=[vec[42]], limit=1)
print("RESULT " + json.dumps({"state": info["state"], "indexed": info["indexed_segments"],
      "sealed": info["sealed_segments"], "top": hits[0][0]["id"]}), flush=True)
client.close()
"""
)


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, GPUVEC_DASHBOARD_ADDRESS="", GPUVEC_INDEX_MIN_ROWS="256", **extra)


def _result(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, out[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("how", ["file", "-c", "stdin"])
@pytest.mark.parametrize("processes", ["0", "1"])
def test_unguarded_script_builds_its_index_and_searches(
    tmp_path: Path, how: str, processes: str
) -> None:
    data = tmp_path / "data"
    text = SCRIPT.replace("__DIR__", repr(str(data)))
    env = _env(GPUVEC_DATANODE_PROCESSES=processes)
    if how == "file":
        script = tmp_path / "example.py"
        script.write_text(text)
        cmd, stdin = [sys.executable, str(script)], None
    elif how == "-c":
        cmd, stdin = [sys.executable, "-c", text], None
    else:
        cmd, stdin = [sys.executable, "-"], text
    proc = subprocess.run(
        cmd, input=stdin, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count("script body ran") == 1, "the user's script ran more than once"
    got = _result(out)
    assert got["state"] == "Finished" and got["indexed"] == got["sealed"] >= 1, got
    assert got["top"] == 42
    client = MilvusClient(str(data), config=Config(dashboard_address="", index_min_rows=256))
    try:  # the data directory is intact
        rows = client.query("docs", filter="id >= 0", output_fields=["count(*)"])
        assert rows[0]["count(*)"] == 3000
    finally:
        client.close()


HOLD = (
    """
import sys, time
import numpy as np
from gpuvec import MilvusClient
client = MilvusClient(sys.argv[1])
"""
    + BUILD
    + """print("READY", flush=True)
time.sleep(600)
"""
)


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``tag`` (the script and anything it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_kill_9_of_the_embedding_process_leaves_no_worker(tmp_path: Path) -> None:
    tag = f"GPUVEC_TEST_TAG={uuid.uuid4().hex}"
    key, value = tag.split("=")
    log = tmp_path / "hold.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(tmp_path / "data")],
            env=_env(GPUVEC_DATANODE_PROCESSES="1", **{key: value}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while "READY" not in log.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    workers = [p for p in _tagged(tag) if p != proc.pid]
    assert workers, "the data-node worker programs should be running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _tagged(tag) == [], "worker processes outlived the embedding process"


def test_a_failed_build_is_reported_and_searches_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gpuvec.coord.indexing as indexing

    def broken(*args: object) -> None:
        raise RuntimeError("the build ran out of patience")

    monkeypatch.setattr(indexing, "build_index_task", broken)
    client = MilvusClient(
        str(tmp_path / "db"), config=Config(dashboard_address="", index_min_rows=256)
    )
    try:
        idx = client.prepare_index_params()
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
        client.create_collection("docs", dimension=8, index_params=idx)
        vec = np.random.default_rng(1).standard_normal((1000, 8)).astype(np.float32)
        client.insert("docs", [{"id": i, "vector": vec[i]} for i in range(1000)])
        with caplog.at_level(logging.WARNING, logger="gpuvec.coord.indexing"):
            client.flush("docs")
            with pytest.raises(IndexBuildError, match="ran out of patience"):
                client.wait_for_index("docs", timeout=60)
            info = client.describe_index("docs", "vector")
            assert info["state"] == "Failed"
            assert "ran out of patience" in info["index_state_fail_reason"]
            time.sleep(2.5)  # more scans of the data-node duties: no retry storm, one log
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        hits = client.search("docs", data=[vec[7]], limit=1)  # brute force still answers
        assert hits[0][0]["id"] == 7
    finally:
        client.close()


FULLTEXT = """
import json, sys
from pymilvus import Function, FunctionType
from gpuvec import DataType, MilvusClient

client = MilvusClient(sys.argv[1])
schema = client.create_schema()
schema.add_field("id", DataType.INT64, is_primary=True)
schema.add_field("text", DataType.VARCHAR, max_length=200, enable_analyzer=True,
                 analyzer_params={"type": "english"}, enable_match=True)
schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                             input_field_names=["text"], output_field_names=["sparse"]))
idx = client.prepare_index_params()
idx.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
client.create_collection("docs", schema=schema, index_params=idx)
words = "turing machine enigma cipher london research logic proof".split()
rows = [{"id": i, "text": " ".join(words[(i * k) % 8] for k in range(1, 5))} for i in range(400)]
rows.append({"id": 999, "text": "Zebras crossing the savanna"})
client.insert("docs", rows)
client.flush("docs")
client.wait_for_index("docs", timeout=120)
info = client.describe_index("docs", "sparse")
hits = client.search("docs", data=["zebra"], anns_field="sparse", limit=3)
matched = client.query("docs", filter="text_match(text, 'savanna')", output_fields=["id"])
print("RESULT " + json.dumps({"state": info["state"], "indexed": info["indexed_segments"],
      "top": [h["id"] for h in hits[0]], "matched": [r["id"] for r in matched]}), flush=True)
client.close()
"""


@pytest.mark.parametrize("processes", ["0", "1"])
def test_fulltext_script_with_python_c(tmp_path: Path, processes: str) -> None:
    """A BM25 full-text script as ``python -c``, its sparse index built on the data nodes
    (thread workers, or worker programs that must not re-run the script)."""
    env = _env(GPUVEC_DATANODE_PROCESSES=processes)
    proc = subprocess.run([sys.executable, "-c", FULLTEXT, str(tmp_path / "data")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    got = _result(out)
    assert got["state"] == "Finished" and got["indexed"] >= 1, got
    assert got["top"] == [999] and got["matched"] == [999], got
