"""``MilvusClient.hybrid_search`` (pymilvus's names and result shape): several ANN requests
over one collection's vector fields — each with its own query vectors, search params, limit
and filter — whose results are fused by an ``RRFRanker`` or a ``WeightedRanker``
(:mod:`gpuvec.proxy.rerank`). A part (base class) of :class:`gpuvec.MilvusClient`; each
request runs as :meth:`MilvusClient.search`, so filters, partitions, output fields and
consistency behave exactly as there.
"""

from __future__ import annotations

from typing import Any

from gpuvec.client.grouping import GROUP_SCORERS, group_fused
from gpuvec.errors import InvalidArgumentError, NotSupportedYetError
from gpuvec.proxy.params import MAX_TOPK, metric_of
from gpuvec.proxy.rerank import fuse, ranker_spec

__all__ = ["MAX_REQUESTS", "HybridMethods"]

MAX_REQUESTS = 1024  # Milvus caps a hybrid search's requests (maxVectorFieldNum is lower)


def _request(req: Any) -> dict[str, Any]:
    """A pymilvus ``AnnSearchRequest`` (or the same as a dict) → its fields."""
    if isinstance(req, dict):
        get = req.get
    else:

        def get(name: str, default: Any = None) -> Any:
            return getattr(req, name, default)

    return {"data": get("data"), "anns_field": get("anns_field"), "param": get("param") or {},
            "limit": get("limit"), "expr": get("expr") or "",
            "expr_params": get("expr_params")}  # fmt: skip


class HybridMethods:
    def search(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:  # MilvusClient
        raise NotImplementedError

    def _coll(self, name: str) -> Any:  # provided by MilvusClient
        raise NotImplementedError

    def _group_spec(self, collection_name: str, field: str, size: Any, limit: int) -> int:
        raise NotImplementedError  # provided by GroupingMethods

    def hybrid_search(
        self,
        collection_name: str,
        reqs: list[Any],
        ranker: Any,
        limit: int = 10,
        output_fields: list[str] | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        **kwargs: Any,
    ) -> list[list[dict[str, Any]]]:
        """Run every request (``AnnSearchRequest``: ``data``, ``anns_field``, ``param``,
        ``limit``, ``expr``, ``expr_params``) and fuse each query's hits with ``ranker``;
        per query, the ``limit`` best (after ``offset``) as ``{"id", "distance" (the fused
        score), "entity"}``. With ``group_by_field`` (``group_size``,
        ``strict_group_size``, ``rank_group_scorer`` max / sum / avg), every request is a
        grouping search and the fused hits form the ``limit`` best groups, as in Milvus."""
        if not isinstance(reqs, list | tuple) or not reqs:
            raise InvalidArgumentError("hybrid_search needs at least one AnnSearchRequest")
        if len(reqs) > MAX_REQUESTS:
            raise InvalidArgumentError(f"hybrid_search takes at most {MAX_REQUESTS} requests")
        strategy, params = ranker_spec(ranker, len(reqs))
        offset = int(kwargs.get("offset", 0) or 0)
        coll = self._coll(collection_name)
        extra = {k: kwargs[k] for k in ("consistency_level", "guarantee_timestamp")
                 if kwargs.get(k) is not None}  # fmt: skip
        group = kwargs.get("group_by_field") or ""
        fetch = output_fields
        if group:  # each request a grouping search; the fused hits grouped again
            size = self._group_spec(collection_name, group, kwargs.get("group_size"), limit)
            scorer = str(kwargs.get("rank_group_scorer") or "max").lower()
            if scorer not in GROUP_SCORERS:
                raise InvalidArgumentError(
                    f"rank_group_scorer {scorer!r} is not one of {', '.join(GROUP_SCORERS)}"
                )
            if offset:
                raise NotSupportedYetError("hybrid_search: offset with group_by_field")
            wanted = list(output_fields or [])
            fetch = wanted if group in wanted or "*" in wanted else [*wanted, group]
            extra.update(group_by_field=group, group_size=size,
                         strict_group_size=bool(kwargs.get("strict_group_size", False)))
        results, metrics = [], []
        for i, raw in enumerate(reqs):
            r = _request(raw)
            if not r["anns_field"]:
                raise InvalidArgumentError(f"hybrid_search: request {i} names no anns_field")
            metrics.append(metric_of(coll, r["anns_field"], r["param"]))
            results.append(self.search(
                collection_name, data=r["data"], filter=r["expr"], limit=r["limit"],
                output_fields=fetch, search_params=r["param"],
                partition_names=partition_names, anns_field=r["anns_field"],
                filter_params=r["expr_params"], **extra,
            ))  # fmt: skip
        nq = {len(res) for res in results}
        if len(nq) != 1:
            raise InvalidArgumentError(
                f"hybrid_search: every request needs the same number of query vectors, got "
                f"{sorted(nq)}"
            )
        decimal = int(kwargs.get("round_decimal", -1))
        every = MAX_TOPK * len(results)  # grouping: fuse all, then keep `limit` groups
        fused = [fuse([res[q] for res in results], metrics, strategy, params,
                      every if group else limit, 0 if group else offset)
                 for q in range(nq.pop())]  # fmt: skip
        if group:
            fused = [group_fused(hits, group, limit, size, scorer) for hits in fused]
            if fetch is not output_fields and group not in (output_fields or []):
                for hits in fused:
                    for h in hits:
                        h["entity"] = {k: v for k, v in h["entity"].items() if k != group}
        if decimal >= 0:
            for hits in fused:
                for h in hits:
                    h["distance"] = round(h["distance"], decimal)
        return fused
