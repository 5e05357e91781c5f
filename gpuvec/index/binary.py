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
  the largest cluster; stop after :data:`KMAJORITY_ITERS` steps or when nothing changes.
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
  The payload holds everything a search needs (:func:`pack_arrays`: a JSON table of
  contents and the raw arrays; no pickle), and is byte-identical for identical input.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import validate
from gpuvec.index.base import SearchResult, check_valid, finish
from gpuvec.index.search import exact_cheaper, use_exact
from gpuvec.index.spec import BINARY_INDEX_TYPES
from gpuvec.index.threads import faiss_module, search_threads
from gpuvec.ops import binary_knn, binary_range, to_host
from gpuvec.ops.backend import is_cupy_array

__all__ = ["KMAJORITY_ITERS", "SEED", "BinaryIndex", "as_codes", "pack_arrays", "unpack_arrays"]

KMAJORITY_ITERS = 10
MAX_POINTS_PER_LIST = 256  # training sample: at most this many rows per centroid
SEED = 1234
_MAJORITY_CHUNK = 1 << 14  # sample rows unpacked to bits at a time
_PAYLOAD_MAGIC = b"GVBIN\x00\x01\x00"


def as_codes(a: Any, name: str = "vectors") -> Any:
    """``a`` as packed binary vectors, uint8 [rows, bytes] (NumPy, memory-mapped or CuPy;
    no copy), or InvalidArgumentError naming what is wrong."""
    m = a if is_cupy_array(a) else np.asarray(a)
    if m.ndim != 2 or m.shape[1] < 1:
        raise InvalidArgumentError(
            f"{name} must be packed binary vectors, uint8 [rows, dim/8], got shape {tuple(m.shape)}"
        )
    if str(m.dtype) != "uint8":
        raise InvalidArgumentError(
            f"{name} must be packed binary vectors of dtype uint8 [rows, dim/8], got dtype "
            f"{m.dtype}"
        )
    return m


# --- payload ----------------------------------------------------------------------------------
def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """``magic | u32 toc length | toc (JSON: name, dtype, shape per array) | raw arrays``."""
    toc = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
    head = json.dumps(toc).encode()
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
    return _PAYLOAD_MAGIC + struct.pack("<I", len(head)) + head + body


def unpack_arrays(payload: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`pack_arrays` (read-only views of ``payload``); ValueError when
    the payload is not one."""
    if not payload.startswith(_PAYLOAD_MAGIC):
        raise ValueError("not a binary index payload (bad magic)")
    (hlen,) = struct.unpack_from("<I", payload, len(_PAYLOAD_MAGIC))
    pos = len(_PAYLOAD_MAGIC) + 4
    toc = json.loads(payload[pos : pos + hlen].decode())
    pos += hlen
    out = {}
    for name, dtype, shape in toc:
        dt = np.dtype(dtype)
        count = math.prod(shape)
        if pos + count * dt.itemsize > len(payload):
            raise ValueError(f"binary index payload is truncated (array {name!r})")
        out[name] = np.frombuffer(payload, dt, count, pos).reshape(shape)
        pos += count * dt.itemsize
    if pos != len(payload):
        raise ValueError("binary index payload has trailing bytes")
    return out


# --- training ---------------------------------------------------------------------------------
def _majority(sample: np.ndarray, labels: np.ndarray, nlist: int) -> tuple[np.ndarray, Any]:
    """Centroids whose bits are the majority bits of their members (ties and empty: 0), and
    the cluster sizes."""
    ones = np.zeros((nlist, sample.shape[1] * 8), np.int64)
    order = np.argsort(labels, kind="stable")
    for s in range(0, order.size, _MAJORITY_CHUNK):
        idx = order[s : s + _MAJORITY_CHUNK]
        lab = labels[idx]
        starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
        bits = np.unpackbits(sample[idx], axis=1)
        ones[lab[starts]] += np.add.reduceat(bits, starts, axis=0, dtype=np.int64)
    sizes = np.bincount(labels, minlength=nlist)
    return np.packbits(2 * ones > sizes[:, None], axis=1), sizes


def _reseed(cent: np.ndarray, sizes: np.ndarray, sample: np.ndarray, labels: np.ndarray,
            dist: np.ndarray) -> None:  # fmt: skip
    """Give each empty cluster the member farthest from its centroid in the largest
    cluster (ties: the lower sample row), in place."""
    dist = dist.copy()
    for c in np.flatnonzero(sizes == 0):
        big = int(np.argmax(sizes))
        if sizes[big] < 2:
            return
        members = np.flatnonzero(labels == big)
        row = int(members[np.argmax(dist[members])])
        cent[c] = sample[row]
        labels[row], dist[row] = c, -1.0
        sizes[big] -= 1
        sizes[c] = 1


def train_centroids(codes: np.ndarray, nlist: int, *, seed: int = SEED) -> np.ndarray:
    """``nlist`` binary centroids (uint8 [nlist, bytes]) of ``codes`` by k-majority
    (module docstring); deterministic under ``seed``."""
    n = codes.shape[0]
    rng = np.random.default_rng(seed)
    m = min(n, MAX_POINTS_PER_LIST * nlist)
    pick = np.arange(n) if m == n else np.sort(rng.choice(n, m, replace=False))
    sample = np.ascontiguousarray(codes[pick])
    cent = np.ascontiguousarray(sample[np.sort(rng.choice(m, nlist, replace=False))])
    for _ in range(KMAJORITY_ITERS):
        dist, lab = binary_knn(cent, sample, 1, "HAMMING")
        labels = lab[:, 0].copy()
        new, sizes = _majority(sample, labels, nlist)
        _reseed(new, sizes, sample, labels, dist[:, 0])
        if np.array_equal(new, cent):
            break
        cent = new
    return cent


@dataclass
class _Lists:
    """Inverted lists, CSR: list ``j`` holds rows ``ids[offsets[j]:offsets[j + 1]]`` with
    codes ``codes[offsets[j]:offsets[j + 1]]``."""

    centroids: np.ndarray  # uint8 [nlist, bytes]
    offsets: np.ndarray  # int64 [nlist + 1]
    ids: np.ndarray  # int64 [n]
    codes: np.ndarray  # uint8 [n, bytes]

    @classmethod
    def build(cls, codes: np.ndarray, centroids: np.ndarray) -> _Lists:
        _, lab = binary_knn(centroids, codes, 1, "HAMMING")
        labels = lab[:, 0]
        order = np.argsort(labels, kind="stable").astype(np.int64)
        sizes = np.bincount(labels, minlength=centroids.shape[0])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return cls(centroids, offsets, order, np.ascontiguousarray(codes[order]))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], rows: int, nbytes: int) -> _Lists:
        """Lists from :func:`unpack_arrays`, checked for consistency (ValueError)."""
        c, off, ids, codes = (arrays[k] for k in ("centroids", "offsets", "ids", "codes"))
        nlist = c.shape[0] if c.ndim == 2 else -1
        ok = (
            c.dtype == np.uint8 and c.ndim == 2 and c.shape[1] == nbytes and nlist >= 1
            and off.dtype == np.int64 and off.shape == (nlist + 1,)
            and ids.dtype == np.int64 and ids.shape == (rows,)
            and codes.dtype == np.uint8 and codes.shape == (rows, nbytes)
            and off[0] == 0 and off[-1] == rows and bool((np.diff(off) >= 0).all())
            and (rows == 0 or (int(ids.min()) >= 0 and int(ids.max()) < rows))
        )  # fmt: skip
        if not ok:
            raise ValueError("binary index payload arrays do not match each other or the header")
        return cls(c, off, ids, codes)

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    def positions(self, probes: np.ndarray) -> np.ndarray:
        """Storage positions of the rows of lists ``probes`` (in probe order)."""
        lo, hi = self.offsets[probes], self.offsets[probes + 1]
        lens = hi - lo
        return np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.centroids, self.offsets, self.ids, self.codes)))


# --- the index --------------------------------------------------------------------------------
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
        lists: _Lists | None = None,
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
            lists = _Lists.build(host, cent)
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
        lists = _Lists.from_arrays(unpack_arrays(payload), rows, dim // 8)
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
