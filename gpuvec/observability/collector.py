"""Gauges computed at scrape time from the runtimes live in this process (the weak registry
of :mod:`.engines`): nothing here runs on the request path.

:class:`EngineCollector` reads, per scrape,

* segments — count, bytes and rows by collection, state (``growing`` / ``sealed``) and
  device (``gpu`` / ``host``): an embedded ``Engine``'s shards and query node, a cluster
  streaming node's shards and handed-off segments, a cluster query node's segments;
* GPU memory — bytes pinned by residency and its budget (only once the backend chose a
  GPU; a scrape never initialises the device), and the device's total and free memory;
* GPU utilisation and memory per visible device, from NVML (:mod:`.nvml`; nothing without
  a GPU or driver): in every process that registers the collector, data-node workers too;
* consumer lag — for each channel a cluster query node tails, the Kafka offsets between its
  read position and the high watermark its consumer last saw (no broker call).

A cluster proxy's ``ClusterEngine`` holds no segments, so it adds nothing here. The
collector is registered once per process (:func:`register_collector`, idempotent); every
family is described even when no runtime is live, so the exported names are fixed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gpuvec.observability import engines
from gpuvec.observability.metrics import NODE_ID

log = logging.getLogger(__name__)

SEGMENT_LABELS = ["node_id", "collection_name", "segment_state", "device"]

# name → (help, labels); the order of yield
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "gpuvec_querynode_segment_num": (
        "Segments held, by collection, state (growing / sealed) and device (gpu / host)",
        SEGMENT_LABELS,
    ),
    "gpuvec_querynode_segment_bytes": (
        "Bytes of the segments held (vectors, keys, timestamps, scalar rows)",
        SEGMENT_LABELS,
    ),
    "gpuvec_querynode_entity_num": (
        "Rows held in segments (deleted rows included until compacted), by collection and state",
        ["node_id", "collection_name", "segment_state"],
    ),
    "gpuvec_querynode_gpu_memory_used_bytes": (
        "Bytes of sealed segments pinned in GPU memory by residency (0 without a GPU)",
        ["node_id"],
    ),
    "gpuvec_querynode_gpu_memory_budget_bytes": (
        "GPU memory budget of residency (present only when a GPU is in use)",
        ["node_id"],
    ),
    "gpuvec_gpu_memory_total_bytes": (
        "Total memory of the GPU in use (present only when a GPU is in use)",
        ["node_id", "device"],
    ),
    "gpuvec_gpu_memory_free_bytes": (
        "Free memory of the GPU in use, CuPy's unused pool included",
        ["node_id", "device"],
    ),
    "gpuvec_gpu_utilization_percent": (
        "Percent of time a kernel ran on each visible GPU (NVML; absent without a GPU)",
        ["node_id", "gpu", "name"],
    ),
    "gpuvec_gpu_device_memory_used_bytes": (
        "Memory used on each visible GPU by every process (NVML; absent without a GPU)",
        ["node_id", "gpu", "name"],
    ),
    "gpuvec_gpu_device_memory_total_bytes": (
        "Memory of each visible GPU (NVML; absent without a GPU)",
        ["node_id", "gpu", "name"],
    ),
    "gpuvec_querynode_consumer_lag": (
        "Kafka offsets a cluster query node's channel tail is behind the last high watermark",
        ["node_id", "channel"],
    ),
}


class _Sink:
    """Gauge families being filled during one scrape."""

    def __init__(self) -> None:
        self.fam = {n: GaugeMetricFamily(n, h, labels=lb) for n, (h, lb) in FAMILIES.items()}
        self.segs: dict[tuple[str, str, str], list[int]] = {}  # (coll, state, device) → n, b, rows

    def segment(self, collection: str, state: str, seg: Any) -> None:
        device = "gpu" if getattr(seg, "on_device", False) else "host"
        acc = self.segs.setdefault((collection, state, device), [0, 0, 0])
        acc[0] += 1
        acc[1] += int(seg.nbytes())
        acc[2] += int(seg.n)

    def add(self, name: str, labels: list[str], value: float) -> None:
        self.fam[name].add_metric(labels, value)

    def families(self) -> Iterator[GaugeMetricFamily]:
        rows: dict[tuple[str, str], int] = {}
        for (coll, state, device), (n, nbytes, nrows) in sorted(self.segs.items()):
            self.add("gpuvec_querynode_segment_num", [NODE_ID, coll, state, device], n)
            self.add("gpuvec_querynode_segment_bytes", [NODE_ID, coll, state, device], nbytes)
            rows[(coll, state)] = rows.get((coll, state), 0) + nrows
        for (coll, state), nrows in sorted(rows.items()):
            self.add("gpuvec_querynode_entity_num", [NODE_ID, coll, state], nrows)
        yield from self.fam.values()


def _sealed(sink: _Sink, query: Any, names: dict[int, str]) -> None:
    """Sealed segments of a ``QueryNode``; collections without a name are skipped."""
    for cid, segs in query.held().items():
        name = names.get(cid)
        if name is not None:
            for seg in segs:
                sink.segment(name, "sealed", seg)


def _growing(sink: _Sink, shards: Iterable[Any]) -> None:
    for shard in shards:
        for seg in list(shard.growing.values()):
            if seg.n:
                sink.segment(shard.meta.name, "growing", seg)


def _read_runtime(sink: _Sink, obj: Any, residencies: list[Any]) -> None:
    """Whatever segments and tails one runtime holds (duck-typed on its attributes)."""
    collections = getattr(obj, "collections", None)
    query = getattr(obj, "query", None)
    if isinstance(collections, dict):  # embedded Engine
        colls = list(collections.values())
        _growing(sink, (shard for c in colls for shard in c.shards))
        if query is not None:
            _sealed(sink, query, {c.meta.id: c.meta.name for c in colls})
    elif isinstance(getattr(obj, "metas", None), dict) and query is not None:  # query node
        _sealed(sink, query, {cid: m.name for cid, m in list(obj.metas.items())})
        for channel, tail in list(getattr(obj, "tails", {}).items()):
            lag = getattr(tail.reader, "cached_lag", None)
            value = lag() if lag is not None else None
            if value is not None:
                sink.add("gpuvec_querynode_consumer_lag", [NODE_ID, channel], value)
    if isinstance(getattr(obj, "shards", None), dict):  # streaming node
        shards = list(obj.shards.values())
        _growing(sink, shards)
        names = {s.channel: s.meta.name for s in shards}
        for channel, held in list(getattr(obj, "handoff", {}).items()):
            for seg in list(held.values()):
                sink.segment(names.get(channel, channel), "sealed", seg)
    residency = getattr(query, "residency", None)
    if residency is not None and hasattr(residency, "used"):
        residencies.append(residency)


def _gpu(sink: _Sink, residencies: list[Any]) -> None:
    from gpuvec import ops
    from gpuvec.ops.backend import resolved_gpu

    if residencies:
        used = sum(int(r.used) for r in residencies)
        sink.add("gpuvec_querynode_gpu_memory_used_bytes", [NODE_ID], used)
    if not resolved_gpu():
        return
    if residencies:
        budget = sum(int(r.budget) for r in residencies)
        sink.add("gpuvec_querynode_gpu_memory_budget_bytes", [NODE_ID], budget)
    free, total = ops.device_memory()
    device = ops.backend_name()
    sink.add("gpuvec_gpu_memory_total_bytes", [NODE_ID, device], total)
    sink.add("gpuvec_gpu_memory_free_bytes", [NODE_ID, device], free)


def _nvml(sink: _Sink) -> None:
    from gpuvec.observability.nvml import gpus

    for dev in gpus()[0]:
        labels = [NODE_ID, str(dev["index"]), dev["name"]]
        if dev["utilization"] is not None:
            sink.add("gpuvec_gpu_utilization_percent", labels, dev["utilization"])
        sink.add("gpuvec_gpu_device_memory_used_bytes", labels, dev["memory_used"])
        sink.add("gpuvec_gpu_device_memory_total_bytes", labels, dev["memory_total"])


class EngineCollector(Collector):
    """The scrape-time gauges of the live runtimes (see the module docstring)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _Sink().fam.values()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sink, residencies = _Sink(), []
        for obj in [*engines.live(), *engines.live_nodes()]:
            try:
                _read_runtime(sink, obj, residencies)
            except Exception:  # a runtime closing under the scrape: skip it this time
                log.debug("metrics of %r skipped", obj, exc_info=True)
        try:
            _gpu(sink, residencies)
        except Exception:
            log.debug("GPU memory metrics skipped", exc_info=True)
        _nvml(sink)
        yield from sink.families()


_COLLECTOR: EngineCollector | None = None
_REG_LOCK = threading.Lock()


def register_collector(registry: Any = REGISTRY) -> EngineCollector:
    """Register the collector in ``registry`` once per process; return it."""
    global _COLLECTOR
    with _REG_LOCK:
        if _COLLECTOR is None:
            collector = EngineCollector()
            registry.register(collector)
            _COLLECTOR = collector
        return _COLLECTOR
