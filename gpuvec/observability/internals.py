"""Prometheus metrics of gpuvec's background work and write path, named after Milvus's
families: index builds and compactions (``gpuvec_datacoord_*``, recorded where the
coordinator submits them to the data nodes) and WAL appends (``gpuvec_streaming_wal_*``,
recorded by the local and Kafka WAL writers: :mod:`gpuvec.storage.wal.metrics`, re-exported
here).

A build or compaction is timed from its submission to its data-node task's end (queueing
included, as a user waits for it); the in-flight gauges rise on submission and fall when
the task ends, whatever its outcome. Each WAL append (one batch, atomic) is one histogram
observation and two counter increments.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Gauge, Histogram

from gpuvec.observability.metrics import NODE_ID
from gpuvec.storage.wal.metrics import (  # noqa: F401 - the WAL family, listed here too
    WAL_APPEND_BYTES,
    WAL_APPEND_LATENCY,
    WAL_APPEND_RECORDS,
    WalAppendMetrics,
)

TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

INDEX_BUILD_LATENCY = Histogram(
    "gpuvec_datacoord_index_build_latency_seconds",
    "Index build time from submission to the data-node task's end, by index type and outcome",
    ["node_id", "index_type", "status"],
    buckets=TASK_BUCKETS,
)
INDEX_TASKS = Gauge(
    "gpuvec_datacoord_index_task_num",
    "Index builds submitted to the data nodes and not yet ended (the build queue)",
    ["node_id"],
)
COMPACTION_LATENCY = Histogram(
    "gpuvec_datacoord_compaction_latency_seconds",
    "Compaction (one rewrite plan) time from submission to the task's end, by outcome",
    ["node_id", "status"],
    buckets=TASK_BUCKETS,
)
COMPACTION_TASKS = Gauge(
    "gpuvec_datacoord_compaction_task_num",
    "Compaction rewrites submitted to the data nodes and not yet ended",
    ["node_id"],
)


def _succeeded(fut: Any) -> bool:
    """Whether an ended future succeeded (a Dask future's ``status``, else its exception)."""
    status = getattr(fut, "status", None)
    if isinstance(status, str):
        return status == "finished"
    try:
        return fut.exception() is None
    except BaseException:  # cancelled
        return False


def _track(fut: Any, tasks: Any, latency: Any, *labels: str) -> None:
    """Count the task ``fut`` in the ``tasks`` gauge until it ends, then observe its time
    from now in ``latency`` under ``labels`` plus its status."""
    start = time.monotonic()
    gauge = tasks.labels(NODE_ID)
    gauge.inc()

    def done(f: Any) -> None:
        gauge.dec()
        status = "success" if _succeeded(f) else "fail"
        latency.labels(NODE_ID, *labels, status).observe(time.monotonic() - start)

    fut.add_done_callback(done)


def track_index_build(fut: Any, index_type: str) -> None:
    """Time the build task ``fut`` from now to its end; count it in the queue meanwhile."""
    _track(fut, INDEX_TASKS, INDEX_BUILD_LATENCY, index_type)


def track_compaction(fut: Any) -> None:
    """Time the compaction task ``fut`` from now to its end; count it meanwhile."""
    _track(fut, COMPACTION_TASKS, COMPACTION_LATENCY)
