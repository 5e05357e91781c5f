"""``query_iterator`` and ``search_iterator`` of ``MilvusClient`` (pymilvus's names,
parameters and batch shapes), for reading more rows or hits than one request returns.

Both read one snapshot: the first batch takes a read timestamp and every later batch
reads at it (as Milvus pins its iterators' MVCC timestamp), so rows written meanwhile are
not seen and none is seen twice. Keep an iterator short-lived: a compaction may drop rows
deleted more than ``compaction_retention_s`` before the snapshot.

* ``query_iterator`` pages in primary-key order: each batch is a query of
  ``(filter) and pk > <last key>`` with ``limit=batch_size``;
* ``search_iterator`` (one query vector) pages by distance: while the hits fit one search
  (``limit`` ≤ 16384, Milvus's top-k cap) each batch is the next slice of a top-k search;
  past that it continues with range searches bounded by the last distance returned,
  skipping the hits already returned at that distance.

``next()`` returns the next batch (a list of row dicts, or of hit dicts ``{id, distance,
entity}``), an empty list when done; ``close()`` ends it early.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.spec import DISTANCE_METRICS
from gpuvec.proxy.params import MAX_TOPK

if TYPE_CHECKING:
    from gpuvec.client.facade import MilvusClient

UNLIMITED = -1
_FAR = 3.0e38  # a range bound beyond any finite distance


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    return value


def _limit(value: Any) -> int:
    if value is None or value == UNLIMITED:
        return UNLIMITED
    return _positive("limit", value)


def _one_vector(data: Any) -> list[Any]:
    """The query vectors of ``data``: one vector (flat list / 1-D array) or a batch."""
    if hasattr(data, "shape"):
        return list(np.atleast_2d(np.asarray(data)))
    if isinstance(data, list | tuple) and data and isinstance(data[0], int | float):
        return [list(data)]
    return list(data) if isinstance(data, list | tuple) else [data]


class QueryIterator:
    """Rows matching ``filter`` in primary-key order, ``batch_size`` at a time."""

    def __init__(
        self, client: MilvusClient, collection_name: str, batch_size: int, limit: int,
        filter: str, output_fields: list[str] | None, kwargs: dict[str, Any],
    ) -> None:  # fmt: skip
        self.client, self.name = client, collection_name
        self.batch_size = min(_positive("batch_size", batch_size), MAX_TOPK)
        self.left = _limit(limit)
        self.filter = (filter or "").strip()
        self.output_fields = output_fields
        self.kwargs = {k: v for k, v in kwargs.items() if k not in ("limit", "offset")}
        coll = client._coll(collection_name)
        self.pk = coll.schema.primary_field.name  # type: ignore[union-attr]
        self.kwargs["_snapshot_ts"] = client._read_ts(coll, kwargs)
        self.last: Any = None
        self.done = False

    def next(self) -> list[dict[str, Any]]:
        if self.done or self.left == 0:
            return []
        n = self.batch_size if self.left == UNLIMITED else min(self.batch_size, self.left)
        parts = [f"({self.filter})"] if self.filter else []
        if self.last is not None:
            parts.append(f"{self.pk} > {json.dumps(self.last)}")
        batch = self.client.query(self.name, filter=" and ".join(parts),
                                  output_fields=self.output_fields, limit=n,
                                  **self.kwargs)  # fmt: skip
        if len(batch) < n:
            self.done = True
        if batch:
            self.last = batch[-1][self.pk]
            if self.left != UNLIMITED:
                self.left -= len(batch)
        return batch

    def close(self) -> None:
        self.done = True


class SearchIterator:
    """Hits of one query vector, nearest first, ``batch_size`` at a time."""

    def __init__(
        self, client: MilvusClient, collection_name: str, data: Any, batch_size: int,
        limit: int, search_args: dict[str, Any],
    ) -> None:  # fmt: skip
        self.client, self.name = client, collection_name
        self.batch_size = min(_positive("batch_size", batch_size), MAX_TOPK)
        self.left = _limit(limit)
        rows = _one_vector(data)
        if len(rows) != 1:
            raise InvalidArgumentError(
                f"search_iterator takes exactly one query vector, got {len(rows)}"
            )
        self.data = list(rows)
        coll = client._coll(collection_name)
        params = dict(search_args.pop("search_params", None) or {})
        self.metric = str(params.get("metric_type") or self._metric(coll, search_args)).upper()
        self.params = params
        self.args = search_args
        self.args["_snapshot_ts"] = client._read_ts(coll, search_args)
        self.returned = 0  # hits handed out so far
        self.edge: float | None = None  # distance of the last hit handed out
        self.at_edge: set[Any] = set()  # ids handed out at exactly that distance
        self.done = False

    def _metric(self, coll: Any, args: dict[str, Any]) -> str:
        from gpuvec.proxy.params import metric_of, vector_field

        field = vector_field(coll.schema, args.get("anns_field"))
        return metric_of(coll, field.name, None)

    def _search(self, limit: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        hits = self.client.search(self.name, data=self.data, limit=limit, search_params=params,
                                  **self.args)  # fmt: skip
        return hits[0] if hits else []

    def next(self) -> list[dict[str, Any]]:
        if self.done or self.left == 0:
            return []
        n = self.batch_size if self.left == UNLIMITED else min(self.batch_size, self.left)
        if self.returned + n <= MAX_TOPK:  # still within one top-k search
            hits = self._search(self.returned + n, self.params)[self.returned :]
        else:
            hits = self._beyond_topk(n)
        hits = hits[:n]
        if len(hits) < n:
            self.done = True
        self._note(hits)
        return hits

    def _beyond_topk(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` hits by a range search starting at the last distance returned."""
        if self.edge is None:
            return []
        if self.metric in DISTANCE_METRICS:  # range_filter <= distance < radius
            bounds = {"range_filter": self.edge, "radius": _FAR}
        else:  # radius < similarity <= range_filter
            low = -1.0 if self.metric == "COSINE" else -_FAR
            bounds = {"radius": low, "range_filter": self.edge}
        want = min(MAX_TOPK, n + len(self.at_edge))
        hits = self._search(want, {**self.params, **bounds})
        return [h for h in hits if h["id"] not in self.at_edge]

    def _note(self, hits: list[dict[str, Any]]) -> None:
        for h in hits:
            d = float(h["distance"])
            if d != self.edge:
                self.edge, self.at_edge = d, set()
            self.at_edge.add(h["id"])
        self.returned += len(hits)
        if self.left != UNLIMITED:
            self.left -= len(hits)

    def close(self) -> None:
        self.done = True


class IteratorMethods:
    """The iterator part of ``MilvusClient`` (a base class of it)."""

    def query_iterator(
        self,
        collection_name: str,
        batch_size: int = 1000,
        limit: int = UNLIMITED,
        filter: str = "",
        output_fields: list[str] | None = None,
        partition_names: list[str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> QueryIterator:
        """Rows matching ``filter`` (all rows when empty) in primary-key order, in batches
        of ``batch_size``, at most ``limit`` rows (-1: all). See the module docstring."""
        kwargs = {**kwargs, "partition_names": partition_names}
        client: Any = self
        return QueryIterator(client, collection_name, batch_size, limit, filter, output_fields,
                             kwargs)  # fmt: skip

    def search_iterator(
        self,
        collection_name: str,
        data: Any,
        batch_size: int = 1000,
        filter: str | None = None,
        limit: int = UNLIMITED,
        output_fields: list[str] | None = None,
        search_params: dict | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        anns_field: str | None = None,
        **kwargs: Any,
    ) -> SearchIterator:
        """Hits of one query vector nearest first, in batches of ``batch_size``, at most
        ``limit`` (-1: until the collection is exhausted). See the module docstring."""
        args = {**kwargs, "filter": filter or "", "output_fields": output_fields,
                "search_params": search_params, "partition_names": partition_names,
                "anns_field": anns_field}  # fmt: skip
        client: Any = self
        return SearchIterator(client, collection_name, data, batch_size, limit, args)
