"""Text formatting for the ``/gpuvec`` dashboard page (:mod:`.dashboard`): its tables'
columns, byte sizes, times, progress bars, the page header and one-line statuses."""

from __future__ import annotations

import html
import math
from typing import Any

# table → ([(column, title, width px)], most rows shown before it scrolls)
TABLES: dict[str, tuple[list[tuple[str, str, int]], int]] = {
    "collections": (
        [("name", "collection", 180), ("rows", "rows", 110), ("growing", "growing segs", 90),
         ("sealed", "sealed segs", 90), ("indexed", "indexed", 80), ("index", "index", 260),
         ("load_state", "load state", 100)],
        6,
    ),
    "builds": (
        [("status", "build", 240), ("progress", "progress", 120),
         ("collection", "collection", 110), ("segment", "segment", 70), ("field", "field", 70),
         ("index_type", "type", 70), ("elapsed", "time", 60)],
        8,
    ),
    "compactions": (
        [("status", "compaction", 220), ("progress", "progress", 100),
         ("collection", "collection", 110), ("elapsed", "time", 60)],
        8,
    ),
    "imports": (
        [("status", "import job", 300), ("progress", "progress", 100),
         ("collection", "collection", 110), ("elapsed", "time", 60)],
        6,
    ),
    "segments": (
        [("collection", "collection", 180), ("segment", "segment", 110), ("state", "state", 80),
         ("where", "lives on", 110), ("rows", "rows", 110), ("bytes", "bytes", 110)],
        8,
    ),
    "requests": (
        [("function", "function", 160), ("count", "total", 90), ("rate", "req/s", 90),
         ("errors", "errors/s", 90), ("p50", "p50 ms", 90), ("p99", "p99 ms", 90)],
        6,
    ),
    "query_nodes": (
        [("node_id", "query node", 300), ("gpu_segments", "on GPU", 70),
         ("gpu_bytes", "GPU bytes", 100), ("host_segments", "on host", 70),
         ("host_bytes", "host bytes", 100), ("memory", "GPU memory", 420)],
        6,
    ),
    "channels": (
        [("channel", "WAL channel", 150), ("collection", "collection", 150),
         ("owner", "streaming node", 300), ("position", "position", 90),
         ("unsealed", "unsealed", 90), ("growing_rows", "growing rows", 100),
         ("lag", "query node lag", 110)],
        8,
    ),
    "workers": (
        [("worker", "data node (Dask worker)", 260), ("threads", "threads", 60),
         ("tasks", "tasks (gpuvec)", 100), ("cpu", "CPU", 60), ("memory", "memory", 90),
         ("gpu", "GPU", 560)],
        8,
    ),
}  # fmt: skip


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _ms(seconds: float | None) -> float:
    return math.nan if seconds is None else seconds * 1e3


def _elapsed(job: dict[str, Any], now: float) -> str:
    start = job.get("started")
    if not start:
        return ""
    return f"{(job.get('ended') or now) - start:.1f} s"


def _bar(fraction: float | None) -> float:
    return 0.0 if fraction is None else round(100.0 * fraction, 1)


def device_html(device: dict[str, Any] | None, engines: list[str]) -> str:
    """The page header: where the data lives and the GPU memory in use (or why none)."""
    where = html.escape(", ".join(engines)) if engines else "the cluster catalog (etcd)"
    head = f"<h2 style='margin:4px 0'>gpuvec</h2><div>serving {where}</div>"
    if device is None:
        return head + "<div>GPU residency: per query node, from their reports (below)</div>"
    if not device["gpu"]:
        return head + (
            "<div style='padding:6px;margin-top:4px;background:#fff3cd;border:1px solid #e0c36c'>"
            f"<b>no GPU</b>: searches run on {html.escape(device['backend'])} "
            f"({html.escape(device['reason'])}); every segment lives in host memory</div>"
        )
    used, budget = device["used"], max(device["budget"], 1)
    pct = min(100.0, 100.0 * used / budget)
    return head + (
        f"<div><b>GPU</b> {html.escape(device['backend'])}: {human_bytes(used)} of "
        f"{human_bytes(device['budget'])} budget pinned ({pct:.0f}%), device "
        f"{human_bytes(device['total'])}, {human_bytes(device['free'])} free</div>"
        "<div style='width:600px;height:14px;background:#ddd;border:1px solid #999'>"
        f"<div style='width:{pct:.1f}%;height:100%;background:#4c9a2a'></div></div>"
        + nvml_line(device.get("nvml") or [])
    )


def node_counts(nodes: list[dict[str, Any]]) -> str:
    """``nodes reporting: 2 querynode, 1 streamingnode, 1 proxy · `` (empty without)."""
    roles: dict[str, int] = {}
    for n in nodes:
        roles[n["role"]] = roles.get(n["role"], 0) + 1
    return ("nodes reporting: " + ", ".join(f"{k} {r}" for r, k in sorted(roles.items()))
            + " · ") if roles else ""  # fmt: skip


def gpu_memory(q: dict[str, Any]) -> str:
    """A query node's GPU memory: used of budget, device free / total, or why no GPU."""
    if not q.get("gpu"):
        return f"no GPU: {q.get('reason') or '?'} ({q.get('backend') or 'backend unset'})"
    return (f"{human_bytes(q['used'])} of {human_bytes(q['budget'])} budget · device "
            f"{human_bytes(q['free'])} free of {human_bytes(q['total'])}")  # fmt: skip


def build_status(build: dict[str, Any]) -> str:
    """One line per build: ``Running 45% (13,500 / 30,000 rows)``, ``Finished …``."""
    rows = build.get("rows") or 0
    if build["state"] == "Running":
        done = build.get("done_rows") or 0
        pct = 100.0 * (build.get("progress") or 0.0)
        return f"Running {pct:.0f}% ({done:,} / {rows:,} rows)"
    if build["state"] == "Failed":
        return f"Failed: {build.get('error') or 'see the data node logs'}"
    return f"Finished ({rows:,} rows)"


def worker_gpu(w: dict[str, Any]) -> str:
    """A data node's GPU: ``NVIDIA H100: 37% busy · 1.2 GiB of 80.0 GiB``, or why none."""
    gpu = w.get("gpu")
    if not gpu:
        return "no GPU (Dask's NVML sampling sees no NVIDIA device on this worker)"
    util = gpu.get("utilization")
    busy = "utilisation –" if util is None else f"{util:.0f}% busy"
    return (f"{html.escape(str(gpu['name']))}: {busy} · {human_bytes(gpu.get('memory_used'))}"
            f" of {human_bytes(gpu.get('memory_total'))}")  # fmt: skip


def nvml_line(devices: list[dict[str, Any]]) -> str:
    """The embedded page's line of NVML figures per visible GPU (empty without)."""
    return "".join(
        f"<div>GPU {d['index']} {html.escape(d['name'])}: "
        f"{'–' if d['utilization'] is None else str(d['utilization']) + '%'} busy, "
        f"{human_bytes(d['memory_used'])} of {human_bytes(d['memory_total'])} used "
        "(all processes, NVML)</div>"
        for d in devices
    )


def import_status(job: dict[str, Any]) -> str:
    """``#12 Importing 45% (4,500 / 10,000 rows)``, ``#12 Failed: <reason>``, …"""
    head = f"#{job['job']} {job['state']}"
    if job["state"] == "Failed":
        return f"{head}: {job.get('reason') or '?'}"
    return f"{head} {100 * job['progress']:.0f}% ({job['rows']:,} / {job['total_rows']:,} rows)"
