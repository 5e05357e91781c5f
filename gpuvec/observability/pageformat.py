"""Text formatting for the ``/gpuvec`` dashboard page (:mod:`.dashboard`): byte sizes,
times, progress bars, the page header and one-line statuses."""

from __future__ import annotations

import html
import math
from typing import Any


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
