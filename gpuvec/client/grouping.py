"""Grouping search (``search(..., group_by_field=F, group_size=G, strict_group_size=S)``),
as Milvus answers it: per query, the ``limit`` best *groups* — rows sharing a value of the
scalar field ``F`` (BOOL, INT8–INT64 or VARCHAR; null values form no group) — each with
up to ``G`` hits (default 1), groups ordered by their best hit, hits within a group by
score; the answer is those hits, flattened. With ``strict_group_size`` a group is filled to
``G`` hits whenever the collection has them.

A grouping search runs as plain searches over a growing candidate window (``limit × G × 4``
first, then four times as many, up to Milvus's top-k cap) until every query has its groups,
each full if strict, or the window holds every match. A part (base class) of
:class:`gpuvec.MilvusClient`.
"""

from __future__ import annotations

from typing import Any

from gpuvec.errors import InvalidArgumentError
from gpuvec.proxy.params import MAX_TOPK
from gpuvec.schema import DataType

__all__ = ["GROUPABLE", "GROUP_SCORERS", "GroupingMethods", "group_fused"]

GROUP_SCORERS = ("max", "sum", "avg")  # Milvus's rank_group_scorer of a grouping hybrid search

GROUPABLE = (DataType.BOOL, DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64,
             DataType.VARCHAR)  # fmt: skip


def _groups(hits: list[dict[str, Any]], field: str, limit: int, size: int,
            keep: bool) -> tuple[list[dict[str, Any]], bool]:  # fmt: skip
    """(the grouped hits of one query, whether its groups are complete): ``limit`` groups
    found and, when ``keep`` (strict), each holding ``size`` hits."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for h in hits:
        value = (h.get("entity") or {}).get(field)
        if value is None:
            continue
        if value not in groups:
            if len(groups) >= limit:
                continue
            groups[value] = []
        if len(groups[value]) < size:
            groups[value].append(h)
    done = len(groups) >= limit and (not keep or all(len(g) >= size for g in groups.values()))
    return [h for g in groups.values() for h in g], done


def group_fused(hits: list[dict[str, Any]], field: str, limit: int, size: int,
                scorer: str) -> list[dict[str, Any]]:  # fmt: skip
    """A grouping hybrid search's answer for one query: the fused hits (best first) in
    groups of up to ``size`` by ``field``, the ``limit`` groups with the best score —
    the max, sum or average (``scorer``) of their hits' fused scores, ties by the group
    met first — flattened, hits within a group best first."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for h in hits:
        value = (h.get("entity") or {}).get(field)
        if value is None:
            continue
        got = groups.setdefault(value, [])
        if len(got) < size:
            got.append(h)

    def score(g: list[dict[str, Any]]) -> float:
        d = [float(h["distance"]) for h in g]
        return max(d) if scorer == "max" else sum(d) if scorer == "sum" else sum(d) / len(d)

    ranked = sorted(enumerate(groups.values()), key=lambda ig: (-score(ig[1]), ig[0]))
    return [h for _, g in ranked[:limit] for h in g]


class GroupingMethods:
    def search(self, collection_name: str, *args: Any, **kwargs: Any) -> Any:  # MilvusClient
        raise NotImplementedError

    def _coll(self, name: str) -> Any:  # provided by MilvusClient
        raise NotImplementedError

    def _group_spec(self, collection_name: str, field: str, size: Any, limit: int) -> int:
        """Check a grouping request as Milvus checks it; returns the group size (default
        1)."""
        schema = self._coll(collection_name).schema
        names = {f.name: f for f in schema.fields}
        if field not in names:
            raise InvalidArgumentError(f"failed to get field schema by name: fieldName({field}) "
                                       "not found")  # fmt: skip
        if names[field].dtype not in GROUPABLE:
            raise InvalidArgumentError(
                f"unsupported data type {names[field].dtype.name} for group by operator "
                f"(field {field!r}; BOOL, INT8-INT64 and VARCHAR are)"
            )
        size = size or 1
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgumentError(f"group_size must be a positive int, got {size!r}")
        if limit * size > MAX_TOPK:
            raise InvalidArgumentError(
                f"limit {limit} × group_size {size} exceeds the top-k limit {MAX_TOPK}"
            )
        return size

    def _grouped_search(
        self, collection_name: str, field: str, limit: int, output_fields: list[str] | None,
        kwargs: dict[str, Any],
    ) -> Any:  # fmt: skip
        """:meth:`MilvusClient.search` with ``group_by_field=field`` (see the module)."""
        size = self._group_spec(collection_name, field, kwargs.pop("group_size", None), limit)
        strict = bool(kwargs.pop("strict_group_size", False))
        wanted = list(output_fields or [])
        fetch = wanted if field in wanted or "*" in wanted else [*wanted, field]
        window = min(MAX_TOPK, limit * size * 4)
        while True:
            raw = self.search(collection_name, limit=window, output_fields=fetch, **kwargs)
            out, complete = [], True
            for hits in raw:
                grouped, done = _groups(hits, field, limit, size, strict)
                complete &= done or len(hits) < window  # or every match is in the window
                out.append(grouped)
            if complete or window >= MAX_TOPK:
                break
            window = min(MAX_TOPK, window * 4)
        if fetch is not wanted:  # the field was fetched for grouping only
            for hits in out:
                for h in hits:
                    h["entity"].pop(field, None)
        return out
