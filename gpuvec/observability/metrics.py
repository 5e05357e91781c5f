"""gpuvec's Prometheus metrics, named after Milvus's metric families (``milvus_proxy_*`` →
``gpuvec_proxy_*``, …), in the default ``prometheus_client`` registry of the process.

Shared by every role of the process; the request metrics are recorded by
:func:`observe_request` (the gRPC layer and the in-process client both call it) and read by
the dashboard pages for rates and latency.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

NODE_ID = os.environ.get("GPUVEC_NODE_ID", str(os.getpid()))

REQUESTS = Counter(
    "gpuvec_proxy_req_count",
    "Requests served, by function and outcome (success / fail)",
    ["node_id", "function_name", "status"],
)
LATENCY = Histogram(
    "gpuvec_proxy_req_latency_seconds",
    "Request latency in seconds, by function",
    ["node_id", "function_name"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)


def observe_request(function_name: str, ok: bool, seconds: float) -> None:
    """Count one request and its latency."""
    REQUESTS.labels(NODE_ID, function_name, "success" if ok else "fail").inc()
    LATENCY.labels(NODE_ID, function_name).observe(seconds)
