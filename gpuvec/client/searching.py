"""The search part of ``MilvusClient`` (a base class of it): ``search`` as pymilvus names
it — dense, binary and sparse vectors, query text on a BM25 function's output, range
search, filters, offsets, output fields and (through :mod:`.grouping`) ``group_by_field``
— over the runtime's ``search`` (:class:`gpuvec.runtime.base.Runtime`), with pymilvus's
result shape."""

from __future__ import annotations

from typing import Any

from gpuvec.errors import InvalidArgumentError, NotSupportedYetError
from gpuvec.index.validate import check_range_params
from gpuvec.observability.metrics import observe_search
from gpuvec.proxy.fetch import fetch_rows, hit_keys
from gpuvec.proxy.params import (
    MAX_TOPK,
    index_search_params,
    metric_of,
    query_vectors,
    vector_field,
)
from gpuvec.rows import resolve_output_fields, table_to_rows
from gpuvec.text.bm25 import text_queries

__all__ = ["SearchMethods"]


class SearchMethods:
    _engine: Any
    _coll: Any
    _compile: Any
    _parts: Any
    _read_ts: Any
    _grouped_search: Any

    def search(
        self,
        collection_name: str,
        data: Any = None,
        filter: str = "",
        limit: int = 10,
        output_fields: list[str] | None = None,
        search_params: dict | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        anns_field: str | None = None,
        **kwargs: Any,
    ) -> list[list[dict[str, Any]]]:
        group = kwargs.pop("group_by_field", None)
        if group:  # grouping search (gpuvec.client.grouping): plain searches, then groups
            if int((search_params or {}).get("offset", kwargs.get("offset", 0)) or 0):
                raise NotSupportedYetError("search: offset with group_by_field")
            args = {**kwargs, "data": data, "filter": filter, "search_params": search_params,
                    "partition_names": partition_names, "anns_field": anns_field}  # fmt: skip
            return self._grouped_search(collection_name, group, limit, output_fields, args)
        coll = self._coll(collection_name)
        flt = self._compile(coll, filter, kwargs.get("filter_params"))
        field = vector_field(coll.schema, anns_field)
        metric = metric_of(coll, field.name, search_params)
        offset = int((search_params or {}).get("offset", kwargs.get("offset", 0)) or 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_TOPK:
            raise InvalidArgumentError(f"limit must be an int in [1, {MAX_TOPK}], got {limit!r}")
        if offset < 0 or limit + offset > MAX_TOPK:
            raise InvalidArgumentError(
                f"offset {offset} + limit {limit} must be in [1, {MAX_TOPK}]"
            )
        fn = coll.schema.function_outputs().get(field.name)
        queries = query_vectors(data, field) if fn is None else text_queries(data, coll.schema, fn)
        observe_search(coll.meta.name, len(queries))
        knobs = index_search_params(search_params)
        if knobs.get("radius") is not None:
            check_range_params(metric, knobs["radius"], knobs.get("range_filter"))
        parts = self._parts(coll, partition_names)
        read_ts = self._read_ts(coll, kwargs)
        k = limit + offset
        pk = coll.schema.primary_field.name  # type: ignore[union-attr]
        cols: tuple[str, ...] = ()
        if output_fields:
            spec = resolve_output_fields(coll.schema, output_fields)
            cols = tuple(dict.fromkeys((pk, *spec.columns)))
        segs, dist, seg, row = self._engine.search(
            coll, field.name, queries, k, metric, parts, read_ts, flt, knobs, cols
        )
        dist, seg, row = dist[:, offset:], seg[:, offset:], row[:, offset:]
        flat = seg >= 0
        if output_fields:
            table = fetch_rows(coll.schema, segs, seg[flat], row[flat], cols)
            pks = table.column(pk).to_pylist()
            entities = table_to_rows(
                table, coll.schema, output_fields, include_pk=pk in output_fields,
                wrap_bytes=False,
            )  # fmt: skip
        else:  # the common case: keys only, straight from the segments
            pks = hit_keys(segs, seg[flat], row[flat])
            entities = None
        counts = flat.sum(axis=1).tolist()
        dists = dist.tolist()
        out, i = [], 0
        for q, c in enumerate(counts):
            ds = dists[q]
            out.append(
                [
                    {
                        "id": pks[i + j],
                        "distance": ds[j],
                        "entity": {} if entities is None else entities[i + j],
                    }
                    for j in range(c)
                ]
            )
            i += c
        return out
