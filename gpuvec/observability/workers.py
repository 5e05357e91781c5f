"""The Dask workers (gpuvec's data nodes) as the ``/gpuvec`` page lists them: what each is
running, its CPU and memory, and its GPU's utilisation and memory — or why it has none.

Everything comes from the scheduler's ``WorkerState`` records, which the workers' heartbeats
fill: Dask samples NVML on each worker (``pynvml``, a gpuvec dependency) and sends
``metrics["gpu"]`` (``utilization``, ``memory-used``) with ``extra["gpu"]`` (``name``,
``memory-total``) from its start. A worker without those has no GPU Dask can see (no
NVIDIA driver or device), and the page says so. :func:`worker_rows` must run on the
scheduler's event loop (it reads scheduler state); it is cheap.
"""

from __future__ import annotations

from typing import Any

GPU_TASK_PREFIXES = ("gpuvec-build-index-", "gpuvec-compact-")


def _gpu(ws: Any) -> dict[str, Any] | None:
    metrics = getattr(ws, "metrics", {}) or {}
    live = metrics.get("gpu") if isinstance(metrics.get("gpu"), dict) else {}
    startup = (getattr(ws, "extra", {}) or {}).get("gpu") or {}
    util = live.get("utilization", metrics.get("gpu_utilization"))
    used = live.get("memory-used", metrics.get("gpu_memory_used"))
    total = startup.get("memory-total", metrics.get("gpu-memory-total"))
    if util is None and used is None and not startup:
        return None
    return {"name": startup.get("name") or "GPU", "utilization": util, "memory_used": used,
            "memory_total": total}  # fmt: skip


def worker_rows(scheduler: Any) -> list[dict[str, Any]]:
    """One dict per worker: ``worker`` (name), ``address``, ``threads``, ``processing``
    (tasks assigned now), ``gpuvec_tasks`` (of them, gpuvec builds and compactions),
    ``cpu`` (percent), ``memory`` (bytes, the worker process), ``resources``, and ``gpu``
    (``{name, utilization, memory_used, memory_total}`` or None)."""
    rows = []
    for ws in list(scheduler.workers.values()):
        metrics = getattr(ws, "metrics", {}) or {}
        processing = [str(getattr(ts, "key", ts)) for ts in list(ws.processing)]
        rows.append({
            "worker": str(ws.name if ws.name is not None else ws.address),
            "address": str(ws.address), "threads": int(ws.nthreads),
            "processing": len(processing),
            "gpuvec_tasks": sum(k.startswith(GPU_TASK_PREFIXES) for k in processing),
            "cpu": metrics.get("cpu"), "memory": metrics.get("memory"),
            "resources": dict(getattr(ws, "resources", {}) or {}), "gpu": _gpu(ws),
        })  # fmt: skip
    rows.sort(key=lambda r: r["worker"])
    return rows
