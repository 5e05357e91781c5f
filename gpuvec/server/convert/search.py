"""Search on the wire: ``milvus_pb2.SearchRequest`` → ``MilvusClient.search`` arguments, and
the embedded client's hits → ``schema_pb2.SearchResultData``.

This module owns the search translation and the pieces query and delete share with it:

- :func:`parse_search_request` reads a request as pymilvus builds it
  (``Prepare.search_requests_with_expr``): the query vectors from the serialised
  ``PlaceholderGroup`` (little-endian float32, one value per query), the request-level
  ``search_params`` pairs (``topk``, ``offset``, ``round_decimal``, ``metric_type``,
  ``anns_field``, ``params`` as JSON, where pymilvus also copies every top-level key), the
  filter and its template values, consistency. Features gpuvec does not serve (hybrid
  sub-requests, search by primary keys, function scores and chains, highlighters,
  aggregations, group-by, order-by, embedding lists, ignore_growing); FLOAT16 / BFLOAT16
  / INT8 / BINARY query vectors come as their raw bytes, one per query, and are checked
  against the field by the client's search
  raise :class:`~gpuvec.errors.NotSupportedYetError` naming the feature. Search
  iterator keys are accepted and ignored: no iterator token comes back, so pymilvus falls
  back to its v1 (range-search) iterator.
- :func:`search_result_to_proto` builds the result as Milvus's proxy does: ids as
  ``int_id``/``str_id`` by the primary key's type, float32 scores (rounded there when
  ``round_decimal`` is not -1), ``topks`` per query, the output fields as columns and the
  primary key among them when asked for by name or by ``*``.
- :func:`template_values` decodes ``expr_template_values``; :func:`consistency_of` maps
  the wire's consistency to the level names the embedded client takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from gpuvec import vectors as vk
from gpuvec.datatypes import DataType
from gpuvec.errors import InvalidArgumentError, NotSupportedYetError, SchemaError
from gpuvec.rows import resolve_output_fields
from gpuvec.rows_json import load_json
from gpuvec.schema import CollectionSchema
from gpuvec.server.convert.fields import fields_to_proto, user_output_fields

__all__ = [
    "SearchArgs",
    "check_param_numbers",
    "consistency_of",
    "parse_bool",
    "parse_int",
    "parse_search_request",
    "search_result_to_proto",
    "template_values",
]

# ConsistencyLevel on the wire → the embedded client's names. Customized (a caller's own
# guarantee timestamp) reads as Strong: the embedded read timestamp is always fresh.
LEVELS = {0: "Strong", 1: "Session", 2: "Bounded", 3: "Eventually", 4: "Strong"}
_INT = re.compile(r"\s*[+-]?([0-9]+)\s*")
MAX_ROUND_DECIMAL = 6  # Milvus: round_decimal is -1 or 0..6
# keys pymilvus puts beside the index knobs in "params" (it copies every top-level key)
_REQUEST_KEYS = frozenset(
    {
        "metric_type",
        "offset",
        "ignore_growing",
        "round_decimal",
        "page_retain_order",
        "analyzer_name",
        "hints",
        "topk",
        "anns_field",
    }
)
_UNSUPPORTED_KEYS = {
    "group_by_fields": "grouping search by several fields (group_by_fields)",
    "order_by_fields": "search with order_by_fields",
    "json_path": "grouping by a JSON path",
    "json_type": "grouping by a JSON path",
}


@dataclass
class SearchArgs:
    """Exactly the arguments of ``MilvusClient.search`` (see :meth:`kwargs`), plus what
    the response needs (``round_decimal``) and what the embedded client does not take."""

    collection_name: str
    data: np.ndarray | list[bytes]  # float32 [nq, dim], or raw rows of a byte vector type
    limit: int
    anns_field: str | None = None
    offset: int = 0
    filter: str = ""
    filter_params: dict[str, Any] = field(default_factory=dict)
    search_params: dict[str, Any] = field(default_factory=dict)
    output_fields: list[str] = field(default_factory=list)
    partition_names: list[str] = field(default_factory=list)
    consistency_level: str | None = None  # None: the collection's own level
    guarantee_timestamp: int = 0
    use_default_consistency: bool = True
    round_decimal: int = -1
    iterator: bool = False
    db_name: str = ""
    group_by_field: str = ""  # grouping search (gpuvec.client.grouping)
    group_size: int = 0  # 0: the default (1)
    strict_group_size: bool = False

    @property
    def nq(self) -> int:
        return len(self.data)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MilvusClient.search(**args.kwargs())``."""
        out: dict[str, Any] = {
            "collection_name": self.collection_name,
            "data": self.data,
            "filter": self.filter,
            "limit": self.limit,
            "output_fields": list(self.output_fields) or None,
            "search_params": self.search_params,
            "partition_names": list(self.partition_names) or None,
            "anns_field": self.anns_field,
            "offset": self.offset,
        }
        if self.filter_params:
            out["filter_params"] = self.filter_params
        if self.consistency_level is not None:
            out["consistency_level"] = self.consistency_level
        if self.group_by_field:
            out["group_by_field"] = self.group_by_field
            out["group_size"] = self.group_size or 1
            out["strict_group_size"] = self.strict_group_size
        return out


def consistency_of(level: int, use_default: bool) -> str | None:
    """The embedded client's ``consistency_level`` for a request (None: the default)."""
    if use_default:
        return None
    if level not in LEVELS:
        raise InvalidArgumentError(f"consistency_level: unknown level {level}")
    return LEVELS[level]


def parse_bool(key: str, text: str) -> bool:
    """A boolean request param, as Go's ``strconv.ParseBool`` (Milvus) reads it."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgumentError(f"{key}: {text!r} is not a boolean")


def parse_int(key: str, text: str) -> int:
    """An integer request param; more than 20 digits is out of range (any int64 has fewer),
    so no huge number is ever converted."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    m = _INT.fullmatch(text)
    if m is None:
        raise InvalidArgumentError(f"{key}: {shown!r} is not an integer")
    if len(m.group(1).lstrip("0")) > 20:
        raise InvalidArgumentError(f"{key}: {shown!r} is out of range")
    return int(text)


def check_param_numbers(params: Mapping[str, Any], where: str) -> None:
    """Refuse integer-looking text no integer can come from (``"+-5"``) or past any int64
    (more than 20 digits, which ``int()`` may not even convert): index and search
    parameters reach the index validator, which converts such text with ``int()``."""
    for key, value in params.items():
        if not isinstance(value, str):
            continue
        text = value.strip()
        digits = text.lstrip("+-")
        if digits.isdigit() and (len(text) - len(digits) > 1 or len(digits.lstrip("0")) > 20):
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise InvalidArgumentError(f"{where} {key!r}: {shown!r} is not an int64 integer")


# -- template values ------------------------------------------------------------------------
def template_values(values: Mapping[str, schema_pb2.TemplateValue]) -> dict[str, Any]:
    """``expr_template_values`` → ``filter_params`` (pymilvus's ``prepare_expression_template``
    in reverse: mixed-type lists arrive as JSON elements)."""
    return {key: _template_value(key, v) for key, v in values.items()}


def _template_value(key: str, v: schema_pb2.TemplateValue) -> Any:
    kind = v.WhichOneof("val")
    if kind is None:
        raise InvalidArgumentError(f"filter param {key!r}: the template value is empty")
    if kind == "array_val":
        return _template_array(key, v.array_val)
    return getattr(v, kind)


def _template_array(key: str, arr: schema_pb2.TemplateArrayValue) -> list[Any]:
    kind = arr.WhichOneof("data")
    if kind is None:
        return []
    if kind == "array_data":
        return [_template_array(key, a) for a in arr.array_data.data]
    if kind == "json_data":
        where = f"filter param {key!r}"
        return [load_json(b, where, error=InvalidArgumentError) for b in arr.json_data.data]
    return list(getattr(arr, kind).data)


# -- request --------------------------------------------------------------------------------
def _refuse_unsupported(req: milvus_pb2.SearchRequest) -> None:
    if req.dsl_type not in common_pb2.DslType.values():
        raise InvalidArgumentError(f"search: unknown dsl_type {req.dsl_type}")
    checks = (
        (len(req.sub_reqs) > 0, "hybrid sub-requests (sub_reqs)"),
        (req.search_by_primary_keys or req.HasField("ids"), "search by primary keys"),
        (req.HasField("function_score"), "function_score (rerankers)"),
        (len(req.function_chains) > 0, "function_chains"),
        (req.HasField("highlighter"), "highlighter"),
        (req.HasField("search_aggregation"), "search_aggregation"),
        (bool(req.namespace), "namespaces"),
        (req.dsl_type == common_pb2.Dsl and bool(req.dsl), "the legacy DSL (dsl_type=Dsl)"),
    )
    for bad, what in checks:
        if bad:
            raise NotSupportedYetError(f"search: {what} is not supported by gpuvec")


_BYTE_PLACEHOLDERS = {k.placeholder for k in vk.KINDS.values() if k.slot != "float_vector"}
_BYTE_PLACEHOLDERS.add(vk.SPARSE.placeholder)  # one cell of (index, value) pairs per query


def _query_vectors(req: milvus_pb2.SearchRequest) -> np.ndarray | list[bytes]:
    group = common_pb2.PlaceholderGroup()
    try:
        group.ParseFromString(req.placeholder_group)
    except DecodeError as exc:
        raise InvalidArgumentError(f"search: placeholder_group is not valid: {exc}") from None
    if len(group.placeholders) != 1:
        raise InvalidArgumentError(
            f"search: expected one placeholder of query vectors, got {len(group.placeholders)}"
        )
    ph = group.placeholders[0]
    if ph.element_level:
        raise NotSupportedYetError("search: element-level (embedding list) search")
    if ph.type not in common_pb2.PlaceholderType.values():
        raise InvalidArgumentError(f"search: unknown placeholder type {ph.type}")
    if ph.type == common_pb2.PlaceholderType.VarChar:  # query text (a BM25 output field)
        texts = [v.decode("utf-8", errors="replace") for v in ph.values]
        if not texts:
            raise InvalidArgumentError("search: no query texts (nq = 0)")
        return texts  # type: ignore[return-value]
    if ph.type in _BYTE_PLACEHOLDERS:  # FLOAT16 / BFLOAT16 / INT8 / BINARY: raw rows
        values = list(ph.values)
        if not values:
            raise InvalidArgumentError("search: no query vectors (nq = 0)")
        if req.nq and req.nq != len(values):
            raise InvalidArgumentError(
                f"search: nq is {req.nq} but {len(values)} vectors were sent"
            )
        return values  # checked against the field's type by the client's search
    if ph.type != common_pb2.PlaceholderType.FloatVector:
        name = common_pb2.PlaceholderType.Name(ph.type)
        raise NotSupportedYetError(
            f"search: query data of type {name} is not supported; gpuvec serves "
            "FLOAT_VECTOR, FLOAT16_VECTOR, BFLOAT16_VECTOR, INT8_VECTOR, BINARY_VECTOR and "
            "SPARSE_FLOAT_VECTOR"
        )
    values = list(ph.values)
    if not values:
        raise InvalidArgumentError("search: no query vectors (nq = 0)")
    size = len(values[0])
    if size == 0 or size % 4 or any(len(v) != size for v in values):
        raise InvalidArgumentError(
            "search: query vectors must all have the same number of float32 values"
        )
    if req.nq and req.nq != len(values):
        raise InvalidArgumentError(f"search: nq is {req.nq} but {len(values)} vectors were sent")
    return np.frombuffer(b"".join(values), dtype="<f4").reshape(len(values), size // 4)


def _round_decimal(text: str) -> int:
    """``round_decimal``: -1 (no rounding) or 0..6 digits, as Milvus's proxy allows."""
    value = parse_int("round_decimal", text)
    if value != -1 and not 0 <= value <= MAX_ROUND_DECIMAL:
        raise InvalidArgumentError(
            f"round_decimal {value} is invalid: must be -1 or in [0, {MAX_ROUND_DECIMAL}]"
        )
    return value


def parse_search_request(req: milvus_pb2.SearchRequest) -> SearchArgs:
    """A SearchRequest → the arguments of ``MilvusClient.search``."""
    _refuse_unsupported(req)
    kv = {p.key: p.value for p in req.search_params}
    for key, what in _UNSUPPORTED_KEYS.items():
        if kv.get(key, "").strip():
            raise NotSupportedYetError(f"search: {what} is not supported by gpuvec")
    if parse_bool("ignore_growing", kv.get("ignore_growing", "False")):
        raise NotSupportedYetError("search: ignore_growing=True is not supported by gpuvec")
    if "topk" not in kv:
        raise InvalidArgumentError("search: topk (limit) not found in search_params")
    inner = load_json(kv.get("params") or "{}", "search: params", error=InvalidArgumentError)
    if not isinstance(inner, dict):
        raise InvalidArgumentError(f"search: params must be a JSON object, got {inner!r:.60}")
    metric = kv.get("metric_type") or inner.get("metric_type")
    if metric is not None and not isinstance(metric, str):
        raise InvalidArgumentError(f"search: metric_type must be a string, got {metric!r:.60}")
    offset_text = kv.get("offset", str(inner.get("offset", 0)))
    search_params: dict[str, Any] = {}
    if metric:
        search_params["metric_type"] = str(metric)
    search_params["params"] = {k: v for k, v in inner.items() if k not in _REQUEST_KEYS}
    check_param_numbers(search_params["params"], "search param")
    return SearchArgs(
        collection_name=req.collection_name,
        data=_query_vectors(req),
        limit=parse_int("topk", kv["topk"]),
        anns_field=kv.get("anns_field") or None,
        offset=parse_int("offset", offset_text),
        filter=req.dsl,
        filter_params=template_values(req.expr_template_values),
        search_params=search_params,
        output_fields=list(req.output_fields),
        partition_names=list(req.partition_names),
        consistency_level=consistency_of(req.consistency_level, req.use_default_consistency),
        guarantee_timestamp=int(req.guarantee_timestamp),
        use_default_consistency=req.use_default_consistency,
        round_decimal=_round_decimal(kv.get("round_decimal", "-1")),
        iterator=parse_bool("iterator", kv.get("iterator", "False")),
        db_name=req.db_name,
        group_by_field=kv.get("group_by_field", "").strip(),
        group_size=parse_int("group_size", kv.get("group_size", "0") or "0"),
        strict_group_size=parse_bool("strict_group_size", kv.get("strict_group_size", "False")),
    )


# -- result ---------------------------------------------------------------------------------
def _rounded(scores: list[float], round_decimal: int) -> list[float]:
    """Milvus's proxy rounding: floor(s * 10^d + 0.5) / 10^d, kept as float32."""
    if round_decimal == -1 or not scores:
        return scores
    if not 0 <= round_decimal <= MAX_ROUND_DECIMAL:
        raise InvalidArgumentError(
            f"round_decimal must be -1 or in [0, {MAX_ROUND_DECIMAL}], got {round_decimal}"
        )
    m = math.pow(10.0, round_decimal)
    arr = np.floor(np.asarray(scores, dtype=np.float64) * m + 0.5) / m
    return arr.astype(np.float32).tolist()


def search_result_to_proto(
    hits: Sequence[Sequence[dict[str, Any]]],
    schema: CollectionSchema,
    output_fields: Sequence[str] | None,
    nq: int,
    limit: int,
    round_decimal: int = -1,
) -> schema_pb2.SearchResultData:
    """The embedded client's search result (per query, hits ``{"id", "distance",
    "entity"}``) → the SearchResultData pymilvus's ``SearchResult`` parses."""
    pk = schema.primary_field
    if pk is None:
        raise SchemaError("the schema has no primary key")
    if len(hits) != nq:
        raise InvalidArgumentError(f"search result has {len(hits)} queries, expected nq={nq}")
    flat = [h for per_query in hits for h in per_query]
    ids = [h["id"] for h in flat]
    out = schema_pb2.SearchResultData(num_queries=nq, top_k=limit, primary_field_name=pk.name)
    out.topks.extend(len(per_query) for per_query in hits)
    out.scores.extend(_rounded([float(h["distance"]) for h in flat], round_decimal))
    if pk.dtype == DataType.VARCHAR:
        out.ids.str_id.data.extend(ids)
    else:
        out.ids.int_id.data.extend(ids)
    if output_fields:
        names = [name.strip() for name in output_fields]
        spec = resolve_output_fields(schema, names)
        include_pk = "*" in names or pk.name in names
        entities = [h.get("entity") or {} for h in flat]
        columns = fields_to_proto(entities, schema, spec, include_pk=include_pk, pk_values=ids)
        out.fields_data.extend(columns)
        out.output_fields.extend(user_output_fields(schema, names))
    return out
