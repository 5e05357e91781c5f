"""Validation of index build, search and range-search parameters against :mod:`.spec`.

Owns the checks that turn user-supplied parameters into normalised values or raise
:class:`~gpuvec.errors.InvalidArgumentError` naming the index type, parameter, value and
allowed range (value rules and the strict/lenient policy: see :mod:`gpuvec.index.spec`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.spec import (
    ALL_METRICS,
    BINARY_METRICS,
    DISTANCE_METRICS,
    INDEX_ALIASES,
    INDEX_TYPES,
    KNOWN_SEARCH,
    METRICS,
    RANGE_NAMES,
    SPECS,
    Param,
)

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")

__all__ = [
    "check_build_params",
    "check_dim",
    "check_index_type",
    "check_metric",
    "check_range_params",
    "check_search_params",
    "coerce",
    "resolved_build_params",
]


def check_metric(metric: Any, *, binary: bool | None = False) -> str:
    """The canonical metric name or InvalidArgumentError: L2, IP, COSINE (``binary``
    False), HAMMING, JACCARD (True), any of them (None)."""
    allowed = ALL_METRICS if binary is None else BINARY_METRICS if binary else METRICS
    if not isinstance(metric, str) or metric.upper() not in allowed:
        raise InvalidArgumentError(
            f"metric_type {metric!r} is not supported; expected one of {', '.join(allowed)}"
        )
    return metric.upper()


def check_index_type(index_type: Any) -> str:
    """The canonical index type name ("" means AUTOINDEX, as in Milvus)."""
    if index_type is None or index_type == "":
        return "AUTOINDEX"
    if isinstance(index_type, str) and index_type.upper() in INDEX_ALIASES:
        return INDEX_ALIASES[index_type.upper()]  # Milvus Lite's name
    if not isinstance(index_type, str) or index_type.upper() not in SPECS:
        raise InvalidArgumentError(
            f"invalid index type: {index_type!r}; supported: {', '.join(INDEX_TYPES)}"
        )
    return index_type.upper()


def _bad(itype: str, p: Param, value: Any, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"index type {itype}: param '{p.name}' = {value!r} {what}; "
        f"allowed: {p.kind} in {p.allowed()}"
    )


def coerce(itype: str, p: Param, value: Any) -> Any:
    """``value`` converted to the parameter's kind and checked against its range."""
    kind = p.kind
    if kind == "int":
        if isinstance(value, bool | np.bool_):
            raise _bad(itype, p, value, "has the wrong type")
        if isinstance(value, int | np.integer):
            v: Any = int(value)
        elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            v = int(value.strip())  # ASCII digits, at most 19: never past int()'s limits
        else:
            raise _bad(itype, p, value, "has the wrong type")
    elif kind == "float":
        if isinstance(value, bool | np.bool_):
            raise _bad(itype, p, value, "has the wrong type")
        try:
            v = float(value) if isinstance(value, int | float | np.number | str) else None
        except ValueError:
            v = None
        if v is None or not math.isfinite(v):
            raise _bad(itype, p, value, "has the wrong type")
    elif kind == "bool":
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _bad(itype, p, value, "has the wrong type")
    else:  # enum
        if not isinstance(value, str) or value.upper() not in p.choices:
            raise _bad(itype, p, value, "is not allowed")
        return value.upper()
    lo_ok = p.lo is None or v >= p.lo
    hi_ok = p.hi is None or v <= p.hi
    if kind == "float" and p.name == "kmeans_trainset_fraction":
        lo_ok = v > 0.0
    if not (lo_ok and hi_ok):
        raise _bad(itype, p, value, "is out of range")
    return v


def _as_dict(params: Any, what: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"{what} must be a dict, got {type(params).__name__}")
    bad = [k for k in params if not isinstance(k, str)]
    if bad:
        raise InvalidArgumentError(f"{what} keys must be strings, got {bad[0]!r}")
    return dict(params)


def check_build_params(
    index_type: Any, params: Mapping[str, Any] | None, dim: int | None = None
) -> dict[str, Any]:
    """Validate build ``params`` for ``index_type``; returns them normalised, *without*
    defaults (what :class:`~gpuvec.index.params.IndexParams` stores). ``dim`` enables the
    checks that need it (IVF_PQ/GPU_IVF_PQ: ``dim % m == 0``)."""
    itype = check_index_type(index_type)
    spec = SPECS[itype]
    given = _as_dict(params, f"index params of {itype}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        p = spec.build_by_name.get(name)
        if p is None:
            allowed = ", ".join(spec.build_by_name) or "none"
            raise InvalidArgumentError(
                f"index type {itype}: unknown build param '{name}' = {value!r}; "
                f"{itype} takes: {allowed}"
            )
        out[name] = coerce(itype, p, value)
    for p in spec.build:
        if p.required and p.name not in out:
            raise InvalidArgumentError(
                f"index type {itype}: param '{p.name}' is required; allowed: "
                f"{p.kind} in {p.allowed()}"
            )
    if itype == "GPU_CAGRA":
        inter = out.get("intermediate_graph_degree", 128)
        graph = out.get("graph_degree", 64)
        if graph > inter:
            raise InvalidArgumentError(
                f"index type GPU_CAGRA: param 'graph_degree' = {graph} cannot be larger than "
                f"'intermediate_graph_degree' = {inter}"
            )
    if dim is not None:
        check_dim(itype, out, dim)
    return out


def check_dim(index_type: str, params: Mapping[str, Any], dim: int) -> None:
    """The checks that need the vector dimension (``m`` must divide ``dim`` for PQ)."""
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise InvalidArgumentError(f"vector dim must be a positive integer, got {dim!r}")
    m = params.get("m")
    if index_type in ("IVF_PQ", "GPU_IVF_PQ") and m and int(dim) % int(m) != 0:
        raise InvalidArgumentError(
            f"index type {index_type}: param 'm' = {m} must divide the vector dim "
            f"{int(dim)} (dimension must be able to be divided by `m`)"
        )


def resolved_build_params(index_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated ``params`` with every documented default filled in."""
    itype = check_index_type(index_type)
    out = {p.name: p.default for p in SPECS[itype].build if p.default is not None}
    out.update(check_build_params(itype, params))
    return out


def check_search_params(
    index_type: Any,
    params: Mapping[str, Any] | None,
    k: int,
    build_params: Mapping[str, Any] | None = None,
    *,
    strict: bool = False,
    for_range: bool = False,
) -> dict[str, Any]:
    """Validate search ``params`` (the inner ``search_params["params"]``) for ``k`` results.

    Returns the type's own parameters, normalised, with defaults filled in (``ef`` of HNSW
    and AUTOINDEX: ``max(k, 16)``, AUTOINDEX's scaled by ``level``). ``radius`` and
    ``range_filter`` are returned as floats when given (checked against the metric by
    :func:`check_range_params`). ``build_params`` (resolved) enable ``nprobe <= nlist``.
    ``for_range``: a range search with ``k`` = its limit; as in knowhere, ``ef`` need not
    reach k there and gets no default here (the index applies its range default).
    """
    itype = check_index_type(index_type)
    spec = SPECS[itype]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidArgumentError(f"k (topk/limit) must be an integer >= 1, got {k!r}")
    k = int(k)
    given = _as_dict(params, f"search params of {itype}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        p = spec.search_by_name.get(name)
        if p is not None:
            out[name] = coerce(itype, p, value)
        elif name in RANGE_NAMES:
            if value is not None:
                out[name] = coerce(itype, Param(name, "float"), value)
        elif name not in KNOWN_SEARCH:
            allowed = ", ".join([*spec.search_by_name, *RANGE_NAMES])
            raise InvalidArgumentError(
                f"index type {itype}: unknown search param '{name}' = {value!r}; "
                f"{itype} takes: {allowed}"
            )
        elif strict:
            raise InvalidArgumentError(
                f"index type {itype}: search param '{name}' = {value!r} does not apply to "
                f"{itype}; it takes: {', '.join(spec.search_by_name) or 'none'}"
            )
    for p in spec.search:
        if p.name not in out and p.default is not None:
            out[p.name] = p.default
    nlist = (build_params or {}).get("nlist")
    if "nprobe" in given and nlist is not None and out["nprobe"] > nlist:  # not the default
        raise InvalidArgumentError(
            f"index type {itype}: param 'nprobe' = {out['nprobe']} is out of range; "
            f"allowed: int in [1, nlist={nlist}]"
        )
    if for_range:
        return out
    if itype in ("HNSW", "HNSW_SQ", "AUTOINDEX"):
        if "ef" in given:
            if out["ef"] < k:
                raise InvalidArgumentError(
                    f"index type {itype}: param 'ef' = {out['ef']} should be larger than or "
                    f"equal to k (limit) = {k}; allowed: int in [k, int_max]"
                )
        else:
            out["ef"] = max(k, 16) * int(out.get("level", 1))
    if itype == "GPU_CAGRA":
        _check_cagra_search(out, k)
    return out


def _check_cagra_search(out: dict[str, Any], k: int) -> None:
    """knowhere's GpuRaftCagraConfig: itopk_size aligned up to 32 (default max(k, 64));
    with search_width given, max(itopk, 32 * search_width) must reach k; ef >= k."""
    itopk = out.get("itopk_size", max(k, 64))
    itopk = (itopk + 31) // 32 * 32
    width = out.get("search_width")
    if width is not None and max(itopk, 32 * width) < k:
        raise InvalidArgumentError(
            f"index type GPU_CAGRA: itopk_size = {out.get('itopk_size')} and search_width = "
            f"{width} are too small for k = {k}: max((itopk_size + 31) // 32 * 32, "
            f"32 * search_width) must be >= k"
        )
    if "ef" in out and out["ef"] < k:
        raise InvalidArgumentError(
            f"index type GPU_CAGRA: param 'ef' = {out['ef']} should be larger than or equal "
            f"to k (limit) = {k}; allowed: int in [k, int_max]"
        )
    out["itopk_size"] = max(itopk, k)
    if width is None:
        out["search_width"] = max((k - 1) // 32 + 1, 1)


def check_range_params(
    metric: str, radius: Any, range_filter: Any = None
) -> tuple[float, float | None]:
    """Milvus range-search bounds: distances (L2, HAMMING, JACCARD) keep ``range_filter <=
    distance < radius``; IP/COSINE keep ``radius < similarity <= range_filter``. COSINE
    bounds lie in [-1, 1]."""
    metric = check_metric(metric, binary=None)
    dist = metric in DISTANCE_METRICS
    r = coerce("range search", Param("radius", "float"), radius)
    f = None
    if range_filter is not None:
        f = coerce("range search", Param("range_filter", "float"), range_filter)
    if metric == "COSINE":
        for name, v in (("radius", r), ("range_filter", f)):
            if v is not None and not -1.0 <= v <= 1.0:
                raise InvalidArgumentError(
                    f"range search: {name} = {v} is out of range for COSINE; allowed: [-1, 1]"
                )
    if f is not None:
        if dist and not f < r:
            raise InvalidArgumentError(
                f"range search: range_filter = {f} must be less than radius = {r} for "
                f"{metric} (range_filter <= distance < radius)"
            )
        if not dist and not f > r:
            raise InvalidArgumentError(
                f"range search: range_filter = {f} must be greater than radius = {r} for "
                f"{metric} (radius < similarity <= range_filter)"
            )
    return r, f
