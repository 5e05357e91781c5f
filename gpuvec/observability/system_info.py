"""What Milvus's ``GetMetrics`` (``{"metric_type": "system_info"}``) and
``GetComponentStates`` RPCs report, as plain data built from a runtime (the embedded
``Engine`` or a cluster proxy's ``ClusterEngine``); the gRPC servicer only wraps it.

``system_info`` follows the shape of Milvus's answer — ``nodes_info``, a list of nodes each
with ``identifier``, ``connected`` and ``infos`` (``name``, ``type``, ``has_error``,
``error_reason``, ``hardware_infos``, ``system_info``, ``created_time``, ``updated_time``)
— and adds gpuvec's own ``collections`` (per collection: database, id, rows, shards, load
state, segment counts) and ``requests`` (this process's request counters by function).
A collection's ``row_count`` is its live rows in the embedded runtime; a cluster proxy
reports the rows of committed sealed segments instead (``row_count_source``), because
counting live rows there would scan every node.

``components`` lists the roles a runtime consists of with their health: the embedded
runtime's in-process roles (the coordinator is unhealthy when it lost its data directory's
leadership), or, behind a cluster proxy, the nodes with a session in meta.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
from typing import Any

from gpuvec.observability.metrics import NODE_ID, REQUESTS

SYSTEM_INFO = "system_info"
STARTED = time.strftime("%Y-%m-%d %H:%M:%S %z")
EMBEDDED_ROLES = ("MixCoord", "StreamingNode", "QueryNode", "DataNode")


def is_cluster(engine: Any) -> bool:
    """Whether ``engine`` is a cluster proxy's (it has no in-process shards)."""
    return getattr(engine, "kind", "") == "cluster"


def _hardware(engine: Any) -> dict[str, Any]:
    from gpuvec import ops
    from gpuvec.ops.backend import resolved_gpu

    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    free = os.sysconf("SC_AVPHYS_PAGES") * page
    info: dict[str, Any] = {
        "ip": socket.gethostname(),
        "cpu_core_count": os.cpu_count() or 0,
        "cpu_core_usage": os.getloadavg()[0],  # 1-minute load average
        "memory": total,
        "memory_usage": total - free,
    }
    root = getattr(engine, "root", None)
    if root is not None:
        disk = shutil.disk_usage(root)
        info |= {"disk": disk.total, "disk_usage": disk.used}
    if resolved_gpu():
        gpu_free, gpu_total = ops.device_memory()
        info["gpu"] = {"name": ops.backend_name(), "memory": gpu_total,
                       "memory_usage": gpu_total - gpu_free}  # fmt: skip
    return info


def _collections(engine: Any) -> list[dict[str, Any]]:
    from gpuvec.proxy.names import split

    cluster = is_cluster(engine)
    out = []
    for meta in engine.catalog.list():
        db, name = split(meta.name)
        stats = engine.segment_stats(meta.id)
        entry: dict[str, Any] = {
            "name": name, "db_name": db, "id": meta.id, "num_shards": meta.num_shards,
            "loaded": bool(meta.loaded),
            "sealed_segments": len(engine.catalog.segments(meta.id)),
        }  # fmt: skip
        if cluster:
            entry |= {"row_count": int(stats["sealed_rows"]), "row_count_source": "sealed"}
        else:
            coll = engine.collections.get(meta.name)
            if coll is None:
                continue
            growing = [s for shard in coll.shards for s in list(shard.growing.values()) if s.n]
            rows = engine.row_count(coll, set(meta.partitions.values()))
            entry |= {"row_count": int(rows), "row_count_source": "live",
                      "growing_segments": len(growing),
                      "gpu_resident_segments": int(stats.get("gpu_resident", 0))}  # fmt: skip
        out.append(entry)
    return out


def _requests() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for family in REQUESTS.collect():
        for s in family.samples:
            if s.name.endswith("_total") and s.labels.get("node_id") == NODE_ID:
                per = out.setdefault(s.labels["function_name"], {"success": 0, "fail": 0})
                per[s.labels["status"]] = int(s.value)
    return out


def _node_number(node_id: str) -> int | str:
    """A node id as Milvus's integer identifier where it is one (a pid), else the text."""
    return int(node_id) if node_id.isdigit() else node_id


def system_info(engine: Any, version: str, healthy: bool, reasons: list[str]) -> dict[str, Any]:
    """The ``system_info`` answer of ``GetMetrics`` for a runtime (see the module doc)."""
    cluster = is_cluster(engine)
    now = time.strftime("%Y-%m-%d %H:%M:%S %z")
    node = {
        "identifier": os.getpid(),
        "connected": [{"connected_identifier": _node_number(c["node_id"]), "type": "forward",
                       "target_type": c["role"]} for c in components(engine, reasons)[1:]],
        "infos": {
            "has_error": not healthy, "error_reason": "; ".join(reasons),
            "name": f"proxy-{NODE_ID}", "type": "proxy", "id": os.getpid(),
            "hardware_infos": _hardware(engine),
            "system_info": {"system_version": version, "build_version": version,
                            "deploy_mode": "CLUSTER" if cluster else "STANDALONE",
                            "python_version": platform.python_version()},
            "created_time": STARTED, "updated_time": now,
        },
    }  # fmt: skip
    return {"nodes_info": [node], "collections": _collections(engine), "requests": _requests()}


def components(engine: Any, reasons: list[str]) -> list[dict[str, Any]]:
    """``[{"role", "node_id", "healthy", "reason"}]``: this proxy first, then the roles it
    runs on (in process, or the cluster's nodes with a session in meta)."""
    proxy = {"role": "Proxy", "node_id": str(os.getpid()), "healthy": not reasons,
             "reason": "; ".join(reasons)}  # fmt: skip
    out = [proxy]
    if is_cluster(engine):
        from gpuvec.storage.meta.keys import SESSIONS

        kvs, _ = engine.meta.range(SESSIONS)
        for kv in kvs:
            role, _, node_id = kv.key[len(SESSIONS) :].partition("/")
            out.append({"role": role, "node_id": node_id, "healthy": True, "reason": ""})
        return out
    coord = "; ".join(r for r in reasons if r.startswith("coordinator"))
    for role in EMBEDDED_ROLES:
        bad = role == "MixCoord" and bool(coord)
        out.append({"role": role, "node_id": str(os.getpid()), "healthy": not bad,
                    "reason": coord if bad else ""})  # fmt: skip
    return out


def parse_request(text: str) -> str:
    """The ``metric_type`` of a ``GetMetrics`` request (raises InvalidArgumentError)."""
    from gpuvec.errors import InvalidArgumentError

    try:
        req = json.loads(text or "{}")
    except (ValueError, RecursionError):
        raise InvalidArgumentError(f"GetMetrics: request is not JSON: {text[:100]!r}") from None
    kind = req.get("metric_type") if isinstance(req, dict) else None
    if kind != SYSTEM_INFO:
        raise InvalidArgumentError(
            f"GetMetrics: metric_type {kind!r} is not supported; supported: {SYSTEM_INFO!r}"
        )
    return kind
