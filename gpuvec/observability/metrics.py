"""gpuvec's Prometheus metrics, named after Milvus's metric families (``milvus_proxy_*`` →
``gpuvec_proxy_*``, …), in the default ``prometheus_client`` registry of the process.

This module owns the proxy family: requests (count, latency, per collection), the rows each
write carries, and the query vectors of searches. Requests are recorded by
:func:`observe_request`, which the gRPC layer (``gpuvec.server.status.rpc``) and the
in-process client (:func:`count_calls` on ``gpuvec.MilvusClient``'s public methods) both
call; the dashboard pages read the same metrics for rates and latency.

No request is counted twice: :func:`request_scope` marks the current context as inside a
counted request (a contextvar, so per thread and per task), and a client call made inside
one — the servicer calling the client, or a client method calling another — is not counted
again. Data-path, index and WAL metrics live in :mod:`.internals`; gauges computed from the
live engines at scrape time in :mod:`.collector`.

Hot-path cost: one counter increment and one histogram observation per request, one
counter increment per write or search; never anything per row.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

# defined once, in the lowest layer that records metrics (the WAL writers)
from gpuvec.storage.wal.metrics import LATENCY_BUCKETS, NODE_ID

REQUESTS = Counter(
    "gpuvec_proxy_req_count",
    "Requests served, by function and outcome (success / fail)",
    ["node_id", "function_name", "status"],
)
LATENCY = Histogram(
    "gpuvec_proxy_req_latency_seconds",
    "Request latency in seconds, by function",
    ["node_id", "function_name"],
    buckets=LATENCY_BUCKETS,
)
COLLECTION_REQUESTS = Counter(
    "gpuvec_proxy_collection_req_count",
    "Successful requests naming a collection, by function and collection",
    ["node_id", "function_name", "collection_name"],
)
INSERTED = Counter(
    "gpuvec_proxy_insert_vectors_count",
    "Rows inserted (insert requests), by collection",
    ["node_id", "collection_name"],
)
UPSERTED = Counter(
    "gpuvec_proxy_upsert_vectors_count",
    "Rows upserted (each replaces the rows of its key), by collection",
    ["node_id", "collection_name"],
)
DELETED = Counter(
    "gpuvec_proxy_delete_vectors_count",
    "Primary keys deleted (delete requests), by collection",
    ["node_id", "collection_name"],
)
SEARCH_VECTORS = Counter(
    "gpuvec_proxy_search_vectors_count",
    "Query vectors searched (nq summed over search requests), by collection",
    ["node_id", "collection_name"],
)

_IN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gpuvec_in_request", default=False
)


# resolved label children: a request pays two dict lookups, not three ``labels()`` calls
_REQUEST_CHILDREN: dict[tuple[str, bool], tuple[Any, Any]] = {}
_COLLECTION_CHILDREN: dict[tuple[str, str], Any] = {}


def observe_request(function_name: str, ok: bool, seconds: float, collection: str = "") -> None:
    """Count one request and its latency; a successful request naming a collection is also
    counted for that collection (failed ones are not: a bad name must not add a series)."""
    children = _REQUEST_CHILDREN.get((function_name, ok))
    if children is None:
        status = "success" if ok else "fail"
        children = (REQUESTS.labels(NODE_ID, function_name, status),
                    LATENCY.labels(NODE_ID, function_name))  # fmt: skip
        _REQUEST_CHILDREN[(function_name, ok)] = children
    children[0].inc()
    children[1].observe(seconds)
    if ok and collection:
        child = _COLLECTION_CHILDREN.get((function_name, collection))
        if child is None:
            child = COLLECTION_REQUESTS.labels(NODE_ID, function_name, collection)
            _COLLECTION_CHILDREN[(function_name, collection)] = child
        child.inc()


def collection_label(db: str, name: str) -> str:
    """The ``collection_name`` label of a collection: its name, prefixed with ``<db>.``
    outside the default database (the engine's name for it, as in the segment gauges)."""
    return name if not db or db == "default" else f"{db}.{name}"


def in_request() -> bool:
    """Whether the current context is already inside a counted request."""
    return _IN_REQUEST.get()


@contextmanager
def request_scope() -> Iterator[None]:
    """Mark the block as inside a counted request (nested client calls are not counted)."""
    token = _IN_REQUEST.set(True)
    try:
        yield
    finally:
        _IN_REQUEST.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def count_calls(function_name: str) -> Callable[[F], F]:
    """Decorate a public ``MilvusClient`` method: count the call as ``function_name``
    (Milvus's RPC name) with its latency and collection, unless it runs inside a counted
    request already. The method's behaviour, result and exceptions are unchanged."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _IN_REQUEST.get():
                return fn(self, *args, **kwargs)
            token = _IN_REQUEST.set(True)
            start = time.perf_counter()
            ok = False
            try:
                out = fn(self, *args, **kwargs)
                ok = True
                return out
            finally:
                _IN_REQUEST.reset(token)
                name = args[0] if args else kwargs.get("collection_name", "")
                label = ""
                if ok and isinstance(name, str):
                    label = collection_label(getattr(self, "_db", ""), name)
                observe_request(function_name, ok, time.perf_counter() - start, label)

        return wrapper  # type: ignore[return-value]

    return wrap


def observe_write(collection: str, inserted: int, deleted: int) -> None:
    """Count one write's rows: inserts and deletes together are an upsert (its deletes
    only replace rows, so they count as upserted rows, not as deletes)."""
    if inserted and deleted:
        UPSERTED.labels(NODE_ID, collection).inc(inserted)
    elif inserted:
        INSERTED.labels(NODE_ID, collection).inc(inserted)
    elif deleted:
        DELETED.labels(NODE_ID, collection).inc(deleted)


_SEARCH_CHILDREN: dict[str, Any] = {}


def observe_search(collection: str, nq: int) -> None:
    """Count the query vectors of one search."""
    child = _SEARCH_CHILDREN.get(collection)
    if child is None:
        child = _SEARCH_CHILDREN[collection] = SEARCH_VECTORS.labels(NODE_ID, collection)
    child.inc(nq)
