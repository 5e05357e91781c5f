"""Query and delete on the wire: ``milvus_pb2.QueryRequest`` / ``DeleteRequest`` → the
arguments of ``MilvusClient.query`` / ``delete``, and query rows → ``QueryResults``.

This module owns:

- :func:`parse_query_request`: the request as pymilvus builds it (``Prepare.query_request``):
  ``expr`` and its template values, output fields (none: the primary key only, Milvus's
  server rule; pymilvus's ``MilvusClient.query`` sends ``["*"]`` when given none),
  ``query_params`` (``limit``, ``offset``, the query iterator's ``iterator`` and
  ``reduce_stop_for_best``, accepted), partitions and consistency. ``order_by_fields``,
  ``group_by_fields``, element-level iterator cursors and ``ignore_growing=True`` raise
  :class:`~gpuvec.errors.NotSupportedYetError`.
- :func:`query_result_to_proto`: the embedded rows as a ``QueryResults`` (status left to the
  caller), columns from :func:`~gpuvec.server.convert.fields.field_data_from_rows`.
- :func:`parse_delete_request`: pymilvus sends every delete as an expression, ids included
  (``pk in [1,2]``, ``pk in ['a','b']``). Such a plain primary-key list (literal, or one
  ``{param}`` template list) becomes ``ids``: a delete by keys, as Milvus's "simple delete"
  does (no scan; every listed key counts). Any other expression stays a filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from gpuvec.errors import NotSupportedYetError, SchemaError
from gpuvec.schema import CollectionSchema, FieldSchema
from gpuvec.server.convert.fields import field_data_from_rows, user_output_fields
from gpuvec.server.convert.search import (
    consistency_of,
    parse_bool,
    parse_int,
    template_values,
)

__all__ = [
    "DeleteArgs",
    "QueryArgs",
    "parse_delete_request",
    "parse_query_request",
    "primary_keys_of",
    "query_result_to_proto",
]

_UNSUPPORTED = {
    "order_by_fields": "query with order_by_fields",
    "group_by_fields": "query with group_by_fields",
    "query_iter_last_pk": "an element-level query iterator (query_iter_last_pk)",
    "query_iter_last_element_offset": "an element-level query iterator",
}


@dataclass
class QueryArgs:
    """Exactly the arguments of ``MilvusClient.query`` (see :meth:`kwargs`) plus request
    details the embedded client does not take."""

    collection_name: str
    filter: str = ""
    output_fields: list[str] = field(default_factory=list)
    partition_names: list[str] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    filter_params: dict[str, Any] = field(default_factory=dict)
    consistency_level: str | None = None  # None: the collection's own level
    guarantee_timestamp: int = 0
    use_default_consistency: bool = True
    iterator: bool = False
    reduce_stop_for_best: bool = False
    db_name: str = ""

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MilvusClient.query(**args.kwargs())``."""
        out: dict[str, Any] = {
            "collection_name": self.collection_name,
            "filter": self.filter,
            "output_fields": list(self.output_fields),
            "partition_names": list(self.partition_names) or None,
        }
        for key in ("limit", "offset", "consistency_level"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.filter_params:
            out["filter_params"] = self.filter_params
        return out


def _primary(schema: CollectionSchema) -> FieldSchema:
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    return pk


def parse_query_request(req: milvus_pb2.QueryRequest, schema: CollectionSchema) -> QueryArgs:
    """A QueryRequest → the arguments of ``MilvusClient.query`` on a collection of ``schema``."""
    if req.namespace:
        raise NotSupportedYetError("query: namespaces are not supported by gpuvec")
    params = {p.key: p.value for p in req.query_params}
    for key, what in _UNSUPPORTED.items():
        if params.get(key, "").strip():
            raise NotSupportedYetError(f"query: {what} is not supported by gpuvec")
    if parse_bool("ignore_growing", params.get("ignore_growing", "False")):
        raise NotSupportedYetError("query: ignore_growing=True is not supported by gpuvec")
    limit = parse_int("limit", params["limit"]) if "limit" in params else None
    offset = parse_int("offset", params["offset"]) if "offset" in params else None
    return QueryArgs(
        collection_name=req.collection_name,
        filter=req.expr,
        output_fields=list(req.output_fields) or [_primary(schema).name],
        partition_names=list(req.partition_names),
        limit=limit,
        offset=offset,
        filter_params=template_values(req.expr_template_values),
        consistency_level=consistency_of(req.consistency_level, req.use_default_consistency),
        guarantee_timestamp=int(req.guarantee_timestamp),
        use_default_consistency=req.use_default_consistency,
        iterator=parse_bool("iterator", params.get("iterator", "False")),
        reduce_stop_for_best=parse_bool(
            "reduce_stop_for_best", params.get("reduce_stop_for_best", "False")
        ),
        db_name=req.db_name,
    )


def query_result_to_proto(
    rows: list[dict[str, Any]],
    schema: CollectionSchema,
    output_fields: list[str],
    collection_name: str = "",
) -> milvus_pb2.QueryResults:
    """``MilvusClient.query`` rows for ``output_fields`` → QueryResults (no status set)."""
    return milvus_pb2.QueryResults(
        collection_name=collection_name,
        fields_data=field_data_from_rows(rows, schema, output_fields),
        output_fields=user_output_fields(schema, output_fields),
        primary_field_name=_primary(schema).name,
    )


# -- delete ---------------------------------------------------------------------------------
@dataclass
class DeleteArgs:
    """Exactly the arguments of ``MilvusClient.delete`` (see :meth:`kwargs`): ``ids`` for a
    plain primary-key list, else ``filter`` (with ``filter_params``)."""

    collection_name: str
    ids: list[int] | list[str] | None = None
    filter: str | None = None
    partition_name: str | None = None
    filter_params: dict[str, Any] = field(default_factory=dict)
    consistency_level: str | None = None
    db_name: str = ""

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MilvusClient.delete(**args.kwargs())``."""
        out: dict[str, Any] = {
            "collection_name": self.collection_name,
            "partition_name": self.partition_name,
        }
        if self.ids is not None:
            out["ids"] = self.ids
        else:
            out["filter"] = self.filter
            if self.filter_params:
                out["filter_params"] = self.filter_params
        return out


def primary_keys_of(expr: str, params: dict[str, Any], schema: CollectionSchema) -> list | None:
    """The keys of an expression that is only ``<pk> in [...]`` / ``<pk> in {param}`` /
    ``<pk> == v``, else None. Read by the filter language itself (so ``010`` is octal 8 and
    only ASCII digits and whitespace count, exactly as the full filter path reads them); a
    malformed expression raises the filter's error."""
    from gpuvec.expr import compile_filter

    if not expr or not expr.strip(" \t\r\n"):
        return None
    flt = compile_filter(expr, schema, params or None)
    return None if flt is None else flt.pk_values()


def parse_delete_request(req: milvus_pb2.DeleteRequest, schema: CollectionSchema) -> DeleteArgs:
    """A DeleteRequest → the arguments of ``MilvusClient.delete``."""
    if req.namespace:
        raise NotSupportedYetError("delete: namespaces are not supported by gpuvec")
    params = template_values(req.expr_template_values)
    ids = primary_keys_of(req.expr, params, schema)
    return DeleteArgs(
        collection_name=req.collection_name,
        ids=ids,
        filter=None if ids is not None else req.expr,
        partition_name=req.partition_name or None,
        filter_params={} if ids is not None else params,
        consistency_level=consistency_of(req.consistency_level, False),
        db_name=req.db_name,
    )
