"""Prometheus metrics of the WAL writers (``gpuvec_streaming_wal_*``, Milvus's streaming
family): each append (one atomic batch) is one latency observation and two counter
increments, by WAL type (``local`` / ``kafka``). In the storage layer so the writers need
nothing above it; :mod:`gpuvec.observability.internals` lists them with the other
background-work metrics.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

NODE_ID = os.environ.get("GPUVEC_NODE_ID", str(os.getpid()))  # every gpuvec series' node_id
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)

WAL_APPEND_LATENCY = Histogram(
    "gpuvec_streaming_wal_append_latency_seconds",
    "WAL append (one atomic batch) latency in seconds, by WAL type (local / kafka)",
    ["node_id", "wal_type"],
    buckets=LATENCY_BUCKETS,
)
WAL_APPEND_RECORDS = Counter(
    "gpuvec_streaming_wal_append_messages",
    "Records appended to the WAL, by WAL type",
    ["node_id", "wal_type"],
)
WAL_APPEND_BYTES = Counter(
    "gpuvec_streaming_wal_append_bytes",
    "Bytes appended to the WAL (record headers and payloads), by WAL type",
    ["node_id", "wal_type"],
)


class WalAppendMetrics:
    """The WAL append metrics' children for one WAL type, resolved once (a writer then
    pays no label lookup per append)."""

    def __init__(self, wal_type: str) -> None:
        self._latency = WAL_APPEND_LATENCY.labels(NODE_ID, wal_type)
        self._records = WAL_APPEND_RECORDS.labels(NODE_ID, wal_type)
        self._bytes = WAL_APPEND_BYTES.labels(NODE_ID, wal_type)

    def observe(self, records: int, nbytes: int, seconds: float) -> None:
        """Record one successful append of ``records`` records, ``nbytes`` bytes."""
        self._latency.observe(seconds)
        self._records.inc(records)
        self._bytes.inc(nbytes)
