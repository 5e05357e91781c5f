"""``IndexParams``: what ``MilvusClient.prepare_index_params()`` returns, as in pymilvus.

Owns the list of index definitions a client builds before ``create_index`` /
``create_collection``. Each entry is a dict ``{field_name, index_type, index_name,
metric_type, params}``; as in pymilvus, keyword arguments other than ``metric_type`` and
``params`` are build parameters and are merged into ``params``. ``add_index`` validates
eagerly against :mod:`gpuvec.index.spec` (type, metric, every build parameter's name, type
and range); the checks that need the vector dimension run in :meth:`validate_for_field`
(and again at build time). ``params`` holds the normalised user values, not the defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpuvec.datatypes import DataType
from gpuvec.errors import InvalidArgumentError
from gpuvec.index import spec, validate
from gpuvec.index.scalar import canonical_type, check_params
from gpuvec.vectors import VectorKind

METRICS = spec.METRICS
INDEX_TYPES = spec.INDEX_TYPES


def check_vector_kind(idx: dict[str, Any], kind: VectorKind) -> None:
    """Fill in the default metric of ``idx`` (an index definition) for a field of ``kind``
    and refuse an index type or metric Milvus does not allow on that vector type."""
    itype, name = idx["index_type"], kind.name
    allowed = kind.index_types
    if allowed is None:  # the float types: every index type but the binary and sparse ones
        other = (*spec.BINARY_INDEX_TYPES, *spec.SPARSE_INDEX_TYPES)
        ok = itype not in other
        allowed = tuple(t for t in spec.INDEX_TYPES if t not in other)
    else:
        ok = itype in allowed
    if not ok:
        raise InvalidArgumentError(
            f"data type {name} can't build with this index {itype} (field "
            f"{idx['field_name']!r}); supported index types: {', '.join(allowed)}"
        )
    if not idx["metric_type"]:
        idx["metric_type"] = kind.default_metric
    if idx["metric_type"] not in kind.metrics:
        raise InvalidArgumentError(
            f"metric type {idx['metric_type']} not found or not supported for {name} "
            f"(field {idx['field_name']!r}); supported: {', '.join(kind.metrics)}"
        )


class IndexParams:
    """A list of index definitions (pymilvus ``IndexParams``), validated as they are added."""

    def __init__(self, field_name: str = "", **kwargs: Any) -> None:
        self._indexes: list[dict[str, Any]] = []
        if field_name:
            self.add_index(field_name, **kwargs)

    def add_index(
        self, field_name: str, index_type: str = "", index_name: str = "", **kwargs: Any
    ) -> None:
        """Add an index on ``field_name``; raises InvalidArgumentError naming the index
        type, parameter, value and allowed range when something is wrong."""
        params = kwargs.pop("params", None)
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidArgumentError(
                f"params of the index on field {field_name!r} must be a dict or None, "
                f"got {type(params).__name__}: {params!r}"
            )
        params = {**params, **kwargs}  # pymilvus flattens params and extra kwargs together
        scalar = canonical_type(index_type)
        if scalar is not None:  # a scalar index: no metric; checked against its field later
            params.pop("metric_type", None)
            params.pop("index_type", None)
            self._indexes.append({
                "field_name": field_name, "index_type": scalar,
                "index_name": index_name or field_name, "metric_type": "",
                "params": check_params(scalar, params),
            })  # fmt: skip
            return
        metric_raw = params.pop("metric_type", "") or ""
        metric = ""  # none given: the field type's default, chosen in validate_for_field
        if metric_raw:
            try:
                metric = validate.check_metric(metric_raw, binary=None)
            except InvalidArgumentError:
                raise InvalidArgumentError(
                    f"metric_type {metric_raw!r} of field {field_name!r} is not one of "
                    f"{spec.ALL_METRICS}"
                ) from None
        params.pop("index_type", None)  # a copy of the argument some clients repeat
        itype = validate.check_index_type(index_type)
        if metric and itype in spec.SPARSE_INDEX_TYPES and metric not in spec.SPARSE_METRICS:
            raise InvalidArgumentError(
                f"metric_type {metric_raw!r} of field {field_name!r} does not fit index type "
                f"{itype}; it takes {', '.join(spec.SPARSE_METRICS)}"
            )
        if metric and itype != "AUTOINDEX" and itype not in spec.SPARSE_INDEX_TYPES:
            binary_type = itype in spec.BINARY_INDEX_TYPES
            if binary_type != (metric in spec.BINARY_METRICS):
                fits = spec.BINARY_METRICS if binary_type else spec.METRICS
                raise InvalidArgumentError(
                    f"metric_type {metric_raw!r} of field {field_name!r} does not fit index "
                    f"type {itype}; it takes {', '.join(fits)}"
                )
        checked = validate.check_build_params(itype, params)
        self._indexes.append(
            {
                "field_name": field_name,
                "index_type": itype,
                "index_name": index_name or field_name,
                "metric_type": metric,
                "params": checked,
            }
        )

    def validate_for_field(self, field_name: str, dim: int, kind: VectorKind | None = None) -> None:
        """Run the checks that need the field: its vector ``dim`` (IVF_PQ: ``dim % m ==
        0``) and, given its ``kind`` (:mod:`gpuvec.vectors`), the index types and metrics
        Milvus allows on that vector type; an index without a metric gets the type's
        default (COSINE; HAMMING for binary vectors)."""
        for idx in self._indexes:
            if idx["field_name"] != field_name:
                continue
            if kind is not None:
                check_vector_kind(idx, kind)
            elif not idx["metric_type"]:
                idx["metric_type"] = "COSINE"
            sparse = kind is not None and kind.dtype == DataType.SPARSE_FLOAT_VECTOR
            validate.check_build_params(idx["index_type"], idx["params"],
                                        dim=None if sparse else dim)  # fmt: skip

    def to_list(self) -> list[dict[str, Any]]:
        return [{**i, "params": dict(i["params"])} for i in self._indexes]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_list())

    def __len__(self) -> int:
        return len(self._indexes)
