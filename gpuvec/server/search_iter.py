"""pymilvus's search iterator v2 over the Search RPC, as Milvus serves it.

``MilvusClient.search_iterator`` sends ``search_iter_v2`` with ``search_iter_batch_size``,
then on every next page the last page's ``search_iter_last_bound`` (the score of its last
hit) and the iterator's ``search_iter_id`` token, at the guarantee timestamp of the first
page's ``session_ts``. Every page is a range search (the first too, so a hit scores the
same on every page): the ``batch_size`` best hits strictly worse than the bound (L2: a
larger distance; IP/COSINE: a smaller similarity), so pages never repeat a hit. Hits tied
exactly at a page's bound are not lost: the server remembers, per iterator token, the ids
it returned at the bound, and the next page starts *at* the bound without them (integer
HAMMING distances tie a lot); a token it does not know (another server) skips such ties,
as Milvus's stateless bound does; for COSINE a
similarity of exactly -1 is the range's open end and never returned. The reply carries
the token and the new bound; a missing token is how pymilvus tells an old server and
falls back to iterator v1.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.spec import DISTANCE_METRICS
from gpuvec.schema import CollectionSchema
from gpuvec.server.convert.search import parse_bool, parse_int

__all__ = ["IteratorPage", "finish_page", "iterator_page", "iterator_v2"]

FAR = 3.0e38  # an open range end (finite: range parameters must be numbers)
MAX_TOPK = 16384
MAX_ITERATORS = 4096  # iterators whose ties at the bound this server remembers (LRU)
_EDGES: OrderedDict[str, tuple[np.float32, frozenset[Any]]] = OrderedDict()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class IteratorPage:
    token: str
    batch_size: int
    last_bound: float | None


def iterator_v2(request: Any) -> IteratorPage | None:
    """The iterator v2 state a SearchRequest carries, or None for a plain search."""
    kv = {p.key: p.value for p in request.search_params}
    if not parse_bool("search_iter_v2", kv.get("search_iter_v2", "False")):
        return None
    batch = parse_int("search_iter_batch_size", kv.get("search_iter_batch_size", "") or
                      kv.get("topk", "0"))  # fmt: skip
    if batch < 1:
        raise InvalidArgumentError(f"search_iter_batch_size must be positive, got {batch}")
    bound = None
    if kv.get("search_iter_last_bound", "").strip():
        try:
            bound = float(kv["search_iter_last_bound"])
        except ValueError:
            raise InvalidArgumentError(
                f"search_iter_last_bound must be a number, got {kv['search_iter_last_bound']!r}"
            ) from None
    token = kv.get("search_iter_id", "").strip() or uuid.uuid4().hex
    return IteratorPage(token, batch, bound)


def iterator_page(
    client: Any, kwargs: dict[str, Any], page: IteratorPage, schema: CollectionSchema
) -> dict[str, Any] | None:
    """``MilvusClient.search`` arguments for the next page of ``page``; None when no hit
    can follow it (the page is empty)."""
    out = {**kwargs, "limit": page.batch_size, "offset": 0}
    field = kwargs.get("anns_field") or schema.vector_fields[0].name
    params = dict(kwargs.get("search_params") or {})
    metric = str(params.get("metric_type") or _index_metric(client, kwargs, field)).upper()
    inner = dict(params.get("params") or {})
    # every page, the first too, is a range search: its scores come from one code path, so
    # a hit scores the same on every page (a top-k search may differ from it by an ULP)
    seen = _seen_at(page)  # ids already returned at the bound (ties): the bound stays in
    if seen:
        out["limit"] = min(MAX_TOPK, page.batch_size + len(seen))
    if metric in DISTANCE_METRICS:  # L2, HAMMING, JACCARD: range_filter <= distance < radius
        inner["radius"] = FAR
        if page.last_bound is not None:  # the next float32 score after the bound
            bound = np.float32(page.last_bound)
            after = bound if seen else np.nextafter(bound, np.float32(np.inf))
            inner["range_filter"] = float(after)
    else:  # IP / COSINE: radius < similarity <= range_filter
        lowest = -1.0 if metric == "COSINE" else -FAR
        inner["radius"] = lowest
        if page.last_bound is not None:
            bound = np.float32(page.last_bound)
            below = float(bound if seen else np.nextafter(bound, np.float32(-np.inf)))
            if below <= lowest:  # nothing can be worse than the last page's last hit
                return None
            inner["range_filter"] = below
    params["params"] = inner
    out["search_params"] = params
    return out


def _seen_at(page: IteratorPage) -> frozenset[Any]:
    """The ids this iterator returned with exactly the last bound's score (none for a
    first page, or a token this server does not know: then ties past the bound are
    skipped)."""
    if page.last_bound is None:
        return frozenset()
    with _LOCK:
        state = _EDGES.get(page.token)
    if state is None or state[0] != np.float32(page.last_bound):
        return frozenset()
    return state[1]


def finish_page(page: IteratorPage, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One query's hits of an iterator page: the ones already returned at the bound
    dropped, ``batch_size`` kept; remembers the ids at the new bound for the next page."""
    seen = _seen_at(page)
    bound = np.float32(page.last_bound) if page.last_bound is not None else None
    if seen:
        hits = [h for h in hits
                if not (h["id"] in seen and np.float32(h["distance"]) == bound)]  # fmt: skip
    hits = hits[: page.batch_size]
    if hits:
        edge = np.float32(hits[-1]["distance"])
        ids = {h["id"] for h in hits if np.float32(h["distance"]) == edge}
        if bound is not None and edge == bound:
            ids |= seen
        with _LOCK:
            _EDGES[page.token] = (edge, frozenset(ids))
            _EDGES.move_to_end(page.token)
            while len(_EDGES) > MAX_ITERATORS:
                _EDGES.popitem(last=False)
    return hits


def _index_metric(client: Any, kwargs: dict[str, Any], field: str) -> str:
    name = kwargs["collection_name"]
    for index_name in client.list_indexes(name, field_name=field):
        desc = client.describe_index(name, index_name) or {}
        if desc.get("metric_type"):
            return str(desc["metric_type"])
    return "COSINE"
