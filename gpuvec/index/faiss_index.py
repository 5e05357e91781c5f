"""IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW (and the types served by them) on faiss-cpu.

Owns :class:`FaissIndex`: building and serving a type by its *serving plan*
(:mod:`gpuvec.index.faiss_plan`: which faiss structure, with which effective parameters);
GPU_IVF_FLAT / GPU_IVF_PQ are built by gpuvec (:mod:`gpuvec.index.gpu_builds`) and moved in.

* IVF_FLAT, GPU_IVF_FLAT → ``IVF{nlist},Flat``; IVF_SQ8 → ``IVF{nlist},SQ8``;
  IVF_PQ, GPU_IVF_PQ → ``IVF{nlist},PQ{m}x{nbits}``; HNSW → ``HNSW{M},Flat``;
  AUTOINDEX → HNSW M=18, efConstruction=240 (Milvus's autoIndex default);
  GPU_CAGRA → gpuvec's CAGRA graph (:mod:`gpuvec.index.cagra`) as the base layer of a
  faiss ``IndexHNSWCagra`` (``M = graph_degree / 2``: the base layer holds 2·M links);
  its search's ``ef`` is ``ef`` if given, else ``itopk_size`` (CAGRA's candidate list).
  GPU types are served on the CPU because faiss-gpu is not used here; ``describe()`` says so.
* Small segments shrink ``nlist`` and PQ ``nbits`` as knowhere does (the plan's rules).

Filters become a faiss ``IDSelectorBitmap`` in ``SearchParametersIVF/HNSW``; selective
filters, and filters whose index search would cost more than a scan, are served exactly
instead (:mod:`gpuvec.index.search`). Under a filter passing a fraction ``s`` of the rows,
an HNSW walk uses ``ef / s``: the walk crosses filtered rows and only passing ones enter its
results, so ``ef / s`` keeps the number of passing candidates of the unfiltered walk
(GloVe-50, 100k rows, frequency filter at 50 %, ef 96: recall 0.90 with ``ef``, 0.93 with
``ef / sqrt(s)``, 0.96 with ``ef / s`` at 1.8× the walk; MiniLM-GCIDE at 47 %, ef 64:
0.965 / 0.982 / 0.991). An IVF search likewise probes ``nprobe / s`` lists, which hold
as many passing rows as the unfiltered search's ``nprobe`` lists (the filter skips the
others before their distance is computed): on GloVe-50 at 50 %, recall 0.935 / 0.959 /
0.974 with ``nprobe`` / ``nprobe / sqrt(s)`` / ``nprobe / s`` at the nprobe where the
unfiltered search reaches 0.974 (0.941 with ``nprobe / sqrt(s)`` on 200k rows at 0.96).
COSINE indexes hold normalised vectors and search them by inner product.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import asdict
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import cagra, validate
from gpuvec.index.base import (
    SearchResult,
    as_queries,
    as_vectors,
    check_valid,
    finish,
    normalize_rows,
)
from gpuvec.index.faiss_plan import MIN_POINTS_PER_LIST, Plan, plan
from gpuvec.index.gpu_builds import own_backend, own_ivf_flat, own_ivf_pq
from gpuvec.index.search import (
    SubsetCache,
    exact_cheaper,
    exact_range,
    exact_subset_knn,
    in_range,
    use_exact,
)
from gpuvec.index.threads import faiss_module, search_threads
from gpuvec.ops import pad_value

__all__ = ["FaissIndex", "Plan", "plan"]

RANGE_EF_DEFAULT = 512  # knowhere kDefaultRangeSearchEf
ADD_BATCHES, ADD_BATCH_MIN = 20, 2048  # batches of a build that reports progress


class FaissIndex:
    """A faiss-cpu index serving one of the approximate Milvus types."""

    def __init__(
        self,
        index_type: str,
        metric: str,
        params: dict[str, Any],
        serving: Plan,
        index: Any,
    ) -> None:
        self.index_type = index_type
        self.metric = metric
        self.params = params
        self.serving = serving
        self._index = index
        self.ntotal = int(index.ntotal)
        self.dim = int(index.d)
        faiss = faiss_module()
        self._ivf = faiss.extract_index_ivf(index) if serving.kind != "HNSW" else None
        # unfiltered searches reuse their validated faiss SearchParameters (read-only)
        self._plain: dict[tuple[Any, ...], Any] = {}
        self._subsets = SubsetCache()  # exact fallback: gathered passing rows per mask key
        self._bitmaps: dict[Hashable, np.ndarray] = {}  # packed selector bits per mask key
        self._cache_lock = threading.Lock()

    # --- build -----------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        index_type: str,
        vectors: Any,
        metric: str,
        params: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> FaissIndex:
        """``progress(done, total)``, when given, is called after each batch of added rows
        (the rows are then added in ~``ADD_BATCHES`` batches: the same index for IVF, an
        equivalent graph for HNSW)."""
        faiss = faiss_module()
        itype = validate.check_index_type(index_type)
        metric = validate.check_metric(metric)
        x = as_vectors(vectors)
        n, dim = x.shape
        if n < 1:
            raise InvalidArgumentError(f"cannot build a {itype} index on 0 vectors")
        resolved = validate.resolved_build_params(itype, params or {})
        validate.check_dim(itype, resolved, dim)
        p = plan(itype, resolved, n, dim)
        if metric == "COSINE":
            x = normalize_rows(x)
        fmetric = faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT
        if itype == "GPU_CAGRA" and n >= cagra.MIN_ROWS:  # gpuvec's graph (index/cagra.py)
            index, degree, note = cagra.build_cagra(x, resolved, metric, progress)
            p = Plan("HNSW", M=degree // 2, efConstruction=0, note=note, graph="cagra")
            if progress is not None:
                progress(n, n)
            return cls(itype, metric, resolved, p, index)
        index = faiss.index_factory(dim, p.factory(), fmetric)
        if p.kind == "HNSW":
            index.hnsw.efConstruction = p.efConstruction
            if p.sq:  # HNSW_SQ: the quantizer's ranges come from the rows
                index.train(x)
        else:
            ivf = faiss.extract_index_ivf(index)
            ivf.cp.niter = int(resolved.get("kmeans_n_iters", ivf.cp.niter))
            if p.kind == "IVF_PQ":
                # small segments train 2**nbits codes on < 39 points each, as knowhere
                # does; silence faiss's stderr warning about it
                faiss.downcast_index(ivf).pq.cp.min_points_per_centroid = 1
            train = x
            frac = resolved.get("kmeans_trainset_fraction")
            if frac is not None and frac < 1.0:
                take = min(n, max(p.nlist * MIN_POINTS_PER_LIST, int(frac * n)))
                pick = np.random.default_rng(1234).choice(n, size=take, replace=False)
                train = x[np.sort(pick)]
            if itype in ("GPU_IVF_FLAT", "GPU_IVF_PQ"):  # gpuvec's own build (docstring)
                own = own_ivf_flat if itype == "GPU_IVF_FLAT" else own_ivf_pq
                index = own(x, train, p, metric, int(resolved.get("kmeans_n_iters", 20)))
                p.note += f" (built on {own_backend()})"
                if progress is not None:
                    progress(n, n)
                return cls(itype, metric, resolved, p, index)
            index.train(train)
        step = n if progress is None else max(ADD_BATCH_MIN, -(-n // ADD_BATCHES))
        for start in range(0, n, step):
            index.add(x[start : start + step])
            if progress is not None:
                progress(min(start + step, n), n)
        return cls(itype, metric, resolved, p, index)

    # --- search ----------------------------------------------------------------------------
    def _params(self, sp: dict[str, Any], k: int, sel: Any, *, passing: float = 1.0) -> Any:
        """faiss SearchParameters; under a filter passing a fraction ``s`` of the rows, HNSW's
        ``ef`` grows to ``ef / s`` and IVF's ``nprobe`` to ``nprobe / s`` (module docstring),
        capped at the row count / list count."""
        faiss = faiss_module()
        if self.serving.kind == "HNSW":
            ef = sp["ef"] if "ef" in sp else sp["itopk_size"]
            if 0.0 < passing < 1.0:
                ef = math.ceil(ef / passing)
            ef = max(k, min(int(ef), max(self.ntotal, k)))
            out = faiss.SearchParametersHNSW()
            out.efSearch = ef
        else:
            out = faiss.SearchParametersIVF()
            nprobe = int(sp.get("nprobe", 8))
            if 0.0 < passing < 1.0:
                nprobe = math.ceil(nprobe / passing)
            out.nprobe = min(nprobe, self.serving.nlist)
        if sel is not None:
            out.sel = sel
        return out

    def _exact_cheaper(self, sp: dict[str, Any], k: int, passing: int) -> bool:
        """The cost rule of :func:`gpuvec.index.search.exact_cheaper` for this index."""
        p = self.serving
        if p.kind == "HNSW":
            ef = int(sp["ef"] if "ef" in sp else sp["itopk_size"])
            ef_eff = min(max(self.ntotal, k), math.ceil(ef * self.ntotal / passing))
            return exact_cheaper("HNSW", self.ntotal, passing, self.dim, ef=ef_eff, M=p.M)
        nprobe = math.ceil(int(sp.get("nprobe", 8)) * self.ntotal / passing)
        nprobe = min(nprobe, p.nlist)
        return exact_cheaper("IVF", self.ntotal, passing, self.dim, nprobe=nprobe, nlist=p.nlist)

    def _plain_params(self, sp: dict[str, Any] | None, k: Any) -> Any | None:
        """Validated faiss SearchParameters of an unfiltered search, cached per
        (params, k); None when they cannot be cached (unhashable input: the slow path
        validates it and names the problem)."""
        try:
            key = (k, *sorted((sp or {}).items()))
            hit = self._plain.get(key)
        except TypeError:
            return None
        if hit is None:
            checked = validate.check_search_params(self.index_type, sp, k, self.params)
            hit = self._params(checked, int(k), None)
            if len(self._plain) >= 64:
                self._plain.clear()
            self._plain[key] = hit
        return hit

    def _selector(self, mask: np.ndarray | None, key: Hashable | None = None) -> tuple[Any, Any]:
        """(IDSelectorBitmap, the packed bits it points into) or (None, None); the bits of
        a keyed mask are kept (a few, LRU) for the next search with the same key."""
        if mask is None:
            return None, None
        faiss = faiss_module()
        with self._cache_lock:
            bits = None if key is None else self._bitmaps.get(key)
        if bits is None:
            bits = np.packbits(mask, bitorder="little")
            if key is not None:
                with self._cache_lock:
                    self._bitmaps[key] = bits
                    while len(self._bitmaps) > 4:
                        del self._bitmaps[next(iter(self._bitmaps))]
        return faiss.IDSelectorBitmap(self.ntotal, faiss.swig_ptr(bits)), bits

    def _own_vectors(self) -> np.ndarray | None:
        """A zero-copy view of the stored vectors (HNSW's flat storage), else None."""
        if self.serving.kind != "HNSW" or self.serving.sq:
            return None  # IVF lists and HNSW_SQ's codes: no float rows to view
        faiss = faiss_module()
        storage = faiss.downcast_index(self._index.storage)
        ptr = storage.get_xb()
        return faiss.rev_swig_ptr(ptr, self.ntotal * self.dim).reshape(self.ntotal, self.dim)

    def _exact_source(self, base: Any | None) -> Any | None:
        """What the exact fallback scans: ``base`` (checked) or the index's own vectors."""
        if base is None:
            return self._own_vectors()
        if tuple(base.shape) != (self.ntotal, self.dim):
            raise InvalidArgumentError(
                f"base must be the {self.ntotal}x{self.dim} vectors the index was built "
                f"from, got shape {tuple(base.shape)}"
            )
        return base

    def _prep(self, queries: Any) -> np.ndarray:
        q = as_queries(queries, self.dim)
        if self.metric == "COSINE":  # faiss's own C loop: a fraction of NumPy's cost at nq=1
            q = q.copy()
            faiss_module().normalize_L2(q)
        return q

    def _knn(self, q: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """faiss k-NN straight through ``search_c`` (``q`` is C-contiguous float32 from
        :meth:`_prep`; the Python wrapper's own checks cost as much as a small search)."""
        faiss = faiss_module()
        n = q.shape[0]
        dist = np.empty((n, k), np.float32)
        rows = np.empty((n, k), np.int64)
        self._index.search_c(
            n, faiss.swig_ptr(q), k, faiss.swig_ptr(dist), faiss.swig_ptr(rows), params
        )
        return dist, rows

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
        """Top-k with Milvus search params; a selective ``valid`` is served exactly (from
        ``base`` if given, else the index's own vectors or an all-lists filtered scan)."""
        wide = self._refined_k(search_params, k, base)
        if wide is not None:  # GPU_IVF_PQ's refine: more PQ candidates, re-scored exactly
            knob = self._refine_knob()
            dist, rows = self.search(queries, wide, {**(search_params or {}), knob: 1},
                                     valid=valid, base=base, exact_fallback=exact_fallback,
                                     valid_key=valid_key)  # fmt: skip
            return self._refine(self._prep(queries), rows, int(k), base)
        if valid is None:
            plain = self._plain_params(search_params, k)
            if plain is not None:
                q = self._prep(queries)
                with search_threads(q.shape[0]):
                    dist, rows = self._knn(q, int(k), plain)
                return finish(dist, rows, self.metric)
        sp = validate.check_search_params(self.index_type, search_params, k, self.params)
        k = int(k)
        q = self._prep(queries)
        mask = check_valid(valid, self.ntotal)
        sel = bits = None
        extra: dict[str, int] = {}
        if mask is not None:
            passing = int(np.count_nonzero(mask))
            if passing == self.ntotal:
                mask = None
            elif exact_fallback and (
                use_exact(self.ntotal, passing, k) or self._exact_cheaper(sp, k, passing)
            ):
                src = self._exact_source(base)
                if src is not None:
                    with search_threads(q.shape[0]):
                        return exact_subset_knn(
                            src, q, k, self.metric, mask, self._subsets, valid_key
                        )
                extra = {"nprobe": self.serving.nlist}  # IVF: scan every list
        frac = 1.0
        if mask is not None:
            sel, bits = self._selector(mask, valid_key)
            frac = passing / self.ntotal
        params = self._params({**sp, **extra}, k, sel, passing=frac)
        with search_threads(q.shape[0]):
            dist, rows = self._knn(q, k, params)
        del bits  # the selector pointed into it until here
        return finish(dist, rows, self.metric)

    def _refine_knob(self) -> str | None:
        """The search parameter that asks for a refine: GPU_IVF_PQ's ``refine_ratio``,
        HNSW_SQ's ``refine_k`` (built with ``refine``); None for the other types."""
        if self.index_type == "GPU_IVF_PQ":
            return "refine_ratio"
        if self.index_type == "HNSW_SQ" and self.params.get("refine"):
            return "refine_k"
        return None

    def _refined_k(self, sp: dict[str, Any] | None, k: Any, base: Any | None) -> int | None:
        """How many quantized candidates a search with ``refine_ratio`` (GPU_IVF_PQ) or
        ``refine_k`` (HNSW_SQ) > 1 re-scores (None: no refine — another type, a factor of
        1, or no raw vectors to re-score on)."""
        knob = self._refine_knob()
        if knob is None or base is None or not sp:
            return None
        ratio = sp.get(knob, 1)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 1:
            return None  # invalid values are named by the validated path
        return min(self.ntotal, max(int(k), math.ceil(int(k) * float(ratio))))

    def _refine(self, q: np.ndarray, rows: np.ndarray, k: int, base: Any) -> SearchResult:
        """Exact scores of the candidate ``rows`` on ``base`` (the raw rows; normalised for
        COSINE), the best ``k`` kept."""
        src = np.asarray(self._exact_source(base))
        ok = rows >= 0
        dist = np.empty(rows.shape, np.float32)
        step = max(1, (1 << 24) // max(1, rows.shape[1] * self.dim))  # bounded gathers
        for a in range(0, len(rows), step):
            raw = src[np.where(ok[a : a + step], rows[a : a + step], 0)].astype(np.float32)
            if self.metric == "COSINE":
                raw = normalize_rows(raw.reshape(-1, self.dim)).reshape(raw.shape)
            qa = q[a : a + step]
            if self.metric == "L2":
                diff = raw - qa[:, None, :]
                dist[a : a + step] = np.einsum("qcd,qcd->qc", diff, diff)
            else:
                dist[a : a + step] = np.einsum("qcd,qd->qc", raw, qa)
        dist = np.where(ok, dist, np.float32(pad_value(self.metric)))
        d, r = finish(dist, np.where(ok, rows, -1), self.metric)
        return np.ascontiguousarray(d[:, :k]), np.ascontiguousarray(r[:, :k])

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
        """Milvus range search: faiss ``range_search`` (strict ``radius`` bound) then the
        ``range_filter`` bound and the best ``limit`` per query. HNSW walks with ``ef`` =
        the given ef (or GPU_CAGRA's itopk_size) else 512 (knowhere's range default), at
        least ``limit``. Selective filters: exact scan, as in :meth:`search`."""
        sp = validate.check_search_params(
            self.index_type, search_params, limit, self.params, for_range=True
        )
        r, f = validate.check_range_params(self.metric, radius, range_filter)
        limit = int(limit)
        q = self._prep(queries)
        mask = check_valid(valid, self.ntotal)
        passing = self.ntotal if mask is None else int(np.count_nonzero(mask))
        if passing == self.ntotal:
            mask = None
        elif exact_fallback and use_exact(self.ntotal, passing, limit):
            src = self._exact_source(base)
            if src is not None:
                with search_threads(q.shape[0]):
                    return exact_range(src, q, self.metric, r, f, limit, mask)
            sp["nprobe"] = self.serving.nlist  # IVF: scan every list
        sel, bits = self._selector(mask)
        frac = passing / self.ntotal
        if self.serving.kind == "HNSW" and "ef" not in sp:
            sp["ef"] = sp.get("itopk_size", RANGE_EF_DEFAULT)
        params = self._params(sp, limit, sel, passing=frac)
        with search_threads(q.shape[0]):
            lims, dist, rows = self._index.range_search(q, r, params=params)
        del bits
        return ragged_topk(lims, dist, rows, self.metric, r, f, limit)

    # --- storage ---------------------------------------------------------------------------
    def payload(self) -> bytes:
        return faiss_module().serialize_index(self._index).tobytes()

    def header_extra(self) -> dict[str, Any]:
        return {"serving": asdict(self.serving)}

    @classmethod
    def from_payload(cls, header: dict[str, Any], payload: bytes, base: Any | None) -> FaissIndex:
        faiss = faiss_module()
        index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        serving = Plan(**header["serving"])
        out = cls(header["index_type"], header["metric_type"], header["params"], serving, index)
        if (out.ntotal, out.dim) != (header["rows"], header["dim"]):
            raise InvalidArgumentError("index payload does not match its header (rows, dim)")
        return out

    def to_bytes(self) -> bytes:
        from gpuvec.index.registry import dump

        return dump(self)

    @property
    def nbytes(self) -> int:
        """Approximate resident bytes: stored codes/vectors, ids, graph, centroids, tables."""
        faiss = faiss_module()
        if self.serving.kind == "HNSW":
            h = self._index.hnsw
            row = faiss.downcast_index(self._index.storage).code_size if self.serving.sq else (
                self.dim * 4)
            return int(
                self.ntotal * row
                + h.neighbors.size() * 4
                + h.levels.size() * 4
                + h.offsets.size() * 8
            )
        ivf = self._ivf
        total = self.ntotal * (ivf.code_size + 8) + ivf.nlist * self.dim * 4
        if self.serving.kind == "IVF_PQ":
            pq_index = faiss.downcast_index(ivf)
            total += pq_index.pq.centroids.size() * 4 + pq_index.precomputed_table.size() * 4
        elif self.serving.kind == "IVF_SQ8":
            total += faiss.downcast_index(ivf).sq.trained.size() * 4
        return int(total)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index_type": self.index_type,
            "metric_type": self.metric,
            "dim": self.dim,
            "rows": self.ntotal,
            "params": dict(self.params),
            "served_as": self.serving.kind,
            "backend": "faiss-cpu:" + self.serving.factory(),
            "borrows_base": False,
            "nbytes": self.nbytes,
        }
        if self.serving.note:
            out["note"] = self.serving.note
        return out


def ragged_topk(
    lims: np.ndarray,
    dist: np.ndarray,
    rows: np.ndarray,
    metric: str,
    radius: float,
    range_filter: float | None,
    limit: int,
) -> SearchResult:
    """faiss range-search output (``lims``, flat ``dist``/``rows``) → the best ``limit``
    in-range hits per query as padded [nq, limit] arrays."""
    lims = np.asarray(lims, dtype=np.int64)
    nq = len(lims) - 1
    qid = np.repeat(np.arange(nq), np.diff(lims))
    ok = in_range(dist, metric, radius, range_filter) & (rows >= 0)
    qid, dist, rows = qid[ok], dist[ok], rows[ok]
    key = dist if metric == "L2" else -dist
    order = np.lexsort((rows, key, qid))
    qid, dist, rows = qid[order], dist[order], rows[order]
    starts = np.searchsorted(qid, np.arange(nq))
    rank = np.arange(qid.size) - starts[qid]
    keep = rank < limit
    out_d = np.zeros((nq, limit), np.float32)
    out_r = np.full((nq, limit), -1, np.int64)
    out_d[qid[keep], rank[keep]] = dist[keep]
    out_r[qid[keep], rank[keep]] = rows[keep]
    return finish(out_d, out_r, metric)
