"""BIN_FLAT and BIN_IVF_FLAT: indexes over packed binary vectors (HAMMING, JACCARD).

Owns :class:`BinaryIndex`. Vectors are ``uint8 [rows, dim / 8]`` (``numpy.packbits`` order,
as pymilvus sends BINARY_VECTOR data); ``dim`` is in bits. Distances and results follow
:mod:`gpuvec.index.base`; the scans are :mod:`gpuvec.ops.binary`'s.

* **BIN_FLAT** borrows the segment's vectors like :class:`~gpuvec.index.flat.FlatIndex`: its
  file holds no vectors (``load_index(data, base=segment_vectors)``); every search is exact
  and filters go to the scan's ``valid`` mask.
* **BIN_IVF_FLAT** trains ``nlist`` binary centroids (at most the row count) by k-majority,
  binary k-means: on a seeded sample of at most ``256 · nlist`` rows, assign each row to the
  nearest centroid by Hamming distance, set each centroid bit to the majority bit of its
  members (ties: 0), re-seed an empty cluster with the member farthest from the centroid of
  the largest cluster; stop after ``KMAJORITY_ITERS`` steps or when nothing changes
  (:mod:`gpuvec.index.binary_lists`).
  Then every row goes to its nearest centroid's inverted list, stored CSR (``offsets``
  int64 [nlist + 1], row ``ids`` int64, packed ``codes`` in list order). A search probes
  the ``nprobe`` nearest centroids *by Hamming distance* whatever the metric (as faiss's
  ``IndexBinaryIVF``) and scores the probed lists' rows exactly in the index's metric.
  Under a filter passing a fraction ``s`` of the rows it probes ``nprobe / s`` lists (as
  :mod:`gpuvec.index.faiss_index`); a selective filter (the rules of
  :mod:`gpuvec.index.search`) is served by an exact scan of the passing rows, of ``base``
  when given, else of the stored codes. Range search scans the ``nprobe`` probed lists and
  keeps the rows inside the range (``max_empty_result_buckets`` is accepted, not used).
  An unfiltered HAMMING search (either type) is served by faiss-cpu's binary index over
  the same rows, centroids and lists (its SIMD scan; faiss's binary indexes take neither
  a row filter nor JACCARD, which stay on :mod:`gpuvec.ops.binary`).
  The payload holds everything a search needs (``pack_arrays``: a JSON table of contents
  and the raw arrays; no pickle), and is byte-identical for identical input.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import validate
from gpuvec.index.base import SearchResult, check_valid, finish
from gpuvec.index.binary_lists import Lists, as_codes, pack_arrays, train_centroids, unpack_arrays
from gpuvec.index.search import exact_cheaper, use_exact
from gpuvec.index.spec import BINARY_INDEX_TYPES
from gpuvec.index.threads import faiss_module, search_threads
from gpuvec.ops import binary_knn, binary_range, to_host
from gpuvec.ops.backend import is_cupy_array

__all__ = ["BinaryIndex"]


class BinaryIndex:
    """BIN_FLAT (exact, borrowed vectors) or BIN_IVF_FLAT (inverted lists) over packed
    binary vectors; ``dim`` is the number of bits."""

    impl = "binary"

    def __init__(
        self,
        index_type: str,
        metric: str,
        params: dict[str, Any],
        rows: int,
        nbytes: int,
        *,
        base: Any | None = None,
        lists: Lists | None = None,
    ) -> None:
        self.index_type = index_type
        self.metric = metric
        self.params = params
        self.ntotal = int(rows)
        self.code_bytes = int(nbytes)
        self.dim = 8 * self.code_bytes
        self._base = base
        self._lists = lists
        self._faiss: Any | None = None  # HAMMING without a filter: faiss-cpu (built lazily)
        self._faiss_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        index_type: str,
        vectors: Any,
        metric: str,
        params: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> BinaryIndex:
        """Validate and build (module docstring); ``progress(done, total)`` hears the rows
        indexed."""
        itype = validate.check_index_type(index_type)
        if itype not in BINARY_INDEX_TYPES:
            raise InvalidArgumentError(
                f"BinaryIndex serves {', '.join(BINARY_INDEX_TYPES)}, not {itype}"
            )
        metric = validate.check_metric(metric, binary=True)
        resolved = validate.resolved_build_params(itype, params or {})
        codes = as_codes(vectors)
        n, nbytes = int(codes.shape[0]), int(codes.shape[1])
        if itype == "BIN_FLAT":
            index = cls(itype, metric, resolved, n, nbytes, base=codes)
        else:
            if n == 0:
                raise InvalidArgumentError("cannot build BIN_IVF_FLAT on 0 rows")
            host = np.ascontiguousarray(to_host(codes))
            if progress is not None:
                progress(0, n)
            cent = train_centroids(host, min(int(resolved["nlist"]), n))
            lists = Lists.build(host, cent)
            index = cls(itype, metric, resolved, n, nbytes, lists=lists)
        if progress is not None:
            progress(n, n)
        return index

    # --- inputs ----------------------------------------------------------------------------
    def _queries(self, queries: Any) -> np.ndarray:
        q = queries if is_cupy_array(queries) else np.asarray(queries)
        if q.ndim == 1:
            q = q.reshape(1, -1)
        q = to_host(as_codes(q, "queries"))
        if q.shape[1] != self.code_bytes:
            raise InvalidArgumentError(
                f"queries are {q.shape[1]} bytes ({8 * q.shape[1]} bits) wide but the index "
                f"holds {self.code_bytes}-byte ({self.dim}-bit) binary vectors"
            )
        return np.ascontiguousarray(q)

    def _check_base(self, base: Any) -> Any:
        b = as_codes(base, "base")
        if tuple(b.shape) != (self.ntotal, self.code_bytes):
            raise InvalidArgumentError(
                f"base must be the {self.ntotal}x{self.code_bytes} uint8 vectors the index was "
                f"built from, got shape {tuple(b.shape)}"
            )
        return b

    def _filtered_plan(self, nprobe: int, k: int, mask: np.ndarray | None,
                       exact_fallback: bool) -> tuple[np.ndarray | None, int, bool]:  # fmt: skip
        """(mask or None when it passes every row, lists to probe, scan exactly?)."""
        lists = self._lists
        assert lists is not None
        passing = self.ntotal if mask is None else int(np.count_nonzero(mask))
        if passing == self.ntotal:
            return None, min(nprobe, lists.nlist), False
        frac = passing / self.ntotal
        wide = min(lists.nlist, math.ceil(nprobe / frac)) if passing else lists.nlist
        cheaper = exact_cheaper(
            "IVF", self.ntotal, passing, self.dim, nprobe=wide, nlist=lists.nlist
        )
        exact = exact_fallback and (use_exact(self.ntotal, passing, k) or cheaper)
        return mask, wide, exact

    def _probes(self, q: np.ndarray, nprobe: int) -> np.ndarray:
        assert self._lists is not None
        _, probes = binary_knn(self._lists.centroids, q, nprobe, "HAMMING")
        return probes

    def _exact_args(self, mask: np.ndarray, base: Any | None) -> tuple[Any, dict[str, Any]]:
        """What the exact fallback scans: ``base`` (checked) or the stored codes."""
        if base is not None:
            return self._check_base(base), {"valid": mask}
        lists = self._lists
        assert lists is not None
        return lists.codes, {"valid": mask[lists.ids], "ids": lists.ids}

    def _per_query(self, q: np.ndarray, probes: np.ndarray, mask: np.ndarray | None,
                   width: int, scan: Callable[..., SearchResult]) -> SearchResult:  # fmt: skip
        """``scan(codes, query, **kw)`` over the probed lists' rows of each query."""
        lists = self._lists
        assert lists is not None
        dist = np.empty((q.shape[0], width), np.float32)
        rows = np.empty((q.shape[0], width), np.int64)
        for i in range(q.shape[0]):
            pos = lists.positions(probes[i])
            ids = lists.ids[pos]
            kw: dict[str, Any] = {"ids": ids}
            if mask is not None:
                kw["valid"] = mask[ids]
            dist[i], rows[i] = (a[0] for a in scan(lists.codes[pos], q[i], **kw))
        return dist, rows

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
        """Top-``k`` rows per query among those where ``valid`` is True (module docstring;
        ``valid_key`` is accepted for the protocol)."""
        sp = validate.check_search_params(self.index_type, search_params, k, self.params)
        k = int(k)
        q = self._queries(queries)
        mask = check_valid(valid, self.ntotal)
        if mask is None and self.metric == "HAMMING" and not is_cupy_array(q):
            dist, rows, cut = self._faiss_search(q, k, int(sp.get("nprobe", 0)))
            if cut.any():  # a tie group cut at the k-th place: scan those queries
                dist[cut], rows[cut] = self._scan_search(q[cut], k, sp, None, base,
                                                         exact_fallback)  # fmt: skip
            return dist, rows
        return self._scan_search(q, k, sp, mask, base, exact_fallback)

    def _scan_search(self, q: np.ndarray, k: int, sp: dict[str, Any], mask: np.ndarray | None,
                     base: Any | None, exact_fallback: bool) -> SearchResult:  # fmt: skip
        """The search by :mod:`gpuvec.ops.binary`'s scans (any metric, any filter)."""
        if self._lists is None:
            return binary_knn(self._base, q, k, self.metric, valid=mask)
        mask, nprobe, exact = self._filtered_plan(int(sp["nprobe"]), k, mask, exact_fallback)
        if exact:
            assert mask is not None
            src, kw = self._exact_args(mask, base)
            return binary_knn(src, q, k, self.metric, **kw)

        def scan(codes: np.ndarray, qi: np.ndarray, **kw: Any) -> SearchResult:
            return binary_knn(codes, qi, k, self.metric, **kw)

        return self._per_query(q, self._probes(q, nprobe), mask, k, scan)

    def _faiss_index(self) -> Any:
        """faiss-cpu's ``IndexBinaryFlat`` over the rows (BIN_FLAT) or ``IndexBinaryIVF``
        holding the same centroids and lists (BIN_IVF_FLAT): its SIMD Hamming scan serves
        the unfiltered HAMMING searches (faiss's binary indexes take no row filter, and no
        JACCARD; those stay on :mod:`gpuvec.ops.binary`)."""
        with self._faiss_lock:
            if self._faiss is None:
                faiss = faiss_module()
                if self._lists is None:
                    index = faiss.IndexBinaryFlat(self.dim)
                    index.add(np.ascontiguousarray(to_host(self._base)))
                    self._faiss = (index, None)
                else:
                    ls = self._lists
                    quantizer = faiss.IndexBinaryFlat(self.dim)
                    quantizer.add(np.ascontiguousarray(ls.centroids))
                    index = faiss.IndexBinaryIVF(quantizer, self.dim, ls.nlist)
                    index.add_with_ids(np.ascontiguousarray(ls.codes), ls.ids.astype(np.int64))
                    self._faiss = (index, quantizer)  # the quantizer lives as long
            return self._faiss[0]

    def _faiss_search(self, q: np.ndarray, k: int, nprobe: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(dist, rows, cut): faiss's top-k, ties ordered by the lower row. faiss keeps an
        arbitrary part of a tie group at the k-th place, so it is asked for more rows; a
        query whose k-th distance is still tied with the last row fetched is marked in
        ``cut`` (bool [nq]) for an exact rescan."""
        faiss = faiss_module()
        index = self._faiss_index()
        params = None
        if self._lists is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = max(1, min(nprobe, self._lists.nlist))
        wide = min(self.ntotal, 2 * k + 16)
        with search_threads(q.shape[0]):
            dist, rows = index.search(np.ascontiguousarray(q), max(wide, k), params=params)
        dist, rows = finish(dist.astype(np.float32), rows, "HAMMING")
        cut = np.zeros(len(q), bool)
        if wide > k:
            full = rows[:, -1] >= 0  # the fetch came back full: the tail may be cut
            cut = full & (dist[:, k - 1] >= dist[:, -1])
        return dist[:, :k].copy(), rows[:, :k].copy(), cut

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
        """The best ``limit`` rows per query with ``range_filter <= d < radius``, padded
        (BIN_IVF_FLAT: among the probed lists' rows, module docstring)."""
        sp = validate.check_search_params(
            self.index_type, search_params, limit, self.params, for_range=True
        )
        r, f = validate.check_range_params(self.metric, radius, range_filter)
        limit = int(limit)
        q = self._queries(queries)
        mask = check_valid(valid, self.ntotal)
        if self._lists is None:
            return binary_range(self._base, q, self.metric, r, f, limit, valid=mask)
        mask, nprobe, exact = self._filtered_plan(int(sp["nprobe"]), limit, mask, exact_fallback)
        if exact:
            assert mask is not None
            src, kw = self._exact_args(mask, base)
            return binary_range(src, q, self.metric, r, f, limit, **kw)

        def scan(codes: np.ndarray, qi: np.ndarray, **kw: Any) -> SearchResult:
            return binary_range(codes, qi, self.metric, r, f, limit, **kw)

        return self._per_query(q, self._probes(q, nprobe), mask, limit, scan)

    # --- storage ---------------------------------------------------------------------------
    def payload(self) -> bytes:
        """BIN_FLAT: nothing (the segment has the vectors); BIN_IVF_FLAT: the lists."""
        if self._lists is None:
            return b""
        ls = self._lists
        return pack_arrays(
            {"centroids": ls.centroids, "offsets": ls.offsets, "ids": ls.ids, "codes": ls.codes}
        )

    def header_extra(self) -> dict[str, Any]:
        return {} if self._lists is None else {"served_nlist": self._lists.nlist}

    @classmethod
    def from_payload(cls, header: dict[str, Any], payload: bytes, base: Any | None) -> BinaryIndex:
        """The index of a file (``base``: the segment's vectors, needed by BIN_FLAT only).
        Unreadable payloads raise ValueError/KeyError (the registry reports them as
        corrupt data)."""
        itype = validate.check_index_type(header["index_type"])
        if itype not in BINARY_INDEX_TYPES:
            raise ValueError(f"index type {itype} is not a binary index type")
        metric = validate.check_metric(header["metric_type"], binary=True)
        rows, dim = int(header["rows"]), int(header["dim"])
        if dim % 8 or dim < 8:
            raise ValueError(f"binary index dim {dim} is not a positive multiple of 8")
        params = dict(header.get("params") or {})
        if itype == "BIN_FLAT":
            if base is None:
                raise InvalidArgumentError(
                    "loading a BIN_FLAT index needs the segment's vectors (base=...)"
                )
            b = as_codes(base, "base")
            if tuple(b.shape) != (rows, dim // 8):
                raise InvalidArgumentError(
                    f"base vectors {b.shape[0]}x{8 * b.shape[1]} bits do not match the index "
                    f"file ({rows}x{dim} bits)"
                )
            return cls(itype, metric, params, rows, dim // 8, base=b)
        lists = Lists.from_arrays(unpack_arrays(payload), rows, dim // 8)
        return cls(itype, metric, params, rows, dim // 8, lists=lists)

    def to_bytes(self) -> bytes:
        from gpuvec.index.registry import dump

        return dump(self)

    @property
    def nbytes(self) -> int:
        """Bytes held by the index (BIN_FLAT: none beyond the borrowed vectors)."""
        return 0 if self._lists is None else self._lists.nbytes

    def describe(self) -> dict[str, Any]:
        device = "cupy" if is_cupy_array(self._base) else "numpy"
        out: dict[str, Any] = {
            "index_type": self.index_type,
            "metric_type": self.metric,
            "dim": self.dim,
            "rows": self.ntotal,
            "params": dict(self.params),
            "served_as": self.index_type,
            "backend": f"{device} (binary)",
            "borrows_base": self._lists is None,
            "nbytes": self.nbytes,
        }
        if self._lists is not None:
            out["nlist"] = self._lists.nlist
            if self._lists.nlist != self.params.get("nlist"):
                out["note"] = (
                    f"nlist {self.params.get('nlist')} reduced to {self._lists.nlist} for "
                    f"{self.ntotal} rows"
                )
        return out
