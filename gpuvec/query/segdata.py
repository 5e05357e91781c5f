"""In-memory segment data shared by growing segments (streaming node) and loaded sealed
segments (query node): primary keys, vectors, scalar rows and MVCC visibility.

A segment is one partition's rows of one shard. Rows are addressed by their offset in the
segment. ``search`` uses the segment's attached index for the field when it has one (and
the filter leaves enough rows for it, :mod:`gpuvec.index.search`), else exact brute force
(``gpuvec.ops.knn``), over the rows visible at the read timestamp;
``take`` fetches output fields by offset; ``delete`` applies a delete batch by primary key.

Concurrency: one writer (the shard's, under its lock; the query node's for deletes) and any
number of readers without a lock. The writer publishes an append by raising the row count
``n`` last, after the pk, vector, scalar and timestamp buffers hold the rows; buffers are
grown by copy, never shrunk. A reader therefore reads ``n`` *once* per request and works on
that prefix: a filter mask is computed over exactly ``n`` rows and then fixes the rows its
search considers (``len(extra_mask)``), so no two arrays of one request have different
lengths. Rows appended after that are newer than the read timestamp anyway (every write
takes its timestamp after the read's was allocated) and invisible to it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gpuvec import ops, vectors
from gpuvec.arrays import take_columns
from gpuvec.index.spec import INDEX_SEARCH_KNOBS
from gpuvec.query.fanout import search_work
from gpuvec.query.rowtable import RowTable
from gpuvec.query.segsparse import SparseSegment
from gpuvec.query.visibility import Visibility
from gpuvec.records import Hits
from gpuvec.sparse import SparseRows

if TYPE_CHECKING:
    from gpuvec.expr import Filter

_MASK_CACHE = 16  # filter masks kept per sealed segment
_INDEX_PARAMS = INDEX_SEARCH_KNOBS  # what an index's search reads (gpuvec.index.spec)


class SegmentData(SparseSegment):
    """Columnar rows with capacity doubling; append-only except for MVCC deletes."""

    def __init__(
        self,
        segment_id: int,
        partition_id: int,
        vector_dims: dict[str, int],
        pk_is_int: bool,
        capacity: int = 1024,
        vector_dtypes: dict[str, np.dtype] | None = None,
    ) -> None:
        self.segment_id = segment_id
        self.partition_id = partition_id
        self.dims = vector_dims  # field → the stored matrix's width (binary: dim / 8 bytes)
        self.dtypes = {f: np.dtype((vector_dtypes or {}).get(f, np.float32)) for f in vector_dims}
        self.pk_is_int = pk_is_int
        self.vis = Visibility(capacity=capacity)
        self._pk = np.empty(capacity, np.int64 if pk_is_int else object)
        self._vec = {
            f: np.empty((capacity, d), self.dtypes[f]) for f, d in vector_dims.items()
        }
        self._f32: dict[str, np.ndarray] = {}  # sealed non-float32 dense fields, as float32
        self._rows = RowTable()
        self._device: dict[str, object] = {}
        self._sq_norms: dict[str, np.ndarray] = {}
        self._sparse: dict[str, SparseRows] = {}  # SPARSE_FLOAT_VECTOR fields in CSR form
        self.sealed = False  # set by the query node: rows never change after that
        self._json_cache: object | None = None
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self.indexes: dict[str, tuple[str, Any]] = {}  # field → (index id, VectorIndex)
        self._device_masks: OrderedDict[str, Any] = OrderedDict()  # filter key → device mask
        self._device_alive: tuple[int, Any] | None = None  # (visibility version, device mask)

    @property
    def n(self) -> int:
        return self.vis.n

    @property
    def pks(self) -> np.ndarray:
        n = self.n  # first: a buffer read after it holds at least n rows
        return self._pk[:n]

    def vectors(self, field: str, n: int | None = None) -> np.ndarray:
        n = self.n if n is None else n
        return self._vec[field][:n]

    def is_binary(self, field: str) -> bool:
        """Whether ``field`` holds packed bits (BINARY_VECTOR: HAMMING / JACCARD)."""
        return self.dtypes[field] == np.uint8

    def compute_vectors(self, field: str, n: int) -> np.ndarray:
        """The first ``n`` rows as an exact scan computes them: float32 for the dense kinds
        (FLOAT16 / BFLOAT16 / INT8 converted; a sealed segment keeps the converted copy
        until an index with its own vectors serves it), the packed bytes for binary.
        Indexes get the stored rows: they only gather rows from them, and widen those."""
        base = self._vec[field][:n]
        if base.dtype == np.float32 or self.is_binary(field):
            return base
        if not self.sealed:
            return base.astype(np.float32)
        got = self._f32.get(field)
        if got is None or len(got) < n:
            got = self._f32[field] = self._vec[field][: self.n].astype(np.float32)
        return got[:n]

    def drop_converted(self, field: str) -> None:
        """Forget the float32 copy of ``field`` (an index that keeps its own vectors now
        serves it; a search in flight keeps the copy it holds)."""
        self._f32.pop(field, None)

    def nbytes(self) -> int:
        per_row = sum(d * self.dtypes[f].itemsize for f, d in self.dims.items())
        extra = sum(a.nbytes for a in self._f32.values())
        return self.n * (8 + 8 + per_row) + self._rows.nbytes + extra

    def append(
        self, pks: np.ndarray, ins_ts: np.ndarray, vectors: dict[str, np.ndarray], rows: pa.Table,
        *, take: bool = False,
    ) -> None:  # fmt: skip
        """Append a batch; ``rows`` holds the scalar columns returned as output fields.
        ``take``: the caller hands over ``vectors`` (a sealed segment's load): an empty
        segment keeps exactly-sized float32 arrays as they are instead of copying them
        (read-only ones too: a full segment's arrays are never written in place, a later
        append grows into new ones)."""
        n, m = self.n, len(pks)
        if take and n == 0:
            for f, v in vectors.items():
                buf = self._vec[f]
                if (v.dtype == buf.dtype and v.flags.c_contiguous
                        and v.shape == (len(buf), buf.shape[1]) and m == len(buf)):  # fmt: skip
                    self._vec[f] = v
        need = n + m
        if need > len(self._pk):
            cap = max(need, 2 * len(self._pk))
            pk = np.empty(cap, self._pk.dtype)
            pk[:n] = self._pk[:n]
            self._pk = pk
            for f, buf in self._vec.items():
                grown = np.empty((cap, buf.shape[1]), buf.dtype)
                grown[:n] = buf[:n]
                self._vec[f] = grown
        self._pk[n:need] = pks
        for f, v in vectors.items():
            if self._vec[f] is not v and need > n:
                self._vec[f][n:need] = v
        self._rows.append(rows)
        self._device.clear()
        self._f32.clear()
        self.vis.append(np.asarray(ins_ts, np.uint64))  # publishes the rows: raises n last

    def rows_of(self, pks: np.ndarray) -> np.ndarray:
        """Offsets of all rows whose primary key is in ``pks``."""
        if self.n == 0 or len(pks) == 0:
            return np.empty(0, np.int64)
        return np.flatnonzero(np.isin(self.pks, pks))

    def delete(self, pks: np.ndarray, ts: int) -> int:
        return self.vis.delete_rows(self.rows_of(pks), ts)

    def table(self) -> pa.Table:
        """The scalar rows as one table of single-chunk columns: at least ``n`` rows (more
        when an append is in flight)."""
        return self._rows.table()

    def take(self, rows: np.ndarray, fields: list[str]) -> pa.Table:
        """Scalar columns ``fields`` of the rows at ``rows`` (offsets), in that order; a
        field added to the collection after these rows were written reads as nulls."""
        if not fields:
            return pa.table({"_": pa.nulls(len(rows))})
        return take_columns(self.table(), rows, fields)

    def filter_mask(self, flt: Filter, key: str) -> np.ndarray:
        """Rows matching ``flt`` (bool [n]), evaluated vectorised over the scalar columns.
        A sealed segment keeps the masks of its last few filters (``key`` names one)."""
        if self.sealed and key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        if self._json_cache is None:
            from gpuvec.expr import JsonCache

            self._json_cache = JsonCache()
        n = self.n  # first: the table read after it holds at least n rows
        table = self.table()
        if table.num_rows != n:  # an append is in flight: evaluate the first n rows
            table = table.slice(0, n)
        mask = np.asarray(flt.evaluate(table, self._json_cache, self._scalar_indexes(n)), bool)
        if self.sealed:
            self._masks[key] = mask
            while len(self._masks) > _MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

    def _scalar_indexes(self, n: int) -> dict[str, Any] | None:
        """The attached scalar indexes covering exactly the first ``n`` rows (a sealed
        segment's), by field; None when there are none."""
        if not self.sealed:
            return None
        got = {f: ix for f, (_, ix) in self.indexes.items()
               if getattr(ix, "impl", "") == "scalar" and ix.ntotal == n}  # fmt: skip
        return got or None

    def _range(
        self,
        field: str,
        queries: np.ndarray,
        k: int,
        metric: str,
        valid: np.ndarray,
        sp: dict[str, Any],
    ) -> Hits:
        """Range search (Milvus ``radius`` / ``range_filter``): the best ``k`` rows per
        query inside the range, through the segment's index when it has one. ``valid``
        covers the request's ``n`` rows."""
        from gpuvec.index.search import exact_range
        from gpuvec.index.validate import check_range_params

        n = len(valid)
        radius, rf = check_range_params(metric, sp["radius"], sp.get("range_filter"))
        mask = None if valid.all() else valid
        base = self._vec[field][:n]  # stored rows: the scans below widen them block by block
        if field in self.indexes and self.sealed:
            params = {k2: v for k2, v in sp.items() if k2 in _INDEX_PARAMS}
            index = self.indexes[field][1]
            dist, rows = index.range_search(
                queries, radius, rf, limit=k, search_params=params, valid=mask, base=base
            )
        elif self.is_binary(field):
            dist, rows = ops.binary_range(base, queries, metric, radius, rf, k, valid=mask)
        else:
            dist, rows = exact_range(base, queries, metric, radius, rf, k, mask)
        return Hits(dist, rows)

    def pin_device(self) -> bool:
        """Copy vectors and their norms to the GPU (sealed segments only: growing ones
        change with every append). Returns whether the segment is now resident. FLOAT16
        stays float16 on the device (half the bytes; the GEMM converts block by block),
        binary stays packed; BFLOAT16 and INT8 go as float32 (CuPy has no bfloat16)."""
        if not ops.is_gpu():
            return False
        for f in self.dims:
            if self.is_binary(f) or self.dtypes[f] == np.float16:
                self._device[f] = ops.to_device(self.vectors(f))
            else:
                self._device[f] = ops.to_device(self.compute_vectors(f, self.n))
            if not self.is_binary(f):
                self._device[f + "/sq"] = ops.to_device(self._norms(f, self.n))
        return True

    def device_bytes(self) -> int:
        """Device memory ``pin_device`` takes: the vectors and their squared norms."""
        total = 0
        for f, d in self.dims.items():
            if self.is_binary(f):
                total += self.n * d
            else:
                total += self.n * (d * (2 if self.dtypes[f] == np.float16 else 4) + 4)
        return total

    def unpin_device(self) -> None:
        self._device.clear()
        self._device_masks.clear()
        self._device_alive = None

    def _device_valid(
        self, n: int, read_ts: int, extra_mask: np.ndarray | None, key: str | None
    ) -> Any | None:
        """The rows a device search may return, as a device bitmap (None: every row).
        The alive bitmap and the sealed segment's filter masks stay on the device and are
        re-sent only after deletes (DESIGN §9), not on every search: the device copy is
        keyed by the visibility version it was taken at (read before the mask, so a delete
        landing meanwhile leaves a copy whose key is already stale)."""
        vis = self.vis
        version = vis.version
        current = read_ts >= vis.max_ins and read_ts >= vis.max_del
        if current and vis.max_del == 0:
            alive = None  # nothing was ever deleted here: no mask at all
        elif current:
            cached = self._device_alive
            if cached is None or cached[0] != version:
                cached = (version, ops.to_device(np.array(vis.mask(read_ts)[:n])))
                self._device_alive = cached
            alive = cached[1]
        else:  # an older read: its own mask
            alive = ops.to_device(np.array(vis.mask(read_ts)[:n]))
        if extra_mask is None:
            return alive
        dm = self._device_masks.get(key) if key is not None else None
        if dm is None:
            dm = ops.to_device(np.array(extra_mask[:n]))
            if key is not None and self.sealed:
                self._device_masks[key] = dm
                while len(self._device_masks) > _MASK_CACHE:
                    self._device_masks.popitem(last=False)
        else:
            self._device_masks.move_to_end(key)  # type: ignore[arg-type]
        return dm if alive is None else alive & dm

    @property
    def on_device(self) -> bool:
        return bool(self._device)

    def _norms(self, field: str, n: int) -> np.ndarray:
        """Squared norms of the first ``n`` rows. Rows never change once appended, so the
        cache is a prefix that readers extend by the rows it lacks (a racing reader may
        store a shorter prefix: that costs a recomputation, never a wrong norm)."""
        norms = self._sq_norms.get(field)
        have = 0 if norms is None else len(norms)
        if have < n:
            tail = ops.sq_norms(vectors.as_float32(self._vec[field][have:n]))
            norms = tail if norms is None else np.concatenate([norms, tail])
            self._sq_norms[field] = norms
        return norms[:n]  # type: ignore[index]

    def search_work(self, field: str, nq: int) -> int:
        """Rows a search of ``nq`` queries touches here (:func:`gpuvec.query.fanout.search_work`):
        through the built index on a sealed segment off the device, else every row."""
        indexed = self.sealed and field in self.indexes and field not in self._device
        return search_work(self.n, nq, indexed)

    def search(
        self,
        field: str,
        queries: np.ndarray,
        k: int,
        metric: str,
        read_ts: int,
        extra_mask: np.ndarray | None = None,
        search_params: dict[str, Any] | None = None,
        mask_key: str | None = None,
    ) -> Hits:
        """Top-k over the rows visible at ``read_ts``: brute force on the GPU when the
        segment is resident there, else its built index (``indexes``), else brute force on
        the host. Safe against a concurrent append: it works on the first ``n`` rows, where
        ``n`` is the length of ``extra_mask`` when one is given (the rows the caller's filter
        saw), else the row count when the search starts."""
        n = self.n if extra_mask is None else len(extra_mask)
        sp = search_params or {}
        if isinstance(queries, SparseRows):  # a SPARSE_FLOAT_VECTOR field: gpuvec.index.sparse
            return self._sparse_search(field, queries, k, metric, read_ts, extra_mask, sp, n)
        device = field in self._device and sp.get("radius") is None
        if device:
            dvalid = self._device_valid(n, read_ts, extra_mask, mask_key)
            if self.is_binary(field):
                base = self._device[field]
                dist, rows = ops.binary_knn(base[:n], queries, k, metric, valid=dvalid)
                return Hits(dist, rows)
            base, norms = self._device[field], self._device[field + "/sq"]
            dist, rows = ops.knn(base, queries, k, metric, valid=dvalid, base_sq_norms=norms)
            return Hits(dist, rows)
        vis = self.vis
        if (
            self.sealed
            and field in self.indexes
            and extra_mask is None
            and vis.max_del == 0
            and read_ts >= vis.max_ins
            and sp.get("radius") is None
        ):
            # the common indexed case: every row visible, no filter, so no mask at all
            params = {k: v for k, v in sp.items() if k in _INDEX_PARAMS}
            dist, rows = self.indexes[field][1].search(
                queries,
                k,
                params,
                base=self._vec[field][:n],  # raw rows for a refine (gathers widen them)
            )
            return Hits(dist, rows)
        valid = vis.mask(read_ts)[:n]
        if extra_mask is not None:
            valid = valid & extra_mask
        if sp.get("radius") is not None:
            return self._range(field, queries, k, metric, valid, sp)
        if field in self.indexes and self.sealed:
            index = self.indexes[field][1]
            params = {k: v for k, v in sp.items() if k in _INDEX_PARAMS}
            all_rows = valid if not valid.all() else None
            # a current read of a filter: the mask is the filter's and the alive set's, so
            # the index may cache what it derives from it under that pair
            current = read_ts >= vis.max_ins and read_ts >= vis.max_del
            key = (mask_key, vis.version) if mask_key is not None and current else None
            dist, rows = index.search(
                queries, k, params, valid=all_rows, base=self._vec[field][:n], valid_key=key
            )
            return Hits(dist, rows)
        if self.is_binary(field):
            base = self._vec[field][:n]
            return Hits(*ops.binary_knn(base, queries, k, metric, valid=valid))
        base, norms = self.compute_vectors(field, n), self._norms(field, n)
        dist, rows = ops.knn(base, queries, k, metric, valid=valid, base_sq_norms=norms)
        return Hits(dist, rows)


def visible_matches(
    segs: list[SegmentData], flt: Filter | None, key: str | None, read_ts: int
) -> list[tuple[SegmentData, np.ndarray]]:
    """Per segment, the rows visible at ``read_ts`` that pass the filter (all visible rows
    for None); segments without such rows are left out."""
    out = []
    for seg in segs:
        n = seg.n
        mask = seg.vis.mask(read_ts)[:n]
        if flt is not None:
            mask = mask & seg.filter_mask(flt, key or "")[:n]
        rows = np.flatnonzero(mask)
        if len(rows):
            out.append((seg, rows))
    return out


def visible_rows_of(
    segs: list[SegmentData], pks: np.ndarray, read_ts: int
) -> list[tuple[SegmentData, np.ndarray]]:
    """Per segment, the rows visible at ``read_ts`` with the given primary keys."""
    out = []
    for seg in segs:
        rows = seg.rows_of(pks)
        if len(rows):
            rows = rows[seg.vis.mask(read_ts)[rows]]
            if len(rows):
                out.append((seg, rows))
    return out
