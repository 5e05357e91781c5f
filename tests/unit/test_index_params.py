"""Index parameter validation (gpuvec.index.spec / validate / params): every index type's
defaults, documented ranges (both edges accepted, one step beyond rejected), wrong value
types, unknown parameters, the dim-dependent checks, search and range-search parameters,
and the pymilvus-compatible ``IndexParams`` container."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import INDEX_TYPES, IndexParams
from gpuvec.index.spec import INT_MAX, SPECS
from gpuvec.index.validate import (
    check_build_params,
    check_index_type,
    check_range_params,
    check_search_params,
    resolved_build_params,
)

# --- defaults ----------------------------------------------------------------------------------
DEFAULTS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "AUTOINDEX": {},
    "GPU_BRUTE_FORCE": {},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
    "IVF_PQ": {"nlist": 128, "nbits": 8},  # m has no default: required
    "HNSW": {"M": 30, "efConstruction": 360},
    "HNSW_SQ": {"M": 30, "efConstruction": 360, "sq_type": "SQ8", "refine": False},
    "GPU_IVF_FLAT": {
        "nlist": 128,
        "cache_dataset_on_device": False,
        "kmeans_n_iters": 20,
        "kmeans_trainset_fraction": 0.5,
        "adaptive_centers": False,
    },
    "GPU_IVF_PQ": {
        "nlist": 128,
        "nbits": 8,
        "cache_dataset_on_device": False,
        "kmeans_n_iters": 20,
        "kmeans_trainset_fraction": 0.5,
        "codebook_kind": "PER_SUBSPACE",
        "force_random_rotation": False,
    },
    "GPU_CAGRA": {
        "intermediate_graph_degree": 128,
        "graph_degree": 64,
        "build_algo": "IVF_PQ",
        "cache_dataset_on_device": False,
        "adapt_for_cpu": False,
        "nn_descent_niter": 20,
    },
    "BIN_FLAT": {},
    "BIN_IVF_FLAT": {"nlist": 128},
    **{t: {"drop_ratio_build": 0.0, "inverted_index_algo": "DAAT_MAXSCORE", "bm25_k1": 1.2,
           "bm25_b": 0.75} for t in ("SPARSE_INVERTED_INDEX", "SPARSE_WAND")},
}
REQUIRED = {"IVF_PQ": {"m": 8}, "GPU_IVF_PQ": {"m": 8}}


def test_every_type_has_a_defaults_row() -> None:
    assert set(DEFAULTS) == set(INDEX_TYPES) == set(SPECS)
    assert len(INDEX_TYPES) == 15


@pytest.mark.parametrize("itype", sorted(DEFAULTS))
def test_build_defaults(itype: str) -> None:
    got = resolved_build_params(itype, REQUIRED.get(itype, {}))
    assert got == {**DEFAULTS[itype], **REQUIRED.get(itype, {})}


# --- ranges: (type, param, lo, hi) -----------------------------------------------------------
BUILD_RANGES = [
    (t, "nlist", 1, 65536) for t in ("IVF_FLAT", "IVF_SQ8", "IVF_PQ", "GPU_IVF_FLAT", "GPU_IVF_PQ")
] + [
    ("IVF_PQ", "m", 1, 65536),
    ("IVF_PQ", "nbits", 1, 16),
    ("GPU_IVF_PQ", "m", 0, 65536),
    ("GPU_IVF_PQ", "nbits", 4, 8),
    ("HNSW", "M", 2, 2048),
    ("HNSW", "efConstruction", 1, INT_MAX),
    ("GPU_CAGRA", "intermediate_graph_degree", 64, 2048),  # lo: graph_degree's default
    ("GPU_CAGRA", "graph_degree", 1, 128),  # hi: intermediate's default
    ("GPU_IVF_FLAT", "kmeans_n_iters", 1, INT_MAX),
]


@pytest.mark.parametrize(("itype", "name", "lo", "hi"), BUILD_RANGES)
def test_build_range_edges(itype: str, name: str, lo: int, hi: int) -> None:
    base = {k: v for k, v in REQUIRED.get(itype, {}).items() if k != name}
    for ok in (lo, hi):
        assert check_build_params(itype, {**base, name: ok})[name] == ok
    for bad in (lo - 1, hi + 1):
        with pytest.raises(InvalidArgumentError) as e:
            check_build_params(itype, {**base, name: bad})
        msg = str(e.value)
        assert itype in msg and f"'{name}'" in msg and str(bad) in msg, msg


def test_range_message_names_the_allowed_range() -> None:
    with pytest.raises(InvalidArgumentError, match=r"IVF_FLAT.*'nlist' = 0.*\[1, 65536\]"):
        check_build_params("IVF_FLAT", {"nlist": 0})
    with pytest.raises(InvalidArgumentError, match=r"HNSW.*'M' = 4096.*\[2, 2048\]"):
        check_build_params("HNSW", {"M": 4096})
    with pytest.raises(InvalidArgumentError, match=r"efConstruction.*\[1, int_max\]"):
        check_build_params("HNSW", {"efConstruction": 0})
    with pytest.raises(InvalidArgumentError, match=r"GPU_IVF_PQ.*'nbits' = 9.*\[4, 8\]"):
        check_build_params("GPU_IVF_PQ", {"m": 8, "nbits": 9})


# --- value types -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1.5, 128.0, "abc", "12.5", True, None, [128], {"a": 1}])
def test_int_param_wrong_type(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"IVF_FLAT.*'nlist'.*wrong type"):
        check_build_params("IVF_FLAT", {"nlist": value})


def test_int_param_accepts_digit_strings_and_numpy_ints() -> None:
    # Milvus passes every param as a string (strconv.Atoi), so "64" is a valid nlist
    assert check_build_params("IVF_FLAT", {"nlist": "64"}) == {"nlist": 64}
    assert check_build_params("HNSW", {"M": np.int64(16)}) == {"M": 16}
    assert isinstance(check_build_params("HNSW", {"M": np.int32(16)})["M"], int)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("true", True), ("FALSE", False), (False, False)]
)
def test_bool_param(value: Any, expected: bool) -> None:
    got = check_build_params("GPU_CAGRA", {"cache_dataset_on_device": value})
    assert got == {"cache_dataset_on_device": expected}


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "1"])
def test_bool_param_wrong_type(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"GPU_CAGRA.*cache_dataset_on_device"):
        check_build_params("GPU_CAGRA", {"cache_dataset_on_device": value})


def test_enum_param() -> None:
    assert check_build_params("GPU_CAGRA", {"build_algo": "nn_descent"}) == {
        "build_algo": "NN_DESCENT"
    }
    with pytest.raises(InvalidArgumentError, match=r"build_algo.*'IVF_FLAT'.*IVF_PQ, NN_DESCENT"):
        check_build_params("GPU_CAGRA", {"build_algo": "IVF_FLAT"})
    with pytest.raises(InvalidArgumentError, match=r"build_algo"):
        check_build_params("GPU_CAGRA", {"build_algo": 3})


def test_float_param_range() -> None:
    got = check_build_params("GPU_IVF_FLAT", {"kmeans_trainset_fraction": "0.25"})
    assert got == {"kmeans_trainset_fraction": 0.25}
    for bad in (0, 0.0, 1.5, -0.1, float("nan"), "x"):
        with pytest.raises(InvalidArgumentError, match="kmeans_trainset_fraction"):
            check_build_params("GPU_IVF_FLAT", {"kmeans_trainset_fraction": bad})


# --- unknown and required ----------------------------------------------------------------------
@pytest.mark.parametrize("itype", INDEX_TYPES)
def test_unknown_build_param(itype: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"index type {itype}: unknown build param"):
        check_build_params(itype, {**REQUIRED.get(itype, {}), "nlistt": 4})


@pytest.mark.parametrize(
    ("itype", "params"),
    [
        ("HNSW", {"nlist": 128}),
        ("IVF_FLAT", {"M": 16}),
        ("FLAT", {"nlist": 128}),
        ("AUTOINDEX", {"M": 16}),
        ("IVF_SQ8", {"m": 8}),
        ("GPU_BRUTE_FORCE", {"graph_degree": 8}),
    ],
)
def test_build_param_of_another_type_is_rejected(itype: str, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"{itype}: unknown build param"):
        check_build_params(itype, params)


def test_pq_m_is_required() -> None:
    with pytest.raises(InvalidArgumentError, match=r"IVF_PQ: param 'm' is required"):
        check_build_params("IVF_PQ", {"nlist": 16})
    with pytest.raises(InvalidArgumentError, match=r"GPU_IVF_PQ: param 'm' is required"):
        check_build_params("GPU_IVF_PQ", {})
    assert check_build_params("GPU_IVF_PQ", {"m": 0}) == {"m": 0}  # 0 = automatic on GPU
    with pytest.raises(InvalidArgumentError, match=r"IVF_PQ.*'m' = 0"):
        check_build_params("IVF_PQ", {"m": 0})


def test_pq_m_must_divide_dim() -> None:
    assert check_build_params("IVF_PQ", {"m": 8}, dim=64) == {"m": 8}
    with pytest.raises(InvalidArgumentError, match=r"IVF_PQ.*'m' = 12.*dim 64"):
        check_build_params("IVF_PQ", {"m": 12}, dim=64)
    with pytest.raises(InvalidArgumentError, match=r"GPU_IVF_PQ.*'m' = 128.*dim 64"):
        check_build_params("GPU_IVF_PQ", {"m": 128}, dim=64)
    check_build_params("GPU_IVF_PQ", {"m": 0}, dim=63)  # automatic m: no constraint


def test_cagra_graph_degree_not_above_intermediate() -> None:
    check_build_params("GPU_CAGRA", {"intermediate_graph_degree": 64, "graph_degree": 64})
    with pytest.raises(InvalidArgumentError, match="cannot be larger than"):
        check_build_params("GPU_CAGRA", {"intermediate_graph_degree": 32, "graph_degree": 64})
    with pytest.raises(InvalidArgumentError, match="cannot be larger than"):
        check_build_params("GPU_CAGRA", {"graph_degree": 256})  # default intermediate 128


@pytest.mark.parametrize("params", [[("nlist", 1)], "nlist=1", 3])
def test_params_must_be_a_dict(params: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="must be a dict"):
        check_build_params("IVF_FLAT", params)


# --- index type and metric ---------------------------------------------------------------------
def test_index_type_names() -> None:
    assert check_index_type("") == "AUTOINDEX"
    assert check_index_type(None) == "AUTOINDEX"
    assert check_index_type("hnsw") == "HNSW"
    assert check_index_type("gpu_cagra") == "GPU_CAGRA"
    for bad in ("ANNOY", "DISKANN", "IVF", 3):
        with pytest.raises(InvalidArgumentError, match="invalid index type"):
            check_index_type(bad)


# --- search params -----------------------------------------------------------------------------
def test_ivf_search_defaults_and_nprobe_bounds() -> None:
    assert check_search_params("IVF_FLAT", None, 10)["nprobe"] == 8
    assert check_search_params("IVF_FLAT", {}, 10, {"nlist": 4})["nprobe"] == 8  # default
    assert check_search_params("IVF_PQ", {"nprobe": 64}, 10, {"nlist": 64})["nprobe"] == 64
    with pytest.raises(InvalidArgumentError, match=r"'nprobe' = 65.*\[1, nlist=64\]"):
        check_search_params("IVF_SQ8", {"nprobe": 65}, 10, {"nlist": 64})
    for bad in (0, 65537):
        with pytest.raises(InvalidArgumentError, match=r"GPU_IVF_FLAT.*'nprobe'"):
            check_search_params("GPU_IVF_FLAT", {"nprobe": bad}, 10)
    with pytest.raises(InvalidArgumentError, match="wrong type"):
        check_search_params("IVF_FLAT", {"nprobe": 2.5}, 10)
    got = check_search_params("IVF_FLAT", {"max_empty_result_buckets": 3}, 10)
    assert got["max_empty_result_buckets"] == 3


def test_hnsw_ef() -> None:
    assert check_search_params("HNSW", {}, 10)["ef"] == 16  # knowhere: max(k, 16)
    assert check_search_params("HNSW", {}, 50)["ef"] == 50
    assert check_search_params("HNSW", {"ef": 10}, 10)["ef"] == 10
    with pytest.raises(InvalidArgumentError, match=r"HNSW.*'ef' = 9.*k \(limit\) = 10"):
        check_search_params("HNSW", {"ef": 9}, 10)
    with pytest.raises(InvalidArgumentError, match=r"'ef' = 0"):
        check_search_params("HNSW", {"ef": 0}, 1)
    # range search: ef need not reach the limit (knowhere RANGE_SEARCH)
    assert check_search_params("HNSW", {"ef": 8}, 100, for_range=True)["ef"] == 8
    assert "ef" not in check_search_params("HNSW", {}, 100, for_range=True)


def test_autoindex_level() -> None:
    assert check_search_params("AUTOINDEX", {}, 10)["ef"] == 16
    assert check_search_params("AUTOINDEX", {"level": 3}, 10)["ef"] == 48
    assert check_search_params("AUTOINDEX", {"level": 2}, 100)["ef"] == 200
    assert check_search_params("AUTOINDEX", {"level": 5, "ef": 20}, 10)["ef"] == 20
    for bad in (0, 6):
        with pytest.raises(InvalidArgumentError, match=r"AUTOINDEX.*'level'.*\[1, 5\]"):
            check_search_params("AUTOINDEX", {"level": bad}, 10)


def test_cagra_search() -> None:
    got = check_search_params("GPU_CAGRA", {}, 10)
    assert got["itopk_size"] == 64 and got["search_width"] == 1  # knowhere defaults
    assert check_search_params("GPU_CAGRA", {"itopk_size": 40}, 10)["itopk_size"] == 64
    assert check_search_params("GPU_CAGRA", {"itopk_size": 16}, 100)["itopk_size"] == 100
    check_search_params("GPU_CAGRA", {"itopk_size": 16, "search_width": 4}, 100)
    with pytest.raises(InvalidArgumentError, match=r"itopk_size = 16 and search_width = 1"):
        check_search_params("GPU_CAGRA", {"itopk_size": 16, "search_width": 1}, 100)
    with pytest.raises(InvalidArgumentError, match=r"team_size.*\[0, 32\]"):
        check_search_params("GPU_CAGRA", {"team_size": 33}, 10)
    with pytest.raises(InvalidArgumentError, match=r"GPU_CAGRA.*'ef' = 5"):
        check_search_params("GPU_CAGRA", {"ef": 5}, 10)


def test_search_params_of_another_type_are_ignored_unless_strict() -> None:
    # a habit of Milvus client scripts: {"nprobe": 10} sent to any index
    assert "nprobe" not in check_search_params("HNSW", {"nprobe": 10}, 10)
    assert check_search_params("FLAT", {"nprobe": 10, "ef": 64}, 10) == {}
    with pytest.raises(InvalidArgumentError, match=r"'nprobe' = 10 does not apply to HNSW"):
        check_search_params("HNSW", {"nprobe": 10}, 10, strict=True)
    # a name no index type knows is a typo and always raises
    with pytest.raises(InvalidArgumentError, match=r"HNSW: unknown search param 'eff'"):
        check_search_params("HNSW", {"eff": 10}, 10)
    with pytest.raises(InvalidArgumentError, match=r"FLAT: unknown search param 'nprob'"):
        check_search_params("FLAT", {"nprob": 10}, 10)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "10"])
def test_search_k_must_be_positive_int(k: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"k .*must be an integer >= 1"):
        check_search_params("FLAT", {}, k)


def test_range_params_per_metric() -> None:
    assert check_range_params("L2", 10, 1) == (10.0, 1.0)
    assert check_range_params("IP", "0.2", 0.8) == (0.2, 0.8)
    assert check_range_params("COSINE", -1, 1) == (-1.0, 1.0)
    assert check_range_params("l2", 5) == (5.0, None)
    with pytest.raises(InvalidArgumentError, match="must be less than radius"):
        check_range_params("L2", 1.0, 1.0)
    with pytest.raises(InvalidArgumentError, match="must be greater than radius"):
        check_range_params("IP", 0.5, 0.4)
    with pytest.raises(InvalidArgumentError, match=r"radius = 1.5.*COSINE.*\[-1, 1\]"):
        check_range_params("COSINE", 1.5)
    with pytest.raises(InvalidArgumentError, match=r"range_filter = -2.0.*COSINE"):
        check_range_params("COSINE", -0.5, -2.0)
    with pytest.raises(InvalidArgumentError, match=r"radius.*wrong type"):
        check_range_params("L2", "far")
    with pytest.raises(InvalidArgumentError, match="metric_type"):
        check_range_params("MANHATTAN", 1.0)
    assert check_range_params("HAMMING", 10, 2) == (10.0, 2.0)  # a distance, as L2
    with pytest.raises(InvalidArgumentError, match=r"less than radius.*JACCARD"):
        check_range_params("JACCARD", 0.5, 0.7)
    got = check_search_params("HNSW", {"radius": "0.5", "range_filter": 0.9}, 10)
    assert got["radius"] == 0.5 and got["range_filter"] == 0.9


# --- IndexParams -------------------------------------------------------------------------------
def test_index_params_container() -> None:
    ip = IndexParams()
    ip.add_index("v", "hnsw", "idx", metric_type="l2", params={"M": "16"}, efConstruction=64)
    ip.add_index("w")  # Milvus defaults: AUTOINDEX; the metric is the field type's default
    assert len(ip) == 2
    assert ip.to_list() == [
        {
            "field_name": "v",
            "index_type": "HNSW",
            "index_name": "idx",
            "metric_type": "L2",
            "params": {"M": 16, "efConstruction": 64},
        },
        {
            "field_name": "w",
            "index_type": "AUTOINDEX",
            "index_name": "w",
            "metric_type": "",  # chosen against the field: COSINE, HAMMING for binary
            "params": {},
        },
    ]
    ip.validate_for_field("w", 8)  # a FLOAT_VECTOR field: COSINE
    assert ip.to_list()[1]["metric_type"] == "COSINE"
    assert [i["field_name"] for i in ip] == ["v", "w"]
    ip.to_list()[0]["params"]["M"] = 99  # copies: the container is unchanged
    assert ip.to_list()[0]["params"]["M"] == 16
    assert len(IndexParams("v", metric_type="IP")) == 1


def test_index_params_validates_eagerly() -> None:
    ip = IndexParams()
    with pytest.raises(InvalidArgumentError, match=r"IVF_FLAT.*'nlist' = 0"):
        ip.add_index("v", "IVF_FLAT", params={"nlist": 0})
    with pytest.raises(InvalidArgumentError, match="unknown build param 'nlist'"):
        ip.add_index("v", "HNSW", nlist=128)
    with pytest.raises(InvalidArgumentError, match="metric_type 'JACCARD' of field 'v'"):
        ip.add_index("v", "FLAT", metric_type="JACCARD")
    with pytest.raises(InvalidArgumentError, match="invalid index type"):
        ip.add_index("v", "SCANN_X")
    with pytest.raises(InvalidArgumentError, match="params of the index on field 'v'"):
        ip.add_index("v", "FLAT", params=[1])
    with pytest.raises(InvalidArgumentError, match="'m' is required"):
        ip.add_index("v", "IVF_PQ", metric_type="L2")
    assert len(ip) == 0  # nothing partially applied


def test_index_params_metric_inside_params_and_dim_checks() -> None:
    ip = IndexParams()
    ip.add_index("v", "IVF_PQ", params={"metric_type": "IP", "nlist": 16, "m": 12})
    assert ip.to_list()[0]["metric_type"] == "IP"
    assert "metric_type" not in ip.to_list()[0]["params"]
    ip.validate_for_field("v", 48)  # 48 % 12 == 0
    ip.validate_for_field("other", 7)  # no index on that field: nothing to check
    with pytest.raises(InvalidArgumentError, match=r"'m' = 12 must divide the vector dim 32"):
        ip.validate_for_field("v", 32)


def test_milvus_lite_names_are_accepted_as_their_milvus_equivalents() -> None:
    assert check_index_type("BRUTE_FORCE") == check_index_type("brute_force") == "FLAT"
    ip = IndexParams()
    ip.add_index("v", index_type="BRUTE_FORCE", metric_type="L2")
    assert ip.to_list()[0]["index_type"] == "FLAT"
    assert check_index_type("hnsw_sq") == "HNSW_SQ"  # also a Milvus 2.6 type
