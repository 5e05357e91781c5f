"""Index types and their parameters as Milvus documents them: names, types, ranges, defaults.

Owns the table :data:`SPECS` (one :class:`IndexSpec` per index type: build and search
parameters with kind, inclusive range or choices, default and source) and the AUTOINDEX
choice. The checks that apply it live in :mod:`gpuvec.index.validate`. Nothing here
touches vectors or faiss.

Sources (see each :class:`Param`'s ``source``): the Milvus docs pages (``hnsw.md``,
``ivf-flat.md``, ``ivf-pq.md``, ``reference/index.md`` "In-memory Index", ``gpu-cagra.md``,
``gpu-ivf-flat.md``, ``gpu-ivf-pq.md``, ``gpu-brute-force.md``, ``index-with-gpu.md``,
``range-search.md``, ``bin-flat.md``, ``bin-ivf-flat.md``, ``metric.md``), Milvus's
``pkg/util/indexparamcheck`` (checkers, ``constraints.go``) and
``pkg/util/paramtable/autoindex_param.go``, and knowhere's config headers
(``ivf_config.h``, ``base_hnsw_config.h``, ``gpu_raft_*_config.h``) where the docs give
no range or default.

Value rules (Milvus passes params as strings, so digit strings are accepted):

* int: a Python/NumPy integer or a decimal-integer string; not bool, not float.
* float: any real number (not bool) or a numeric string.
* bool: ``True``/``False`` or ``"true"``/``"false"`` (any case).
* enum: one of the listed strings (any case; stored upper-case).

Build parameters are strict: a name the index type does not take raises. Search
parameters are checked strictly for the type's own names; a name that belongs to another
index type (``nprobe`` sent to an HNSW index, a habit of many Milvus client scripts) is
ignored as Milvus/knowhere ignore it, unless ``strict=True``; a name no index type knows
(a typo) always raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_METRICS",
    "AUTOINDEX_BUILD",
    "BINARY_INDEX_TYPES",
    "BINARY_METRICS",
    "DISTANCE_METRICS",
    "INDEX_ALIASES",
    "INDEX_SEARCH_KNOBS",
    "INDEX_TYPES",
    "INT_MAX",
    "KNOWN_SEARCH",
    "METRICS",
    "RANGE_NAMES",
    "SPARSE_INDEX_TYPES",
    "SPARSE_METRICS",
    "SPECS",
    "IndexSpec",
    "Param",
]

INT_MAX = 2**31 - 1
METRICS = ("L2", "IP", "COSINE")  # float vectors (FLOAT, FLOAT16, BFLOAT16, INT8)
BINARY_METRICS = ("HAMMING", "JACCARD")  # BINARY_VECTOR
SPARSE_METRICS = ("IP", "BM25")  # SPARSE_FLOAT_VECTOR
ALL_METRICS = METRICS + BINARY_METRICS + ("BM25",)
DISTANCE_METRICS = ("L2", "HAMMING", "JACCARD")  # smaller is better; IP/COSINE: larger

_DOCS = "https://milvus.io/docs/"
_KH = "knowhere src/index/"


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, inclusive range or choices, default (None: none) and source."""

    name: str
    kind: str  # "int" | "float" | "bool" | "enum"
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False
    source: str = ""

    def allowed(self) -> str:
        """Human-readable allowed values, used in error messages."""
        if self.kind == "enum":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        hi = "int_max" if self.hi == INT_MAX else _fmt(self.hi)
        return f"[{_fmt(self.lo)}, {hi}]"


def _fmt(v: float | None) -> str:
    if v is None:
        return "-inf"
    return str(int(v)) if float(v).is_integer() else str(v)


@dataclass(frozen=True)
class IndexSpec:
    """An index type: its build and search parameters and the doc page that defines them."""

    name: str
    build: tuple[Param, ...] = ()
    search: tuple[Param, ...] = ()
    doc: str = ""
    gpu: bool = False
    build_by_name: dict[str, Param] = field(init=False, repr=False, compare=False)
    search_by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_by_name", {p.name: p for p in self.build})
        object.__setattr__(self, "search_by_name", {p.name: p for p in self.search})


# --- the parameters --------------------------------------------------------------------------
def _nlist(src: str) -> Param:
    return Param("nlist", "int", 1, 65536, 128, source=src)


def _nprobe(src: str) -> Param:
    # the docs say [1, nlist]; knowhere declares [1, 65536] and the nlist bound needs the
    # build params, so check_search_params applies it when they are given
    return Param("nprobe", "int", 1, 65536, 8, source=src)


_MAX_EMPTY = Param(
    "max_empty_result_buckets", "int", 1, 65535, 2, source=_DOCS + "index.md (range search)"
)
_CACHE = Param(
    "cache_dataset_on_device", "bool", default=False, source=_DOCS + "gpu-ivf-pq.md, gpu-cagra.md"
)
_KMEANS_ITERS = Param(
    "kmeans_n_iters", "int", 1, INT_MAX, 20, source=_KH + "gpu_raft/gpu_raft_ivf_*_config.h"
)
_KMEANS_FRAC = Param(
    "kmeans_trainset_fraction",
    "float",
    0.0,
    1.0,
    0.5,
    source=_KH + "gpu_raft/gpu_raft_ivf_*_config.h (0 excluded)",
)

_HNSW_M = Param("M", "int", 2, 2048, 30, source=_DOCS + "hnsw.md; " + _KH + "base_hnsw_config.h")
_HNSW_EFC = Param(
    "efConstruction", "int", 1, INT_MAX, 360, source=_DOCS + "hnsw.md; knowhere base_hnsw_config.h"
)
# default None: max(k, 16) at search time (knowhere BaseHnswConfig::CheckAndAdjust)
_HNSW_EF = Param("ef", "int", 1, INT_MAX, None, source=_DOCS + "hnsw.md; knowhere (ef >= k)")
_SPARSE_BUILD = (
    Param("drop_ratio_build", "float", 0.0, 1.0, 0.0, source=_DOCS + "sparse_vector.md [0, 1)"),
    Param("inverted_index_algo", "enum", default="DAAT_MAXSCORE",
          choices=("TAAT_NAIVE", "DAAT_WAND", "DAAT_MAXSCORE"), source=_DOCS + "sparse_vector.md"),
    Param("bm25_k1", "float", 1.2, 2.0, 1.2, source=_DOCS + "full-text-search.md [1.2, 2.0]"),
    Param("bm25_b", "float", 0.0, 1.0, 0.75, source=_DOCS + "full-text-search.md [0, 1]"),
)  # fmt: skip
_SPARSE_SEARCH = (
    Param("drop_ratio_search", "float", 0.0, 1.0, 0.0, source=_DOCS + "sparse_vector.md [0, 1)"),
    Param("dim_max_score_ratio", "float", 0.5, 1.3, 1.05, source=_DOCS + "sparse_vector.md"),
)

SPECS: dict[str, IndexSpec] = {
    s.name: s
    for s in (
        IndexSpec("FLAT", doc=_DOCS + "index.md#FLAT"),
        IndexSpec(
            "IVF_FLAT",
            build=(_nlist(_DOCS + "ivf-flat.md"),),
            search=(_nprobe(_DOCS + "ivf-flat.md"), _MAX_EMPTY),
            doc=_DOCS + "ivf-flat.md",
        ),
        IndexSpec(
            "IVF_SQ8",
            build=(_nlist(_DOCS + "index.md#IVF_SQ8"),),
            search=(_nprobe(_DOCS + "index.md#IVF_SQ8"), _MAX_EMPTY),
            doc=_DOCS + "index.md#IVF_SQ8",
        ),
        IndexSpec(
            "IVF_PQ",
            build=(
                _nlist(_DOCS + "ivf-pq.md"),
                Param(
                    "m",
                    "int",
                    1,
                    65536,
                    required=True,
                    source=_DOCS + "ivf-pq.md (default: none); ivf_pq_checker.go (required, "
                    "dim % m == 0)",
                ),
                Param(
                    "nbits",
                    "int",
                    1,
                    16,
                    8,
                    source="constraints.go MaxNBits=16 (the doc page lists [1, 64] and "
                    "recommends [1, 16]; knowhere caps at 24)",
                ),
            ),
            search=(_nprobe(_DOCS + "ivf-pq.md"), _MAX_EMPTY),
            doc=_DOCS + "ivf-pq.md",
        ),
        IndexSpec("HNSW", build=(_HNSW_M, _HNSW_EFC), search=(_HNSW_EF,), doc=_DOCS + "hnsw.md"),
        IndexSpec(
            "HNSW_SQ",
            build=(
                _HNSW_M,
                _HNSW_EFC,
                Param("sq_type", "enum", default="SQ8", choices=("SQ6", "SQ8", "BF16", "FP16"),
                      source=_DOCS + "hnsw-sq.md"),
                Param("refine", "bool", default=False, source=_DOCS + "hnsw-sq.md"),
                Param("refine_type", "enum", choices=("SQ6", "SQ8", "BF16", "FP16", "FP32"),
                      source=_DOCS + "hnsw-sq.md (re-scoring here uses the raw FP32 rows)"),
            ),
            search=(
                _HNSW_EF,
                Param("refine_k", "float", 1.0, float(INT_MAX), 1.0,
                      source=_DOCS + "hnsw-sq.md"),
            ),
            doc=_DOCS + "hnsw-sq.md",
        ),
        IndexSpec(
            "AUTOINDEX",
            search=(
                Param(
                    "level",
                    "int",
                    1,
                    5,
                    1,
                    source="Milvus Go client NewAutoAnnParam / Zilliz docs: level [1, 5]",
                ),
                _HNSW_EF,
            ),
            doc="autoindex_param.go: HNSW M=18 efConstruction=240",
        ),
        IndexSpec("GPU_BRUTE_FORCE", doc=_DOCS + "gpu-brute-force.md", gpu=True),
        IndexSpec("SPARSE_INVERTED_INDEX", build=_SPARSE_BUILD, search=_SPARSE_SEARCH,
                  doc=_DOCS + "sparse_vector.md"),
        IndexSpec("SPARSE_WAND", build=_SPARSE_BUILD, search=_SPARSE_SEARCH,
                  doc=_DOCS + "sparse_vector.md"),
        IndexSpec("BIN_FLAT", doc=_DOCS + "bin-flat.md"),
        IndexSpec(
            "BIN_IVF_FLAT",
            build=(_nlist(_DOCS + "bin-ivf-flat.md"),),
            search=(_nprobe(_DOCS + "bin-ivf-flat.md"), _MAX_EMPTY),
            doc=_DOCS + "bin-ivf-flat.md",
        ),
        IndexSpec(
            "GPU_IVF_FLAT",
            build=(
                _nlist(_DOCS + "gpu-ivf-flat.md"),
                _CACHE,
                _KMEANS_ITERS,
                _KMEANS_FRAC,
                Param("adaptive_centers", "bool", default=False, source=_KH + "gpu_raft"),
            ),
            search=(_nprobe(_DOCS + "gpu-ivf-flat.md"),),
            doc=_DOCS + "gpu-ivf-flat.md",
            gpu=True,
        ),
        IndexSpec(
            "GPU_IVF_PQ",
            build=(
                _nlist(_DOCS + "gpu-ivf-pq.md"),
                Param(
                    "m",
                    "int",
                    0,
                    65536,
                    required=True,
                    source="raft_ivf_pq_checker.go (required; 0 = chosen automatically)",
                ),
                Param(
                    "nbits",
                    "int",
                    4,
                    8,
                    8,
                    source="knowhere gpu_raft_ivf_pq_config.h set_range(4, 8) (cuVS pq_bits)",
                ),
                _CACHE,
                _KMEANS_ITERS,
                _KMEANS_FRAC,
                Param(
                    "codebook_kind",
                    "enum",
                    default="PER_SUBSPACE",
                    choices=("PER_SUBSPACE", "PER_CLUSTER"),
                    source=_KH + "gpu_raft/gpu_raft_ivf_pq_config.h",
                ),
                Param("force_random_rotation", "bool", default=False, source=_KH + "gpu_raft"),
            ),
            search=(
                _nprobe(_DOCS + "gpu-ivf-pq.md"),
                Param("refine_ratio", "float", 1.0, 65536.0, 1.0, source=_KH + "gpu_raft"),
            ),
            doc=_DOCS + "gpu-ivf-pq.md",
            gpu=True,
        ),
        IndexSpec(
            "GPU_CAGRA",
            build=(
                # Milvus documents defaults but no ranges; [1, 2048] is gpuvec's bound
                # (HNSW's M bound), the cross-check is cagra_checker.go's
                Param(
                    "intermediate_graph_degree", "int", 1, 2048, 128, source=_DOCS + "gpu-cagra.md"
                ),
                Param("graph_degree", "int", 1, 2048, 64, source=_DOCS + "gpu-cagra.md"),
                Param(
                    "build_algo",
                    "enum",
                    default="IVF_PQ",
                    choices=("IVF_PQ", "NN_DESCENT"),
                    source=_DOCS + "gpu-cagra.md",
                ),
                _CACHE,
                Param("adapt_for_cpu", "bool", default=False, source=_DOCS + "gpu-cagra.md"),
                Param("nn_descent_niter", "int", 1, INT_MAX, 20, source=_KH + "gpu_raft"),
            ),
            search=(
                Param("itopk_size", "int", 1, INT_MAX, None, source=_DOCS + "gpu-cagra.md"),
                Param("search_width", "int", 1, INT_MAX, None, source=_DOCS + "gpu-cagra.md"),
                Param("min_iterations", "int", 0, INT_MAX, 0, source=_DOCS + "gpu-cagra.md"),
                Param("max_iterations", "int", 0, INT_MAX, 0, source=_DOCS + "gpu-cagra.md"),
                Param("team_size", "int", 0, 32, 0, source=_DOCS + "gpu-cagra.md; knowhere"),
                Param("ef", "int", 1, INT_MAX, None, source=_DOCS + "gpu-cagra.md [k, int_max]"),
            ),
            doc=_DOCS + "gpu-cagra.md",
            gpu=True,
        ),
    )
}

INDEX_TYPES = tuple(SPECS)
INDEX_ALIASES = {"BRUTE_FORCE": "FLAT"}  # Milvus Lite's names → their Milvus equivalents
BINARY_INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")  # BINARY_VECTOR fields take only these
SPARSE_INDEX_TYPES = ("SPARSE_INVERTED_INDEX", "SPARSE_WAND")  # SPARSE_FLOAT_VECTOR fields

AUTOINDEX_BUILD: dict[str, Any] = {"index_type": "HNSW", "M": 18, "efConstruction": 240}
"""What AUTOINDEX builds on this host: HNSW with Milvus's default autoIndex.params.build
(``pkg/util/paramtable/autoindex_param.go``). HNSW is the best CPU type for recall/latency
at the segment sizes gpuvec seals; a GPU host keeps the same choice until a GPU graph
index is served natively (then GPU_CAGRA would be the pick)."""

# search-parameter names of every type above, of Milvus index types gpuvec does not serve
# (DISKANN, SCANN, HNSW_SQ/PQ, sparse, CAGRA internals) and request-level keys: accepted and
# ignored when they do not belong to the index's type (unless strict)
RANGE_NAMES = ("radius", "range_filter")
_OTHER_MILVUS_SEARCH = (
    "search_list",
    "reorder_k",
    "refine_k",
    "drop_ratio_search",
    "dim_max_score_ratio",
    "rbq_bits_query",
    "refine_ratio",
    "search_algo",
    "thread_block_size",
    "hashmap_mode",
    "hashmap_min_bitlen",
    "hashmap_max_fill_rate",
    "max_queries",
    "iterative_filter",
    "disable_fallback_brute_force",
    "hints",
    # request-level keys some clients leave inside "params"
    "metric_type",
    "offset",
    "ignore_growing",
    "round_decimal",
)
KNOWN_SEARCH = frozenset(
    {p.name for s in SPECS.values() for p in s.search}
    | set(RANGE_NAMES)
    | set(_OTHER_MILVUS_SEARCH)
)


# the search parameters an index's own search reads: a segment hands exactly these to its
# index (request-level keys such as radius stay with the caller)
INDEX_SEARCH_KNOBS = frozenset(
    ("nprobe", "ef", "level", "itopk_size", "search_width", "min_iterations",
     "max_iterations", "team_size", "refine_ratio", "refine_k", "max_empty_result_buckets",
     "drop_ratio_search")
)  # fmt: skip
