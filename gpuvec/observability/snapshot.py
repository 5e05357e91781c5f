"""What the gpuvec dashboard page shows, gathered as plain data (no bokeh here).

:func:`snapshot` returns one dict, built from whatever this process can see:

* **engines** (embedded :class:`~gpuvec.cluster.embedded.Engine` objects, normally
  :func:`gpuvec.observability.engines.live`): collections with their rows, growing and
  sealed segment counts, indexed fraction and load state; every segment with where it lives
  (GPU or host) and its bytes; GPU memory used against the residency budget; the index
  builds and compactions the engine ran lately;
* **catalogs** (:class:`~gpuvec.coord.catalog.Catalog` objects; the cluster scheduler's page
  reads the catalog in etcd): collections and sealed segments as committed in meta;
* **events**: the index-build progress events the data-node tasks log on the Dask scheduler
  (:data:`gpuvec.datanode.tasks.PROGRESS_TOPIC`), for per-batch progress of running builds;
* **meter**: a :class:`RequestMeter`, which turns the request metrics in prometheus_client's
  registry (``gpuvec_proxy_req_count``, ``gpuvec_proxy_req_latency_seconds``) into rates and
  p50 / p99 latencies between two successive calls.

Every part degrades to an empty list (or ``None``) when its source is missing, so the page
renders before the first collection, build or request.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from typing import Any

from gpuvec.coord.indexing import NO_BUILD, index_id

REQUESTS_METRIC = "gpuvec_proxy_req_count"
LATENCY_METRIC = "gpuvec_proxy_req_latency_seconds"
BUILD_PREFIX = "gpuvec-build-index-"
COMPACT_PREFIX = "gpuvec-compact-"


# --- devices ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _no_gpu_reason() -> str:
    from gpuvec.ops.backend import gpu_unavailable_reason

    return gpu_unavailable_reason() or "GPUVEC_DEVICE=cpu"


def device_state(residencies: Iterable[Any] = ()) -> dict[str, Any]:
    """The search backend and GPU memory: ``gpu`` (bool), ``backend`` (``cuda:…`` or
    ``cpu:numpy``), ``reason`` (why there is no GPU, else None), ``used`` and ``budget``
    (bytes of sealed segments pinned on the device, summed over ``residencies``),
    ``total`` and ``free`` (device memory; None without a GPU)."""
    from gpuvec import ops

    gpu = ops.is_gpu()
    out: dict[str, Any] = {"gpu": gpu, "backend": ops.backend_name(),
                           "reason": None if gpu else _no_gpu_reason(),
                           "used": 0, "budget": 0, "total": None, "free": None}  # fmt: skip
    for res in residencies:
        out["used"] += int(res.used)
        out["budget"] += int(res.budget) if gpu else 0
    if gpu:
        out["free"], out["total"] = ops.device_memory()
    return out


# --- collections and segments -------------------------------------------------------------
def indexed_fraction(
    meta: Any, segments: list[Any], built: dict[tuple[int, str], dict[str, Any]], min_rows: int
) -> float | None:
    """Share of the committed sealed rows that every index definition of ``meta`` serves
    (as ``describe_index``'s progress counts: segments below ``min_rows`` and types without a
    build count as indexed); None when the collection has no index or no sealed rows."""
    total = sum(s.rows for s in segments)
    if not meta.index_params or total == 0:
        return None
    worst = 1.0
    for d in meta.index_params:
        if d.get("index_type") in NO_BUILD:
            continue
        iid, field = index_id(d), d["field_name"]
        pending = sum(
            s.rows
            for s in segments
            if s.rows >= min_rows and built.get((s.id, field), {}).get("index_id") != iid
        )
        worst = min(worst, 1.0 - pending / total)
    return worst


def _index_label(meta: Any) -> str:
    return ", ".join(f"{d['field_name']}: {d.get('index_type', '?')}" for d in meta.index_params)


def _engine_collections(engine: Any, segs_out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collections of an embedded engine; appends its segments to ``segs_out``."""
    out = []
    min_rows = int(engine.config.index_min_rows)
    held = engine.query.held()  # sealed segments by collection id (residency untouched)
    for name, coll in sorted(engine.collections.items()):
        meta = coll.meta
        sealed = engine.catalog.segments(meta.id)
        built = engine.catalog.segment_indexes(meta.id)
        loaded = engine.query.loaded(meta.id)
        growing = [s for shard in coll.shards for s in list(shard.growing.values()) if s.n]
        for seg in growing:
            segs_out.append({"collection": name, "segment": seg.segment_id, "state": "growing",
                             "where": "host", "rows": seg.n, "bytes": seg.nbytes(),
                             "indexed": False})  # fmt: skip
        for seg in held.get(meta.id, []):
            on_gpu = seg.on_device
            segs_out.append({"collection": name, "segment": seg.segment_id, "state": "sealed",
                             "where": "GPU" if on_gpu else "host", "rows": seg.n,
                             "bytes": seg.device_bytes() if on_gpu else seg.nbytes(),
                             "indexed": bool(seg.indexes)})  # fmt: skip
        out.append({
            "name": name,
            "rows": sum(s.rows for s in sealed) + sum(s.n for s in growing),
            "growing": len(growing),
            "sealed": len(sealed),
            "indexed": indexed_fraction(meta, sealed, built, min_rows),
            "index": _index_label(meta),
            "load_state": "Loaded" if loaded else "NotLoad",
        })  # fmt: skip
    return out


def catalog_collections(
    catalog: Any, segs_out: list[dict[str, Any]], min_rows: int = 1024
) -> list[dict[str, Any]]:
    """Collections and sealed segments as committed in ``catalog`` (cluster mode: the
    catalog in etcd; growing segments and residency live in other processes)."""
    out = []
    for meta in sorted(catalog.list(), key=lambda m: m.name):
        sealed = catalog.segments(meta.id)
        built = catalog.segment_indexes(meta.id)
        for sm in sealed:
            segs_out.append({"collection": meta.name, "segment": sm.id, "state": "sealed",
                             "where": "object store", "rows": sm.rows, "bytes": None,
                             "indexed": any(k[0] == sm.id for k in built)})  # fmt: skip
        out.append({"name": meta.name, "rows": sum(s.rows for s in sealed), "growing": None,
                    "sealed": len(sealed),
                    "indexed": indexed_fraction(meta, sealed, built, min_rows),
                    "index": _index_label(meta),
                    "load_state": "Loaded" if meta.loaded else "NotLoad"})  # fmt: skip
    return out


# --- jobs ---------------------------------------------------------------------------------
def build_progress(events: Iterable[tuple[float, Any]]) -> dict[str, tuple[int, int]]:
    """The latest ``(done, total)`` rows of each build key in the scheduler's progress
    events (``(time, {"key", "done", "total"})`` pairs, oldest first)."""
    out: dict[str, tuple[int, int]] = {}
    for _, msg in events:
        if isinstance(msg, dict) and "key" in msg:
            out[str(msg["key"])] = (int(msg.get("done", 0)), int(msg.get("total", 0)))
    return out


def parse_build_key(key: str) -> tuple[int | None, str]:
    """``(segment id, field)`` of ``gpuvec-build-index-<segment>-<field>-<index id>``
    (field names are identifiers, so they hold no ``-``)."""
    parts = key.removeprefix(BUILD_PREFIX).split("-")
    sid = int(parts[0]) if parts and parts[0].isdigit() else None
    return sid, "-".join(parts[1:-1])


def _builds(
    jobs: list[dict[str, Any]],
    progress: dict[str, tuple[int, int]],
    tasks: dict[str, str],
    owners: dict[int, str],
) -> list[dict[str, Any]]:
    """Engine build records joined with per-batch progress; builds only the scheduler
    knows of (another process submitted them) are added from its tasks and events."""
    out, seen = [], set()
    for job in jobs:
        entry = dict(job)
        done, total = progress.get(job["key"], (0, 0))
        if job["state"] == "Running":
            entry["progress"] = done / total if total else 0.0
            entry["done_rows"] = done
        else:
            entry["progress"] = 1.0 if job["state"] == "Finished" else None
            entry["done_rows"] = job["rows"] if job["state"] == "Finished" else done
        out.append(entry)
        seen.add(job["key"])
    for key in sorted(set(tasks) | set(progress)):
        if not key.startswith(BUILD_PREFIX) or key in seen:
            continue
        done, total = progress.get(key, (0, 0))
        state = tasks.get(key)
        running = state in ("processing", "waiting", "queued", "no-worker") or (
            state is None and total and done < total
        )
        failed = state == "erred"
        sid, field = parse_build_key(key)
        state_name = "Running" if running else "Failed" if failed else "Finished"
        fraction = done / total if total else 0.0
        out.append({"key": key, "collection": owners.get(sid, "") if sid else "",
                    "segment": sid, "field": field, "index_type": "", "rows": total or None,
                    "state": state_name, "started": None, "ended": None, "error": None,
                    "done_rows": done,
                    "progress": fraction if running else None if failed else 1.0})  # fmt: skip
    return out


def _compactions(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for job in jobs:
        plans = job.get("plans") or 0
        finished = job.get("done", 0) + job.get("failed", 0)
        out.append({"job": job["job"], "collection": job.get("name", str(job.get("collection"))),
                    "state": job["state"], "plans": plans, "rows": job.get("rows"),
                    "progress": finished / plans if plans else 1.0,
                    "started": job.get("started"), "ended": job.get("ended")})  # fmt: skip
    return out


# --- requests -----------------------------------------------------------------------------
def _quantile(q: float, bounds: list[float], counts: list[float]) -> float | None:
    """Prometheus's ``histogram_quantile``: ``counts`` are cumulative per upper bound."""
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    for i, (le, c) in enumerate(zip(bounds, counts, strict=True)):
        if c >= rank:
            if math.isinf(le):
                return bounds[i - 1] if i else None
            lo = bounds[i - 1] if i else 0.0
            below = counts[i - 1] if i else 0.0
            inside = c - below
            return lo + (le - lo) * ((rank - below) / inside if inside else 1.0)
    return None


class RequestMeter:
    """Request rates and latency quantiles from prometheus_client's registry: each
    :meth:`sample` compares the counters and histogram buckets with the previous call's."""

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry
        self._last: tuple[float, dict[str, Any]] | None = None

    def _read(self) -> dict[str, Any]:
        """``function → {"ok", "fail", "buckets": {le: cumulative count}}``, summed over
        nodes (every node of this process)."""
        if self.registry is None:
            from prometheus_client import REGISTRY

            self.registry = REGISTRY
        names = [f"{REQUESTS_METRIC}_total", f"{LATENCY_METRIC}_bucket"]
        out: dict[str, Any] = {}
        for family in self.registry.restricted_registry(names).collect():
            for s in family.samples:
                fn = s.labels.get("function_name", "?")
                rec = out.setdefault(fn, {"ok": 0.0, "fail": 0.0, "buckets": {}})
                if s.name == f"{REQUESTS_METRIC}_total":
                    rec["ok" if s.labels.get("status") == "success" else "fail"] += s.value
                elif s.name == f"{LATENCY_METRIC}_bucket":
                    le = float(s.labels["le"])
                    rec["buckets"][le] = rec["buckets"].get(le, 0.0) + s.value
        return out

    def sample(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per function name: ``count`` (total so far), ``rate`` and ``errors`` (per
        second since the previous sample), ``p50`` / ``p99`` (seconds, of the requests
        since the previous sample; None when there were none). The first call has no
        interval: rates 0, quantiles over everything so far."""
        now = time.monotonic() if now is None else now
        cur = self._read()
        prev_t, prev = self._last if self._last is not None else (None, {})
        self._last = (now, cur)
        dt = (now - prev_t) if prev_t is not None else 0.0
        out = {}
        for fn, rec in sorted(cur.items()):
            old = prev.get(fn, {"ok": 0.0, "fail": 0.0, "buckets": {}})
            bounds = sorted(rec["buckets"])
            delta = [rec["buckets"][b] - old["buckets"].get(b, 0.0) for b in bounds]
            total = rec["ok"] + rec["fail"]
            out[fn] = {
                "count": int(total),
                "rate": (total - old["ok"] - old["fail"]) / dt if dt > 0 else 0.0,
                "errors": (rec["fail"] - old["fail"]) / dt if dt > 0 else 0.0,
                "p50": _quantile(0.5, bounds, delta),
                "p99": _quantile(0.99, bounds, delta),
            }
        return out


# --- everything ---------------------------------------------------------------------------
def snapshot(
    engines: Iterable[Any] | None = None,
    *,
    catalogs: Iterable[Any] = (),
    events: Iterable[tuple[float, Any]] = (),
    tasks: dict[str, str] | None = None,
    meter: RequestMeter | None = None,
    min_rows: int = 1024,
) -> dict[str, Any]:
    """Everything the gpuvec page shows, as plain data (see the module docstring).

    ``engines`` default to the live engines of this process; only those with a query node
    and index builder (embedded ones) contribute. ``tasks`` maps the scheduler's task keys
    to their states. Keys: ``time``, ``device`` (:func:`device_state`; None without an
    embedded engine), ``engines`` (data directories),
    ``collections``, ``segments``, ``builds``, ``compactions``, ``requests``."""
    if engines is None:
        from gpuvec.observability.engines import live

        engines = live()
    embedded = [e for e in engines if hasattr(e, "indexer") and hasattr(e, "query")]
    collections: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    build_jobs: list[dict[str, Any]] = []
    compaction_jobs: list[dict[str, Any]] = []
    owners: dict[int, str] = {}
    for engine in embedded:
        collections += _engine_collections(engine, segments)
        build_jobs += engine.indexer.recent()
        compaction_jobs += engine.compactor.recent()
    for catalog in catalogs:
        collections += catalog_collections(catalog, segments, min_rows)
    for seg in segments:
        owners.setdefault(seg["segment"], seg["collection"])
    builds = _builds(build_jobs, build_progress(events), dict(tasks or {}), owners)
    builds.sort(key=lambda b: (b["state"] != "Running", -(b.get("started") or 0.0)))
    return {
        "time": time.time(),
        # without an engine here (the cluster scheduler) the devices are the query nodes'
        # business: None, and the GPU is not touched from this process
        "device": device_state(e.query.residency for e in embedded) if embedded else None,
        "engines": [str(getattr(e, "root", "")) for e in embedded],
        "collections": collections,
        "segments": segments,
        "builds": builds,
        "compactions": _compactions(compaction_jobs),
        "requests": meter.sample() if meter is not None else {},
    }
