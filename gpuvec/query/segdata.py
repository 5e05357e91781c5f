"""In-memory segment data shared by growing segments (streaming node) and loaded sealed
segments (query node): primary keys, vectors, scalar rows and MVCC visibility.

A segment is one partition's rows of one shard. Rows are addressed by their offset in the
segment. ``search`` runs brute force (``gpuvec.ops.knn``) over the visible rows;
``take`` fetches output fields by offset; ``delete`` applies a delete batch by primary key.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gpuvec import ops
from gpuvec.query.visibility import Visibility

if TYPE_CHECKING:
    from gpuvec.expr import Filter

_MASK_CACHE = 16  # filter masks kept per sealed segment
_INDEX_PARAMS = frozenset(
    ("nprobe", "ef", "level", "itopk_size", "search_width", "min_iterations",
     "max_iterations", "team_size", "refine_ratio", "max_empty_result_buckets")
)  # fmt: skip


@dataclass
class Hits:
    """Per-query best rows of one segment: distances and row offsets ([nq, k], -1 = none)."""

    distances: np.ndarray
    rows: np.ndarray


class SegmentData:
    """Columnar rows with capacity doubling; append-only except for MVCC deletes."""

    def __init__(
        self,
        segment_id: int,
        partition_id: int,
        vector_dims: dict[str, int],
        pk_is_int: bool,
        capacity: int = 1024,
    ) -> None:
        self.segment_id = segment_id
        self.partition_id = partition_id
        self.dims = vector_dims
        self.pk_is_int = pk_is_int
        self.vis = Visibility(capacity=capacity)
        self._pk = np.empty(capacity, np.int64 if pk_is_int else object)
        self._vec = {f: np.empty((capacity, d), np.float32) for f, d in vector_dims.items()}
        self._tables: list[pa.Table] = []
        self._table: pa.Table | None = None
        self._device: dict[str, object] = {}
        self._sq_norms: dict[str, np.ndarray] = {}
        self.sealed = False  # set by the query node: rows never change after that
        self._json_cache: object | None = None
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self.indexes: dict[str, tuple[str, Any]] = {}  # field → (index id, VectorIndex)
        self._device_masks: OrderedDict[str, Any] = OrderedDict()  # filter key → device mask
        self._alive_dirty = True

    @property
    def n(self) -> int:
        return self.vis.n

    @property
    def pks(self) -> np.ndarray:
        return self._pk[: self.n]

    def vectors(self, field: str) -> np.ndarray:
        return self._vec[field][: self.n]

    def nbytes(self) -> int:
        return self.n * (8 + 8 + sum(4 * d for d in self.dims.values())) + sum(
            t.nbytes for t in self._tables
        )

    def append(
        self, pks: np.ndarray, ins_ts: np.ndarray, vectors: dict[str, np.ndarray], rows: pa.Table
    ) -> None:
        """Append a batch; ``rows`` holds the scalar columns returned as output fields."""
        n, m = self.n, len(pks)
        need = n + m
        if need > len(self._pk):
            cap = max(need, 2 * len(self._pk))
            pk = np.empty(cap, self._pk.dtype)
            pk[:n] = self._pk[:n]
            self._pk = pk
            for f, buf in self._vec.items():
                grown = np.empty((cap, buf.shape[1]), np.float32)
                grown[:n] = buf[:n]
                self._vec[f] = grown
        self._pk[n:need] = pks
        for f, v in vectors.items():
            self._vec[f][n:need] = v
        self._tables.append(rows)
        self._table = None
        self._device.clear()
        for f, norms in list(self._sq_norms.items()):  # extend, never recompute old rows
            self._sq_norms[f] = np.concatenate([norms[:n], ops.sq_norms(vectors[f])])
        self.vis.append(np.asarray(ins_ts, np.uint64))

    def rows_of(self, pks: np.ndarray) -> np.ndarray:
        """Offsets of all rows whose primary key is in ``pks``."""
        if self.n == 0 or len(pks) == 0:
            return np.empty(0, np.int64)
        return np.flatnonzero(np.isin(self.pks, pks))

    def delete(self, pks: np.ndarray, ts: int) -> int:
        hidden = self.vis.delete_rows(self.rows_of(pks), ts)
        if hidden:
            self._alive_dirty = True  # the device copy of the alive bitmap is stale
        return hidden

    def table(self) -> pa.Table:
        """The scalar rows as one table of single-chunk columns (a ``take`` from a chunked
        column would concatenate all its chunks on every call)."""
        if self._table is None:
            t = pa.concat_tables(self._tables) if self._tables else pa.table({})
            self._table = t.combine_chunks()
            self._tables = [self._table]
        return self._table

    def take(self, rows: np.ndarray, fields: list[str]) -> pa.Table:
        """Scalar columns ``fields`` of the rows at ``rows`` (offsets), in that order."""
        if not fields:
            return pa.table({"_": pa.nulls(len(rows))})
        return self.table().select(fields).take(pa.array(rows, pa.int64()))

    def filter_mask(self, flt: Filter, key: str) -> np.ndarray:
        """Rows matching ``flt`` (bool [n]), evaluated vectorised over the scalar columns.
        A sealed segment keeps the masks of its last few filters (``key`` names one)."""
        if self.sealed and key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        if self._json_cache is None:
            from gpuvec.expr import JsonCache

            self._json_cache = JsonCache()
        n = self.n
        table = self.table()
        if table.num_rows != n:  # an append raced us: evaluate the snapshot
            table = table.slice(0, n)
        mask = np.asarray(flt.evaluate(table, self._json_cache), bool)
        if self.sealed:
            self._masks[key] = mask
            while len(self._masks) > _MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

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
        query inside the range, through the segment's index when it has one."""
        from gpuvec.index.search import exact_range
        from gpuvec.index.validate import check_range_params

        n = self.n
        radius, rf = check_range_params(metric, sp["radius"], sp.get("range_filter"))
        mask = None if valid.all() else valid
        base = self._vec[field][:n]
        if field in self.indexes and self.sealed:
            params = {k2: v for k2, v in sp.items() if k2 in _INDEX_PARAMS}
            index = self.indexes[field][1]
            dist, rows = index.range_search(
                queries, radius, rf, limit=k, search_params=params, valid=mask, base=base
            )
        else:
            dist, rows = exact_range(base, queries, metric, radius, rf, k, mask)
        return Hits(dist, rows)

    def pin_device(self) -> bool:
        """Copy vectors and their norms to the GPU (sealed segments only: growing ones
        change with every append). Returns whether the segment is now resident."""
        if not ops.is_gpu():
            return False
        for f in self.dims:
            base = self.vectors(f)
            self._device[f] = ops.to_device(base)
            self._device[f + "/sq"] = ops.to_device(self._norms(f))
        return True

    def device_bytes(self) -> int:
        """Device memory ``pin_device`` takes: the vectors and their squared norms."""
        return sum(self.n * (4 * d + 4) for d in self.dims.values())

    def unpin_device(self) -> None:
        self._device.clear()
        self._device_masks.clear()

    def _device_valid(
        self, read_ts: int, extra_mask: np.ndarray | None, key: str | None
    ) -> Any | None:
        """The rows a device search may return, as a device bitmap (None: every row).
        The alive bitmap and the sealed segment's filter masks stay on the device and are
        re-sent only after deletes (DESIGN §9), not on every search."""
        n, vis = self.n, self.vis
        current = read_ts >= vis.max_ins and read_ts >= vis.max_del
        if current and vis.max_del == 0:
            alive = None  # nothing was ever deleted here: no mask at all
        elif current:
            if self._alive_dirty or "__alive" not in self._device:
                self._device["__alive"] = ops.to_device(np.array(vis.mask(read_ts)[:n]))
                self._alive_dirty = False
            alive = self._device["__alive"]
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

    def _norms(self, field: str) -> np.ndarray:
        if field not in self._sq_norms:
            self._sq_norms[field] = ops.sq_norms(self.vectors(field))
        return self._sq_norms[field]

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
        the host. Safe against a concurrent append: it works on a snapshot of ``n`` rows."""
        n = self.n
        sp = search_params or {}
        device = field in self._device and sp.get("radius") is None
        if device:
            dvalid = self._device_valid(read_ts, extra_mask, mask_key)
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
            dist, rows = self.indexes[field][1].search(queries, k, params)
            return Hits(dist, rows)
        valid = vis.mask(read_ts)[:n]
        if extra_mask is not None:
            valid = valid & extra_mask[:n]
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
        else:
            base, norms = self._vec[field][:n], self._norms(field)
            if len(norms) < n:  # an append raced us: norms of the snapshot
                norms = ops.sq_norms(base)
            norms = norms[:n]
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
