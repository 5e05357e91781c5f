"""FLAT and GPU_BRUTE_FORCE: exact search served by ``gpuvec.ops.knn`` (GPU-aware).

Owns :class:`FlatIndex`, which *borrows* the segment's vectors instead of copying them: the
index file holds only a header (type, metric, dim, rows), and loading it needs the vectors
(``load_index(data, base=segment_vectors)``). The vectors may be NumPy (CPU search) or
CuPy (the search runs on the device where they live, ``gpuvec.ops`` picks the path).
Per-row squared norms are kept (4 bytes a row) so COSINE/L2 searches do not recompute them.
Filters go straight to ``knn``'s ``valid`` mask, which is exact at any selectivity.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import validate
from gpuvec.index.base import SearchResult, as_queries, check_valid, finish
from gpuvec.index.search import exact_range
from gpuvec.ops import knn, sq_norms
from gpuvec.ops.backend import is_cupy_array

__all__ = ["FlatIndex"]


class FlatIndex:
    """Exact index over borrowed vectors (FLAT, GPU_BRUTE_FORCE)."""

    def __init__(self, index_type: str, metric: str, vectors: Any) -> None:
        self.index_type = validate.check_index_type(index_type)
        if self.index_type not in ("FLAT", "GPU_BRUTE_FORCE"):
            raise InvalidArgumentError(
                f"FlatIndex serves FLAT and GPU_BRUTE_FORCE, not {index_type}"
            )
        self.metric = validate.check_metric(metric)
        if not is_cupy_array(vectors):
            from gpuvec.index.base import as_vectors

            vectors = as_vectors(vectors)
        elif vectors.ndim != 2 or str(vectors.dtype) != "float32":
            raise InvalidArgumentError("CuPy vectors must be float32 [rows, dim]")
        self.vectors = vectors
        self.ntotal, self.dim = int(vectors.shape[0]), int(vectors.shape[1])
        self.params: dict[str, Any] = {}
        self._sq = sq_norms(vectors) if self.metric != "IP" else None

    @classmethod
    def build(
        cls, index_type: str, vectors: Any, metric: str, params: dict[str, Any] | None = None
    ) -> FlatIndex:
        validate.check_build_params(index_type, params)
        return cls(index_type, metric, vectors)

    # --- search ----------------------------------------------------------------------------
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
        """Exact top-k (``base`` and ``exact_fallback`` are accepted for the protocol; the
        index's own vectors are always used)."""
        validate.check_search_params(self.index_type, search_params, k)
        q = as_queries(queries, self.dim)
        mask = check_valid(valid, self.ntotal)
        dist, rows = knn(self.vectors, q, int(k), self.metric, valid=mask, base_sq_norms=self._sq)
        return finish(dist, rows, self.metric)

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
        """Exact range search (Milvus semantics) over the index's vectors."""
        validate.check_search_params(self.index_type, search_params, limit)
        r, f = validate.check_range_params(self.metric, radius, range_filter)
        q = as_queries(queries, self.dim)
        mask = check_valid(valid, self.ntotal)
        return exact_range(self.vectors, q, self.metric, r, f, int(limit), mask)

    # --- storage ---------------------------------------------------------------------------
    def payload(self) -> bytes:
        """FLAT index files carry no vector data (the segment has it)."""
        return b""

    @classmethod
    def from_payload(cls, header: dict[str, Any], payload: bytes, base: Any | None) -> FlatIndex:
        if base is None:
            raise InvalidArgumentError(
                f"loading a {header['index_type']} index needs the segment's vectors (base=...)"
            )
        idx = cls(header["index_type"], header["metric_type"], base)
        if (idx.ntotal, idx.dim) != (header["rows"], header["dim"]):
            raise InvalidArgumentError(
                f"base vectors {idx.ntotal}x{idx.dim} do not match the index file "
                f"({header['rows']}x{header['dim']})"
            )
        return idx

    def to_bytes(self) -> bytes:
        from gpuvec.index.registry import dump

        return dump(self)

    @property
    def nbytes(self) -> int:
        """Bytes the index adds to the borrowed vectors (the kept squared norms)."""
        return 0 if self._sq is None else int(self._sq.nbytes)

    def describe(self) -> dict[str, Any]:
        device = "cupy" if is_cupy_array(self.vectors) else "numpy"
        out: dict[str, Any] = {
            "index_type": self.index_type,
            "metric_type": self.metric,
            "dim": self.dim,
            "rows": self.ntotal,
            "params": {},
            "served_as": "FLAT",
            "backend": f"gpuvec.ops:{device}",
            "borrows_base": True,
            "nbytes": self.nbytes,
        }
        if self.index_type == "GPU_BRUTE_FORCE" and device == "numpy":
            out["note"] = (
                "GPU_BRUTE_FORCE served by the exact CPU scan (the vectors are in host "
                "memory; pass CuPy vectors to search on the GPU)"
            )
        return out
