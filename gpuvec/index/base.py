"""The ``VectorIndex`` protocol and the input/output conventions every index shares.

Owns what a search result looks like, so that index results, ``gpuvec.ops.knn`` results and
``gpuvec.ops.merge_topk`` inputs are interchangeable:

* ``(dist float32 [nq, k], rows int64 [nq, k])`` on the host; ``rows`` are offsets into the
  vectors the index was built from (the segment's row order);
* distances as Milvus reports them: L2 = squared Euclidean distance (ascending), IP = inner
  product, COSINE = cosine similarity (both descending); on BINARY_VECTOR fields HAMMING =
  differing bits, JACCARD = 1 - |a & b| / |a | b| (both ascending); ties by the lower row;
* empty slots are ``row = -1`` with ``dist = +inf`` (distances) or ``-inf`` (IP, COSINE), after
  the hits; a row outside ``valid`` is never returned.

COSINE indexes store L2-normalised vectors and search them with inner product (a zero
vector stays zero: its cosine is 0, as in ``gpuvec.ops``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index.spec import DISTANCE_METRICS
from gpuvec.ops import pad_value

__all__ = [
    "SearchResult",
    "VectorIndex",
    "as_queries",
    "as_vectors",
    "check_valid",
    "finish",
    "normalize_rows",
]

SearchResult = tuple[np.ndarray, np.ndarray]
"""``(dist float32 [nq, k], rows int64 [nq, k])`` (module conventions)."""


@runtime_checkable
class VectorIndex(Protocol):
    """An index over one immutable block of float32 vectors (a sealed segment's field).

    ``base`` (search, range_search): the raw vectors the index was built from, [n, dim]
    float32 (NumPy, memory-mapped or CuPy), when the caller has them at hand (the segment
    keeps them anyway). It is used only when a filter passes so few rows that an exact scan
    of those rows beats the index (see :mod:`gpuvec.index.search`); without it the index
    uses its own copy (FLAT, HNSW) or scans all its lists with the filter (IVF types).
    """

    index_type: str  # the requested type ("GPU_CAGRA", "AUTOINDEX", ...)
    metric: str  # "L2" | "IP" | "COSINE"
    dim: int
    ntotal: int  # number of vectors (rows) indexed
    params: dict[str, Any]  # resolved build parameters (defaults filled in)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        search_params: dict[str, Any] | None = None,
        *,
        valid: np.ndarray | None = None,
        base: Any | None = None,
        exact_fallback: bool = True,
        valid_key: Hashable | None = None,
    ) -> SearchResult:
        """Top-``k`` rows per query among the rows where ``valid`` (bool [n]) is True.
        ``valid_key`` (optional) names that exact mask, so the index may cache what it
        derives from it (gathered rows, bitmaps); equal keys must mean equal masks."""
        ...

    def range_search(
        self,
        queries: np.ndarray,
        radius: float,
        range_filter: float | None = None,
        *,
        limit: int,
        search_params: dict[str, Any] | None = None,
        valid: np.ndarray | None = None,
        base: Any | None = None,
        exact_fallback: bool = True,
    ) -> SearchResult:
        """The best ``limit`` rows per query inside the Milvus range (L2: ``range_filter <=
        d < radius``; IP/COSINE: ``radius < s <= range_filter``), padded to [nq, limit]."""
        ...

    def to_bytes(self) -> bytes:
        """A self-describing index file (header + faiss ``serialize_index`` payload)."""
        ...

    @property
    def nbytes(self) -> int:
        """Approximate bytes held in memory by this object (excluding a borrowed base)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Type, metric, sizes, resolved params and the backend that actually serves it."""
        ...


# --- shared helpers -------------------------------------------------------------------------
def as_vectors(vectors: Any, name: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 [n, dim] host array (a view when possible)."""
    a = np.asarray(vectors)
    if a.ndim != 2 or a.shape[1] < 1:
        raise InvalidArgumentError(f"{name} must be a 2-D array [rows, dim], got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise InvalidArgumentError(f"{name} must hold numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise InvalidArgumentError(f"{name} contain NaN or infinite values")
    return a


def as_queries(queries: Any, dim: int) -> np.ndarray:
    """Queries as float32 [nq, dim] (a 1-D array is one query)."""
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    q = as_vectors(q, "queries")
    if q.shape[1] != dim:
        raise InvalidArgumentError(f"query dim {q.shape[1]} does not match the index dim {dim}")
    return q


def check_valid(valid: Any, n: int) -> np.ndarray | None:
    """The filter mask as bool [n], or None when absent."""
    if valid is None:
        return None
    v = np.asarray(valid)
    if v.dtype != np.bool_ or v.shape != (n,):
        raise InvalidArgumentError(
            f"valid must be a boolean mask of shape ({n},), got dtype {v.dtype} shape {v.shape}"
        )
    return v


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` with every non-zero row scaled to unit L2 norm (zero rows stay 0)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return x * scale[:, None]


def finish(dist: np.ndarray, rows: np.ndarray, metric: str) -> SearchResult:
    """Apply the module conventions to a raw ``(dist, rows)`` result: pad value in empty
    slots, L2 clipped at 0, each row sorted best first with ties by the lower row and
    empty slots last."""
    rows = np.asarray(rows, dtype=np.int64)
    dist = np.asarray(dist, dtype=np.float32)
    if rows.size and rows.min() >= 0:  # common case: full rows, usually already sorted
        if metric == "L2":
            dist = np.maximum(dist, np.float32(0.0))
        key = dist if metric in DISTANCE_METRICS else -dist
        if rows.shape[1] < 2 or bool((key[:, 1:] > key[:, :-1]).all()):  # strict: no ties
            return np.ascontiguousarray(dist), np.ascontiguousarray(rows)
    empty = rows < 0
    pad = np.float32(pad_value(metric))
    dist = np.where(empty, pad, dist)
    if metric == "L2":
        dist = np.where(empty, dist, np.maximum(dist, np.float32(0.0)))
    key = dist if metric in DISTANCE_METRICS else -dist
    order = np.lexsort((np.where(empty, np.iinfo(np.int64).max, rows), key, empty), axis=1)
    dist = np.take_along_axis(dist, order, 1).astype(np.float32, copy=False)
    rows = np.take_along_axis(np.where(empty, -1, rows), order, 1)
    return np.ascontiguousarray(dist), np.ascontiguousarray(rows)
