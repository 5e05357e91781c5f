"""Prometheus metrics of the data nodes' own work, and the Dask worker preload that exports
them with gpuvec's gauges on the worker's ``/metrics``.

The coordinator times builds and compactions from submission (``gpuvec_datacoord_*``, queue
included, :mod:`.internals`); a data node times what it ran itself, in the process that ran
it: ``gpuvec_datanode_task_latency_seconds`` (by task type ``index_build`` / ``compaction``
and outcome) and ``gpuvec_datanode_task_rows`` (rows read). The data-node tasks
(:mod:`gpuvec.pipelines`) are decorated with :func:`observed`.

A ``dask worker`` serves ``/metrics`` on its dashboard port from prometheus_client's default
registry. Started with ``--preload gpuvec.observability.datanode`` (the local cluster
launcher, the embedded runtime's worker programs, compose and Kubernetes all pass it), the
worker imports this module before it takes a task, so its ``/metrics`` carries these
families from the start, and :func:`dask_setup` registers gpuvec's scrape-time collector
there too: NVML utilisation and memory of the worker's GPUs (no families without a GPU).
Thread workers of the embedded runtime share their process's registry: the same metrics
appear on that process's ``/metrics``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from gpuvec.observability.internals import TASK_BUCKETS
from gpuvec.observability.metrics import NODE_ID

TASK_LATENCY = Histogram(
    "gpuvec_datanode_task_latency_seconds",
    "Time a data node spent running one task, by task type and outcome (success / fail)",
    ["node_id", "task_type", "status"],
    buckets=TASK_BUCKETS,
)
TASK_ROWS = Counter(
    "gpuvec_datanode_task_rows",
    "Rows read by the data node's successful tasks, by task type",
    ["node_id", "task_type"],
)


@contextmanager
def observe_task(task_type: str) -> Iterator[dict[str, int]]:
    """Time the block as one ``task_type`` task; set ``["rows"]`` on the yielded dict to
    count the rows it read. An exception is counted as ``fail`` and re-raised."""
    done = {"rows": 0}
    start = time.perf_counter()
    status = "fail"
    try:
        yield done
        status = "success"
    finally:
        TASK_LATENCY.labels(NODE_ID, task_type, status).observe(time.perf_counter() - start)
        if status == "success" and done["rows"]:
            TASK_ROWS.labels(NODE_ID, task_type).inc(done["rows"])


F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def observed(task_type: str, rows: Callable[[dict[str, Any]], int]) -> Callable[[F], F]:
    """Decorate a data-node task (returning a dict): each call is one ``task_type`` task,
    counting ``rows(result)`` rows when it succeeds."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
            with observe_task(task_type) as done:
                out = fn(*args, **kwargs)
                done["rows"] = int(rows(out))
                return out

        return run  # type: ignore[return-value]

    return wrap


def dask_setup(worker: Any) -> None:
    """Dask preload hook: gpuvec's scrape-time gauges (GPU utilisation, memory) join the
    worker's ``/metrics``."""
    from gpuvec.observability.collector import register_collector

    register_collector()
