"""pymilvus's search iterator v2 over the Search RPC, as Milvus serves it.

``MilvusClient.search_iterator`` sends ``search_iter_v2`` with ``search_iter_batch_size``,
then on every next page the last page's ``search_iter_last_bound`` (the score of its last
hit) and the iterator's ``search_iter_id`` token, at the guarantee timestamp of the first
page's ``session_ts``. Every page is a range search (the first too, so a hit scores the
same on every page): the ``batch_size`` best hits strictly worse than the bound (L2: a
larger distance; IP/COSINE: a smaller similarity), so pages never repeat a hit. Hits tied
exactly at a page's bound beyond the page are skipped, as in Milvus; for COSINE a
similarity of exactly -1 is the range's open end and never returned. The reply carries
the token and the new bound; a missing token is how pymilvus tells an old server and
falls back to iterator v1.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import CollectionSchema
from gpuvec.server.convert.search import parse_bool, parse_int

__all__ = ["IteratorPage", "iterator_page", "iterator_v2"]

FAR = 3.0e38  # an open range end (finite: range parameters must be numbers)


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
    if metric == "L2":  # range_filter <= distance < radius
        inner["radius"] = FAR
        if page.last_bound is not None:  # the next float32 score after the bound
            bound = np.float32(page.last_bound)
            inner["range_filter"] = float(np.nextafter(bound, np.float32(np.inf)))
    else:  # IP / COSINE: radius < similarity <= range_filter
        lowest = -1.0 if metric == "COSINE" else -FAR
        inner["radius"] = lowest
        if page.last_bound is not None:
            below = float(np.nextafter(np.float32(page.last_bound), np.float32(-np.inf)))
            if below <= lowest:  # nothing can be worse than the last page's last hit
                return None
            inner["range_filter"] = below
    params["params"] = inner
    out["search_params"] = params
    return out


def _index_metric(client: Any, kwargs: dict[str, Any], field: str) -> str:
    name = kwargs["collection_name"]
    for index_name in client.list_indexes(name, field_name=field):
        desc = client.describe_index(name, index_name) or {}
        if desc.get("metric_type"):
            return str(desc["metric_type"])
    return "COSINE"
