"""What the gpuvec dashboard page shows, gathered as plain data (no bokeh here).

:func:`snapshot` returns one dict, built from whatever this process can see:

* **engines** (embedded :class:`~gpuvec.runtime.embedded.Engine` objects, normally
  :func:`gpuvec.observability.engines.live`): collections with their rows, growing and
  sealed segment counts, indexed fraction and load state; every segment with where it lives
  (GPU or host) and its bytes; GPU memory used against the residency budget; the index
  builds and compactions the engine ran lately;
* **catalogs** (:class:`~gpuvec.coord.catalog.Catalog` objects; the cluster scheduler's page
  reads the catalog in etcd): collections and sealed segments as committed in meta;
* **events**: the index-build progress events the data-node tasks log on the Dask scheduler
  (:data:`gpuvec.pipelines.common.PROGRESS_TOPIC`), for per-batch progress of running builds;
* **meter**: a :class:`RequestMeter`, which turns the request metrics in prometheus_client's
  registry (``gpuvec_proxy_req_count``, ``gpuvec_proxy_req_latency_seconds``) into rates and
  p50 / p99 latencies between two successive calls;
* **reports** (cluster page): the nodes' reports in meta (:mod:`.reports`): which query
  node holds each sealed segment, on GPU or host, with its bytes; each query node's GPU
  memory; per WAL channel its owner, position and the query nodes' consumer lag; and the
  proxies' request counters, which then feed the meter instead of this process's registry.

Every part degrades to an empty list (or ``None``) when its source is missing, so the page
renders before the first collection, build or request.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from typing import Any

from gpuvec.pipelines.common import build_progress
from gpuvec.records import NO_BUILD, index_id

REQUESTS_METRIC = "gpuvec_proxy_req_count"
LATENCY_METRIC = "gpuvec_proxy_req_latency_seconds"
RECENT_IMPORTS = 8  # import jobs the page lists per engine
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
    ``total`` and ``free`` (device memory; None without a GPU), ``nvml`` (each visible
    GPU's utilisation and memory, :func:`gpuvec.observability.nvml.gpus`; empty without)."""
    from gpuvec import ops
    from gpuvec.observability.nvml import gpus

    gpu = ops.is_gpu()
    out: dict[str, Any] = {"gpu": gpu, "backend": ops.backend_name(),
                           "reason": None if gpu else _no_gpu_reason(),
                           "used": 0, "budget": 0, "total": None, "free": None}  # fmt: skip
    for res in residencies:
        out["used"] += int(res.used)
        out["budget"] += int(res.budget) if gpu else 0
    if gpu:
        out["free"], out["total"] = ops.device_memory()
    out["nvml"] = gpus()[0] if gpu else []
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


def _held_on(node: str, seg: dict[str, Any]) -> str:
    return f"{'GPU' if seg.get('device') == 'gpu' else 'host'} ({node})"


def apply_reports(
    reports: list[dict[str, Any]],
    collections: list[dict[str, Any]],
    segments: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The cluster page's view of the nodes' reports (:mod:`.reports`): fills the catalog's
    ``segments`` with where each sealed segment is held (``GPU`` / ``host`` on which query
    node, with bytes) and ``collections`` with growing segment counts; returns ``nodes``
    (one row per reporting process), ``query_nodes`` (segments on GPU / host, bytes, GPU
    memory or why no GPU) and ``channels`` (owner, WAL position and checkpoint, growing
    rows, the query nodes' consumer lag)."""
    now = time.time()
    nodes, query_nodes, held = [], [], {}
    channels: dict[str, dict[str, Any]] = {}
    growing: dict[str, int] = {}

    def channel(name: str) -> dict[str, Any]:
        return channels.setdefault(name, {"channel": name, "collection": "", "owner": None,
                                          "position": None, "checkpoint": None,
                                          "growing_rows": 0, "handoff": 0, "lag": None,
                                          "lag_by_node": {}})  # fmt: skip

    for rep in reports:
        role, node = str(rep.get("role", "")), str(rep.get("node_id", ""))
        nodes.append({"role": role, "node_id": node, "address": rep.get("address"),
                      "age": max(0.0, now - float(rep.get("time", now)))})  # fmt: skip
        for ch, lag in (rep.get("lag") or {}).items():
            c = channel(ch)
            c["lag_by_node"][node] = int(lag)
            c["lag"] = max(c["lag"] or 0, int(lag))
        if role == "querynode":
            segs = rep.get("segments") or []
            for seg in segs:
                held.setdefault(int(seg["segment"]), []).append((node, seg))
            on_gpu = [x for x in segs if x.get("device") == "gpu"]
            gpu = rep.get("gpu") or {}
            query_nodes.append({
                "node_id": node, "segments": len(segs) + int(rep.get("segments_left_out", 0)),
                "gpu_segments": len(on_gpu), "gpu_bytes": sum(x["bytes"] for x in on_gpu),
                "host_segments": len(segs) - len(on_gpu),
                "host_bytes": sum(x["bytes"] for x in segs if x.get("device") != "gpu"),
                "rows": sum(x["rows"] for x in segs), "gpu": gpu.get("gpu"),
                "backend": gpu.get("backend"), "reason": gpu.get("reason"),
                "used": gpu.get("used", 0), "budget": gpu.get("budget", 0),
                "total": gpu.get("total"), "free": gpu.get("free"),
            })  # fmt: skip
        elif role == "streamingnode":
            for ch in rep.get("channels") or []:
                c = channel(ch["channel"])
                c.update(collection=ch.get("collection", ""), owner=node,
                         position=ch.get("position"), checkpoint=ch.get("checkpoint"),
                         growing_rows=ch.get("growing_rows", 0),
                         handoff=ch.get("handoff", 0))  # fmt: skip
                name = str(ch.get("collection", ""))
                growing[name] = growing.get(name, 0) + int(ch.get("growing_segments", 0))
    for entry in list(segments):
        holders = held.pop(int(entry["segment"]), None) if entry["state"] == "sealed" else None
        for i, (node, seg) in enumerate(holders or []):
            row = entry if i == 0 else dict(entry)
            row.update(where=_held_on(node, seg), bytes=seg.get("bytes"),
                       rows=seg.get("rows", entry["rows"]))  # fmt: skip
            if i:
                segments.append(row)
    for sid, holders in sorted(held.items()):  # held, not (or no longer) in the catalog
        for node, seg in holders:
            segments.append({"collection": seg.get("collection", ""), "segment": sid,
                             "state": "sealed", "rows": seg.get("rows", 0),
                             "where": _held_on(node, seg), "bytes": seg.get("bytes"),
                             "indexed": seg.get("indexed", False)})  # fmt: skip
    for coll in collections:
        if coll.get("growing") is None and coll["name"] in growing:
            coll["growing"] = growing[coll["name"]]
    return nodes, query_nodes, sorted(channels.values(), key=lambda c: c["channel"])


# --- jobs ---------------------------------------------------------------------------------
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


def import_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bulk-import jobs (their records, :mod:`gpuvec.coord.imports`) as the page lists them,
    newest first."""
    out = []
    for job in reversed(jobs):
        done = job["state"] in ("Completed", "Failed")
        out.append({"job": job["id"], "collection": job["collection"], "state": job["state"],
                    "progress": job.get("progress", 0) / 100.0, "rows": job.get("rows", 0),
                    "total_rows": job.get("total_rows", 0), "reason": job.get("reason", ""),
                    "started": job.get("created"),
                    "ended": job.get("updated") if done else None})  # fmt: skip
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


def read_requests(registry: Any = None) -> dict[str, Any]:
    """``function → {"ok", "fail", "buckets": {le: cumulative count}}`` from the request
    metrics in ``registry`` (default: prometheus_client's), summed over the nodes of this
    process. A proxy's dashboard report carries the same (:mod:`.reports`)."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    names = [f"{REQUESTS_METRIC}_total", f"{LATENCY_METRIC}_bucket"]
    out: dict[str, Any] = {}
    for family in registry.restricted_registry(names).collect():
        for s in family.samples:
            fn = s.labels.get("function_name", "?")
            rec = out.setdefault(fn, {"ok": 0.0, "fail": 0.0, "buckets": {}})
            if s.name == f"{REQUESTS_METRIC}_total":
                rec["ok" if s.labels.get("status") == "success" else "fail"] += s.value
            elif s.name == f"{LATENCY_METRIC}_bucket":
                le = float(s.labels["le"])
                rec["buckets"][le] = rec["buckets"].get(le, 0.0) + s.value
    return out


Sample = tuple[float, dict[str, Any]]  # (time, read_requests()-shaped counters)


class RequestMeter:
    """Request rates and latency quantiles from successive readings of the request
    counters: of prometheus_client's registry (this process), or of the proxies' reports
    (cluster page: :meth:`sample`'s ``samples``, one reading per proxy)."""

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry
        self._last: dict[str, Sample] = {}  # source → its newest reading
        self._prev: dict[str, Sample] = {}  # source → the reading before that

    def _read(self) -> dict[str, Any]:
        return read_requests(self.registry)

    def sample(
        self, now: float | None = None, samples: dict[str, Sample] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per function name: ``count`` (total so far), ``rate`` and ``errors`` (per
        second), ``p50`` / ``p99`` (seconds, of the requests between the two latest
        readings; None when there were none). The first reading has no interval: rates 0,
        quantiles over everything so far.

        Without ``samples`` this process's registry is read now (so the interval is the
        one since the previous call). ``samples`` maps a source (a proxy) to its reading
        ``(time, counters)``: a reading whose time did not change keeps the interval it
        had; sources are compared each with itself, then summed."""
        now = time.monotonic() if now is None else now
        readings = {"": (now, self._read())} if samples is None else samples
        for src, (t, cur) in readings.items():
            last = self._last.get(src)
            if last is None or t != last[0]:
                if last is not None:
                    self._prev[src] = last
                self._last[src] = (t, cur)
        for gone in [src for src in self._last if src not in readings]:
            self._last.pop(gone)
            self._prev.pop(gone, None)
        acc: dict[str, dict[str, Any]] = {}
        for src, (t, cur) in self._last.items():
            prev_t, prev = self._prev.get(src, (None, {}))
            dt = (t - prev_t) if prev_t is not None else 0.0
            for fn, rec in cur.items():
                old = prev.get(fn, {"ok": 0.0, "fail": 0.0, "buckets": {}})
                a = acc.setdefault(fn, {"count": 0.0, "rate": 0.0, "errors": 0.0, "delta": {}})
                total = rec["ok"] + rec["fail"]
                a["count"] += total
                a["rate"] += (total - old["ok"] - old["fail"]) / dt if dt > 0 else 0.0
                a["errors"] += (rec["fail"] - old["fail"]) / dt if dt > 0 else 0.0
                for b, c in rec["buckets"].items():
                    a["delta"][b] = a["delta"].get(b, 0.0) + c - old["buckets"].get(b, 0.0)
        out = {}
        for fn, a in sorted(acc.items()):
            bounds = sorted(a["delta"])
            delta = [a["delta"][b] for b in bounds]
            out[fn] = {"count": int(a["count"]), "rate": a["rate"], "errors": a["errors"],
                       "p50": _quantile(0.5, bounds, delta),
                       "p99": _quantile(0.99, bounds, delta)}  # fmt: skip
        return out


def proxy_samples(reports: Iterable[dict[str, Any]]) -> dict[str, Sample]:
    """The proxies' request counters in their reports, as :meth:`RequestMeter.sample`'s
    ``samples`` (bucket bounds back to floats)."""
    out: dict[str, Sample] = {}
    for rep in reports:
        if rep.get("role") != "proxy":
            continue
        reqs = {
            fn: {"ok": float(r.get("ok", 0.0)), "fail": float(r.get("fail", 0.0)),
                 "buckets": {float(le): float(c) for le, c in r.get("buckets", {}).items()}}
            for fn, r in (rep.get("requests") or {}).items()
        }  # fmt: skip
        out[str(rep.get("node_id"))] = (float(rep.get("time", 0.0)), reqs)
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
    reports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the gpuvec page shows, as plain data (see the module docstring).

    ``engines`` default to the live engines of this process; only those with a query node
    and index builder (embedded ones) contribute. ``tasks`` maps the scheduler's task keys
    to their states. ``reports`` (cluster page: the nodes' reports in meta) adds where
    segments are held, the query nodes, channels, and the proxies' request counters as
    the request source. Keys: ``time``, ``device`` (:func:`device_state`; None without an
    embedded engine), ``engines`` (data directories), ``collections``, ``segments``,
    ``builds``, ``compactions``, ``requests``, ``nodes``, ``query_nodes``, ``channels``
    (the last three empty without reports)."""
    if engines is None:
        from gpuvec.observability.engines import live

        engines = live()
    embedded = [e for e in engines if hasattr(e, "indexer") and hasattr(e, "query")]
    collections: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    build_jobs: list[dict[str, Any]] = []
    compaction_jobs: list[dict[str, Any]] = []
    owners: dict[int, str] = {}
    import_jobs: list[dict[str, Any]] = []
    for engine in embedded:
        collections += _engine_collections(engine, segments)
        imports = getattr(engine, "imports", None)
        if imports is not None:
            import_jobs += imports.list()[-RECENT_IMPORTS:]
        build_jobs += engine.indexer.recent()
        compaction_jobs += engine.compactor.recent()
    for catalog in catalogs:
        collections += catalog_collections(catalog, segments, min_rows)
    nodes: list[dict[str, Any]] = []
    query_nodes: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    if reports is not None:
        nodes, query_nodes, channels = apply_reports(reports, collections, segments)
        for rep in reports:  # the active coordinator's builds and compactions
            if rep.get("role") == "coordinator":
                build_jobs += rep.get("builds") or []
                compaction_jobs += rep.get("compactions") or []
    for seg in segments:
        owners.setdefault(seg["segment"], seg["collection"])
    builds = _builds(build_jobs, build_progress(events), dict(tasks or {}), owners)
    builds.sort(key=lambda b: (b["state"] != "Running", -(b.get("started") or 0.0)))
    requests: dict[str, Any] = {}
    if meter is not None:  # on the cluster page, the proxies' reports are the source
        requests = meter.sample(samples=None if reports is None else proxy_samples(reports))
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
        "imports": import_rows(import_jobs),
        "requests": requests,
        "nodes": nodes,
        "query_nodes": query_nodes,
        "channels": channels,
    }
