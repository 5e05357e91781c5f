"""GPU and data-node observability without a GPU here: NVML sampling (the real "no NVML"
path of this machine, and a stand-in ``pynvml`` module with two devices), its gauges on
``/metrics``, the data nodes' task metrics, the page's data-node rows from Dask's worker
states, and the active coordinator's build failures as a proxy reads them from meta."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.coord.indexing import IndexBuilder
from gpuvec.observability import nvml, reports
from gpuvec.observability.collector import EngineCollector
from gpuvec.observability.datanode import observe_task
from gpuvec.observability.metrics import NODE_ID
from gpuvec.observability.pageformat import device_html, worker_gpu
from gpuvec.observability.workers import worker_rows
from gpuvec.storage.meta.sqlite import SqliteMetaStore


class FakeNVML:
    """The slice of ``pynvml`` that :mod:`gpuvec.observability.nvml` calls: two devices,
    the second without utilisation counters (as a MIG instance)."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100 80GB HBM3" if h == 0 else b"NVIDIA H100 MIG 1g.10gb"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        if h == 1:
            raise self.NVMLError("Not Supported")
        return SimpleNamespace(gpu=37, memory=12)


@pytest.fixture
def fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """NVML's per-process state forgotten before and after the test."""
    monkeypatch.setattr(nvml, "_state", {"pid": None, "nvml": None, "reason": None})
    yield
    nvml._state.update(pid=None)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch, fresh_nvml: None) -> FakeNVML:
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def _samples(name: str) -> list[Any]:
    return [s for f in EngineCollector().collect() for s in f.samples if s.name == name]


def test_without_a_driver_nvml_says_why_and_exports_nothing(fresh_nvml: None) -> None:
    devices, reason = nvml.gpus()
    try:
        import pynvml

        pynvml.nvmlInit()
        pytest.skip("this machine has an NVIDIA driver: the no-driver path cannot be shown")
    except ImportError:
        assert reason == "pynvml is not installed"
    except Exception:
        assert devices == [] and reason and reason.startswith("NVML unavailable"), reason
    assert _samples("gpuvec_gpu_utilization_percent") == []
    assert nvml.gpus() == (devices, reason)  # remembered, not retried per call


def test_nvml_devices_and_their_gauges(fake_nvml: FakeNVML) -> None:
    devices, reason = nvml.gpus()
    assert reason is None
    assert devices == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "utilization": 37,
         "memory_used": 2**30, "memory_total": 80 * 2**30},
        {"index": 1, "name": "NVIDIA H100 MIG 1g.10gb", "utilization": None,
         "memory_used": 2 * 2**30, "memory_total": 80 * 2**30},
    ]  # fmt: skip
    util = _samples("gpuvec_gpu_utilization_percent")
    assert [(s.labels, s.value) for s in util] == [
        ({"node_id": NODE_ID, "gpu": "0", "name": "NVIDIA H100 80GB HBM3"}, 37.0)
    ]  # the MIG instance has no utilisation sample, only memory
    used = {s.labels["gpu"]: s.value for s in _samples("gpuvec_gpu_device_memory_used_bytes")}
    assert used == {"0": float(2**30), "1": float(2 * 2**30)}


@pytest.mark.parametrize(
    ("visible", "indexes"), [("1", [1]), ("1,0", [1, 0]), ("0,-1,1", [0]), ("", []),
                             ("GPU-6b2f", [0, 1]), ("5", [])],
)  # fmt: skip
def test_nvml_follows_cuda_visible_devices(
    fake_nvml: FakeNVML, monkeypatch: pytest.MonkeyPatch, visible: str, indexes: list[int]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    devices, reason = nvml.gpus()
    assert [d["index"] for d in devices] == indexes
    assert (reason is None) == bool(indexes)


def test_embedded_header_shows_nvml_figures() -> None:
    device = {"gpu": True, "backend": "cuda:0", "reason": None, "used": 2**30,
              "budget": 4 * 2**30, "total": 80 * 2**30, "free": 70 * 2**30,
              "nvml": [{"index": 0, "name": "NVIDIA H100", "utilization": 42,
                        "memory_used": 10 * 2**30, "memory_total": 80 * 2**30}]}  # fmt: skip
    text = device_html(device, ["/data/db"])
    assert "GPU 0 NVIDIA H100: 42% busy, 10.0 GiB of 80.0 GiB used" in text
    assert "1.0 GiB of 4.0 GiB budget pinned (25%)" in text


def _ws(name: str, metrics: dict[str, Any], extra: dict[str, Any], keys: list[str]) -> Any:
    return SimpleNamespace(name=name, address=f"tcp://127.0.0.1:{len(name)}", nthreads=2,
                           metrics=metrics, extra=extra, resources={"GPU": 1},
                           processing=[SimpleNamespace(key=k) for k in keys])  # fmt: skip


def test_data_node_rows_from_dask_worker_states() -> None:
    scheduler = SimpleNamespace(workers={
        "a": _ws("gpu-worker", {"cpu": 93.0, "memory": 2**31,
                                "gpu": {"utilization": 81, "memory-used": 5 * 2**30}},
                 {"gpu": {"name": "NVIDIA H100", "memory-total": 80 * 2**30}},
                 ["gpuvec-build-index-7-vector-abc", "other-task"]),
        "b": _ws("cpu-worker", {"cpu": 3.0, "memory": 2**28}, {}, []),
        "c": _ws("monitor-style", {"gpu_utilization": 5, "gpu_memory_used": 2**30,
                                   "gpu-memory-total": 16 * 2**30}, {}, []),
    })  # fmt: skip
    rows = {r["worker"]: r for r in worker_rows(scheduler)}
    gpu = rows["gpu-worker"]
    assert (gpu["processing"], gpu["gpuvec_tasks"], gpu["threads"]) == (2, 1, 2)
    assert worker_gpu(gpu) == "NVIDIA H100: 81% busy · 5.0 GiB of 80.0 GiB"
    assert rows["cpu-worker"]["gpu"] is None
    assert worker_gpu(rows["cpu-worker"]).startswith("no GPU")
    assert worker_gpu(rows["monitor-style"]) == "GPU: 5% busy · 1.0 GiB of 16.0 GiB"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"node_id": NODE_ID, **labels}) or 0.0


def test_data_node_task_metrics_count_outcomes_and_rows() -> None:
    ok = "gpuvec_datanode_task_latency_seconds_count"
    ok0, fail0 = _value(ok, task_type="t", status="success"), _value(ok, task_type="t",
                                                                     status="fail")  # fmt: skip
    rows0 = _value("gpuvec_datanode_task_rows_total", task_type="t")
    with observe_task("t") as done:
        done["rows"] = 120
    with pytest.raises(RuntimeError, match="boom"), observe_task("t") as done:
        done["rows"] = 99
        raise RuntimeError("boom")
    assert _value(ok, task_type="t", status="success") == ok0 + 1
    assert _value(ok, task_type="t", status="fail") == fail0 + 1
    assert _value("gpuvec_datanode_task_rows_total", task_type="t") == rows0 + 120


def test_an_embedded_build_runs_through_the_data_node_metrics(tmp_path: Path) -> None:
    before = _value("gpuvec_datanode_task_rows_total", task_type="index_build")
    cfg = Config(dashboard_address="", datanode_processes=False, index_min_rows=100)
    client = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = client.prepare_index_params()
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
        client.create_collection("c", dimension=4, index_params=idx)
        vec = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
        client.insert("c", [{"id": i, "vector": vec[i]} for i in range(300)])
        client.flush("c")
        client.wait_for_index("c", timeout=120)
    finally:
        client.close()
    assert _value("gpuvec_datanode_task_rows_total", task_type="index_build") == before + 300


def test_a_proxy_reads_build_failures_from_the_coordinator_report(tmp_path: Path) -> None:
    meta = SqliteMetaStore(tmp_path / "m.db")
    try:
        # only its failure records are used: no catalog, data nodes or store behind it
        builder = IndexBuilder(catalog=None, runtime=None, store=None, on_built=print)  # type: ignore[arg-type]
        key = IndexBuilder.key(42, "vector", "abc")
        builder._fail(key, "out of GPU memory")
        coordinator = SimpleNamespace(role="coordinator", node_id="coord-1", indexer=builder,
                                      compactor=None)  # fmt: skip
        failures = reports.BuildFailures(meta, max_age=0.0)
        assert failures.reason(key) is None  # no report yet
        assert reports.write_report(meta, coordinator, lease=0)
        assert failures.reason(key) == "out of GPU memory"
        assert failures.reason(IndexBuilder.key(43, "vector", "abc")) is None
        builder.failed.clear()  # rebuilt since: the next report drops it
        assert reports.write_report(meta, coordinator, lease=0)
        assert failures.reason(key) is None
        cached = reports.BuildFailures(meta, max_age=3600.0)
        assert cached.reason(key) is None
        builder._fail(key, "again")
        reports.write_report(meta, coordinator, lease=0)
        assert cached.reason(key) is None  # read at most once per max_age
    finally:
        meta.close()
