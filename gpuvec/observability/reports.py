"""Node reports: what each cluster process tells the dashboard about itself, through meta.

DESIGN: the dashboard pages read meta and the nodes' reports, never the data path. Every
streaming node, query node and proxy writes a small JSON report (no per-row data) every
:data:`REPORT_PERIOD_S` seconds to ``cluster/reports/<role>/<node id>``, under a lease
(a worker node's session lease; a proxy's own lease), so a dead node's report disappears
with it. The cluster scheduler's ``/gpuvec`` page reads them (:func:`read_reports`) and
:mod:`gpuvec.observability.snapshot` turns them into tables.

Report bodies (every one has ``role``, ``node_id``, ``pid``, ``time``):

* ``querynode``: ``segments`` — held sealed segments ``{collection, collection_id,
  segment, rows, bytes, device: gpu|host, indexed}`` (at most :data:`MAX_SEGMENTS`;
  ``segments_left_out`` counts the rest); ``gpu`` — ``{gpu, backend, reason, used, budget,
  total, free}`` (``gpu`` None while the node has not chosen its backend: a report never
  initialises the device); ``lag`` — channel → Kafka offsets its tail is behind;
* ``streamingnode``: ``channels`` — per owned channel ``{channel, collection, position,
  checkpoint, growing_segments, growing_rows, growing_bytes, handoff}``; ``lag`` — empty
  (the node writes the channels; it consumes none);
* ``proxy``: ``requests`` — function → ``{ok, fail, buckets: {le: cumulative count}}`` from
  prometheus_client's registry (:func:`gpuvec.observability.snapshot.read_requests`, the
  source of the embedded page's request table);
* ``coordinator`` (the active one only, under its own lease): ``builds`` and
  ``compactions`` — its ``IndexBuilder.recent()`` / ``Compactor.recent()`` records;
  ``failures`` — build key → reason of every build that failed and was not rebuilt since
  (``IndexBuilder.failures()``): the proxies' ``describe_index`` reads them
  (:class:`BuildFailures`) to answer ``Failed`` with Milvus's ``index_state_fail_reason``.

Writing a report never breaks its node: failures are logged at debug level and retried on
the next round.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from gpuvec.observability.snapshot import _no_gpu_reason, read_requests
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import MetaStore, Put

log = logging.getLogger(__name__)

REPORTS = K.REPORTS
REPORT_PERIOD_S = 2.0
REPORT_TTL_S = 5  # a proxy's report lease (worker nodes use their session lease)
MAX_SEGMENTS = 2000  # per query node report; the rest are counted, not listed


report_key = K.report_key


# --- building -----------------------------------------------------------------------------
def _gpu_state(query: Any) -> dict[str, Any]:
    """Residency and device memory of a query node, without choosing the backend."""
    from gpuvec.ops import backend

    chosen = backend.chosen()  # None until the node first needed its backend
    residency = getattr(query, "residency", None)
    used = int(getattr(residency, "used", 0) or 0)
    out: dict[str, Any] = {"gpu": None, "backend": None, "reason": "backend not chosen yet",
                           "used": used, "budget": 0, "total": None, "free": None}  # fmt: skip
    if chosen is None:
        return out
    out["gpu"], out["backend"] = bool(chosen.gpu), str(chosen.name)
    if chosen.gpu:
        from gpuvec import ops

        out["reason"] = None
        out["budget"] = int(getattr(residency, "budget", 0) or 0)
        out["free"], out["total"] = (int(x) for x in ops.device_memory())
    else:
        out["reason"] = _no_gpu_reason()
    return out


def _querynode(node: Any) -> dict[str, Any]:
    names = {cid: m.name for cid, m in list(node.metas.items())}
    segments: list[dict[str, Any]] = []
    left_out = 0
    for cid, segs in sorted(node.query.held().items()):
        for seg in segs:
            if len(segments) >= MAX_SEGMENTS:
                left_out += 1
                continue
            on_gpu = bool(getattr(seg, "on_device", False))
            segments.append({
                "collection": names.get(cid, str(cid)), "collection_id": int(cid),
                "segment": int(seg.segment_id), "rows": int(seg.n),
                "bytes": int(seg.device_bytes() if on_gpu else seg.nbytes()),
                "device": "gpu" if on_gpu else "host", "indexed": bool(seg.indexes),
            })  # fmt: skip
    lag: dict[str, int] = {}
    for channel, tail in list(getattr(node, "tails", {}).items()):
        cached = getattr(tail.reader, "cached_lag", None)
        value = cached() if cached is not None else None
        if value is not None:
            lag[channel] = int(value)
    return {"segments": segments, "segments_left_out": left_out,
            "gpu": _gpu_state(node.query), "lag": lag}  # fmt: skip


def _streamingnode(node: Any) -> dict[str, Any]:
    channels = []
    for ch, shard in sorted(list(node.shards.items())):
        growing = [s for s in list(shard.growing.values()) if s.n]
        channels.append({
            "channel": ch, "collection": shard.meta.name,
            "position": int(shard.next_position), "checkpoint": int(shard.checkpoint),
            "growing_segments": len(growing), "growing_rows": sum(int(s.n) for s in growing),
            "growing_bytes": sum(int(s.nbytes()) for s in growing),
            "handoff": len(node.handoff.get(ch, {})),
        })  # fmt: skip
    return {"channels": channels, "lag": {}}


def _proxy(_: Any) -> dict[str, Any]:
    requests = read_requests()
    for rec in requests.values():  # JSON keys: the le labels as Prometheus writes them
        rec["buckets"] = {_le(b): c for b, c in sorted(rec["buckets"].items())}
    return {"requests": requests}


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _coordinator(node: Any) -> dict[str, Any]:
    """The active coordinator's recent index builds and compactions (it submits them)."""
    indexer, compactor = getattr(node, "indexer", None), getattr(node, "compactor", None)
    return {
        "builds": indexer.recent() if indexer is not None else [],
        "compactions": compactor.recent() if compactor is not None else [],
        "failures": indexer.failures() if indexer is not None else {},
    }


_BUILDERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "querynode": _querynode,
    "streamingnode": _streamingnode,
    "proxy": _proxy,
    "coordinator": _coordinator,
}


def build_report(node: Any) -> dict[str, Any]:
    """The report of ``node`` (a worker node with ``role`` and ``node_id``, or a proxy's
    ``ClusterEngine``): a JSON-serialisable dict, see the module docstring."""
    role = str(getattr(node, "role", ""))
    build = _BUILDERS.get(role)
    if build is None:
        raise ValueError(f"no report for role {role!r}")
    body = {"role": role, "node_id": str(node.node_id), "pid": os.getpid(), "time": time.time()}
    address = getattr(node, "address", None)
    if address:
        body["address"] = str(address)
    return body | build(node)


def write_report(meta: MetaStore, node: Any, lease: int) -> bool:
    """Build and put ``node``'s report under ``lease``; False (logged at debug) on any
    failure: a report is never worth breaking a node."""
    try:
        body = json.dumps(build_report(node), separators=(",", ":")).encode()
        meta.txn([], [Put(report_key(node.role, node.node_id), body, lease)])
        return True
    except Exception:
        log.debug("report of %s not written", getattr(node, "node_id", node), exc_info=True)
        return False


class Reporter:
    """A daemon thread writing ``node``'s report every ``period`` seconds under its own
    lease (for processes without a session: the proxy). A lost lease is granted anew."""

    def __init__(self, meta: MetaStore, node: Any, period: float = REPORT_PERIOD_S) -> None:
        self.meta, self.node, self.period = meta, node, period
        self._keeper: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpuvec-report", daemon=True)
        self._thread.start()

    def _lease(self) -> int:
        from gpuvec.storage.meta.lease import LeaseKeeper

        if self._keeper is None or self._keeper.lost:
            if self._keeper is not None:
                self._keeper.close(revoke=False)
            self._keeper = LeaseKeeper(self.meta, REPORT_TTL_S)
        return int(self._keeper.id)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                write_report(self.meta, self.node, self._lease())
            except Exception:  # no lease (etcd away): try again next round
                log.debug("report lease of %s not granted", self.node.node_id, exc_info=True)
            self._stop.wait(self.period)

    def close(self) -> None:
        """Stop, and revoke the lease (the report goes at once)."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self._keeper is not None:
            try:
                self._keeper.close(revoke=True)
            except Exception:
                log.debug("report lease not revoked", exc_info=True)


# --- reading ------------------------------------------------------------------------------
def read_reports(meta: Any) -> list[dict[str, Any]]:
    """Every live node's report (``meta`` is a MetaStore, or anything with its ``range``),
    ordered by role and node id; unreadable values are skipped."""
    kvs, _ = meta.range(REPORTS)
    out = []
    for kv in kvs:
        try:
            rep = json.loads(kv.value)
        except ValueError:
            continue
        if isinstance(rep, dict):
            out.append(rep)
    out.sort(key=lambda r: (str(r.get("role", "")), str(r.get("node_id", ""))))
    return out


class BuildFailures:
    """The active coordinator's failed builds as its report states them, read from meta at
    most once per ``max_age`` seconds (a proxy's ``describe_index`` asks per segment)."""

    def __init__(self, meta: Any, max_age: float = 1.0) -> None:
        self.meta, self.max_age = meta, max_age
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._failures: dict[str, str] = {}

    def reason(self, key: str) -> str | None:
        """Why the build ``key`` (``IndexBuilder.key``) failed; None if it did not."""
        with self._lock:
            if time.monotonic() - self._read_at > self.max_age:
                self._failures = self._read()
                self._read_at = time.monotonic()
            return self._failures.get(key)

    def _read(self) -> dict[str, str]:
        try:
            kvs, _ = self.meta.range(f"{REPORTS}coordinator/")
        except Exception:  # meta away: no failures known this round
            log.debug("coordinator report not read", exc_info=True)
            return {}
        out: dict[str, str] = {}
        for kv in kvs:
            try:
                failures = json.loads(kv.value).get("failures") or {}
            except (ValueError, AttributeError):
                continue
            if isinstance(failures, dict):
                out.update({str(k): str(v) for k, v in failures.items()})
        return out
