"""The query node: sealed segments of loaded collections, resident on the GPU when one is
usable and within the memory budget (:mod:`gpuvec.query.residency`; CPU memory otherwise),
with their deletes applied.

Segments arrive two ways: adopted in memory from a streaming node that just sealed them,
or loaded from their Zarr objects (``load``) with every delta log of the collection
applied. Both give the same visibility: a delete applies to rows of its key inserted
before it, whatever segment they are in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
from zarr.abc.store import Store

from gpuvec import ops
from gpuvec import vectors as vk
from gpuvec.coord.catalog import Catalog
from gpuvec.query.residency import DeviceResidency
from gpuvec.query.segdata import SegmentData
from gpuvec.records import CollectionMeta
from gpuvec.schema import DataType
from gpuvec.storage.objects import handoff
from gpuvec.storage.objects.deltas import read_delta
from gpuvec.storage.objects.segment import SegmentReader
from gpuvec.storage.objects.stores import get_bytes


def load_segment(
    store: Store, path: str, segment_id: int, partition_id: int, meta: CollectionMeta
) -> SegmentData:
    """Read a sealed segment from Zarr into memory — or take the columns its writer left
    in this process (:mod:`gpuvec.storage.objects.handoff`: an embedded import)."""
    schema = meta.collection_schema()
    pk = schema.primary_field
    assert pk is not None
    dims, dtypes = vk.layout(schema)
    pk_is_int = pk.dtype == DataType.INT64
    left = handoff.take(store, path)
    if left is not None and set(left.vectors) == set(dims):
        pks, ts, vectors, scalars = left.pk, left.ts, left.vectors, left.scalars
    else:
        r = SegmentReader(store, path)
        pks, ts, scalars = r.pk(), r.ts(), r.table()
        vectors = {f: r.vectors(f) for f in dims}
    seg = SegmentData(
        segment_id, partition_id, dims, pk_is_int, capacity=len(pks), vector_dtypes=dtypes
    )
    pk_np = pks if pk_is_int else np.array(pks.to_pylist(), object)
    pk_col = pa.array(pks) if pk_is_int else pks
    if scalars.num_columns == 0:  # only pk + vectors: a column-less table has 0 rows
        rows = pa.table({pk.name: pk_col})
    else:
        rows = scalars.add_column(0, pk.name, pk_col)
    seg.append(pk_np, ts, vectors, rows, take=True)
    return seg


def load_segments(store: Store, segs: Sequence[Any], meta: CollectionMeta) -> list[SegmentData]:
    """Load sealed segments (``SegmentMeta``-like: path, id, partition_id) in parallel
    threads — their reads and copies release the GIL — in the order given."""
    if len(segs) <= 1:
        return [load_segment(store, s.path, s.id, s.partition_id, meta) for s in segs]
    workers = min(len(segs), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(workers, thread_name_prefix="gpuvec-load") as pool:
        return list(pool.map(
            lambda s: load_segment(store, s.path, s.id, s.partition_id, meta), segs))  # fmt: skip


class QueryNode:
    def __init__(self, store: Store, residency: DeviceResidency | None = None) -> None:
        self.store = store
        self.residency = residency or DeviceResidency()
        self.lock = threading.RLock()
        self._segments: dict[int, dict[int, SegmentData]] = {}

    def loaded(self, collection_id: int) -> bool:
        return collection_id in self._segments

    def load(self, meta: CollectionMeta, catalog: Catalog) -> None:
        """Load every committed sealed segment of a collection and apply its delta logs."""
        metas = catalog.segments(meta.id)
        segs = {sm.id: seg for sm, seg in zip(metas, load_segments(self.store, metas, meta),
                                               strict=True)}  # fmt: skip
        self.apply_deltas(meta, catalog, list(segs.values()))
        with self.lock:
            for old in self._segments.get(meta.id, {}).values():
                self.residency.drop(old)
            for seg in segs.values():
                seg.sealed = True
                self.residency.admit(seg)
            self._segments[meta.id] = segs

    def apply_deltas(self, meta: CollectionMeta, catalog: Catalog, segs: list[SegmentData]) -> None:
        """Apply every delta log of the collection to ``segs``."""
        pk_is_int = meta.collection_schema().primary_field.dtype == DataType.INT64  # type: ignore[union-attr]
        for path in catalog.delta_logs(meta.id):
            pks, tss = read_delta(self.store, path, pk_is_int)
            for ts in np.unique(tss):
                sel = pks[tss == ts]
                for seg in segs:
                    seg.delete(sel, int(ts))

    def replace(self, collection_id: int, old_ids: list[int], new: SegmentData | None) -> None:
        """Swap compacted segments for their replacement in one step (callers hold the
        collection's shard locks, so no delete slips between the two)."""
        with self.lock:
            held = self._segments.get(collection_id)
            if held is None:
                return
            for sid in old_ids:
                seg = held.pop(sid, None)
                if seg is not None:
                    self.residency.drop(seg)
            if new is not None:
                new.sealed = True
                self.residency.admit(new)
                held[new.segment_id] = new

    def open(self, collection_id: int) -> None:
        """Start holding a collection with no segments yet (cluster query nodes load
        their assigned segments one by one)."""
        with self.lock:
            self._segments.setdefault(collection_id, {})

    def adopt(self, collection_id: int, segs: list[SegmentData]) -> None:
        """Take over segments a streaming node just sealed (only if the collection is loaded)."""
        with self.lock:
            held = self._segments.get(collection_id)
            if held is None:
                return
            for seg in segs:
                seg.sealed = True
                self.residency.admit(seg)
                held[seg.segment_id] = seg

    def attach_index(
        self, collection_id: int, segment_id: int, field: str, record: dict[str, Any]
    ) -> bool:
        """Load a built index file and swap it into the segment (one dict assignment:
        a search in flight keeps what it started with). False if the segment is not held."""
        with self.lock:
            seg = self._segments.get(collection_id, {}).get(segment_id)
        if seg is None:
            return False
        self.attach_to(seg, field, record)
        return True

    def attach_to(self, seg: SegmentData, field: str, record: dict[str, Any]) -> None:
        """Load a built index file into ``seg`` (held or not yet)."""
        from gpuvec.index import load_index

        # scalar indexes: none; FLAT / BIN_FLAT borrow the rows as searches compute them
        # (converted only for those: the other types hold their own vectors)
        base = (lambda: seg.compute_vectors(field, seg.n)) if field in seg.dims else None
        index = load_index(get_bytes(self.store, record["path"]), base=base)
        seg.indexes[field] = (record["index_id"], index)
        if base is not None and not index.describe().get("borrows_base", False):
            seg.drop_converted(field)  # an earlier exact scan's float32 copy is not needed

    def attach_indexes(self, meta: CollectionMeta, catalog: Catalog) -> int:
        """Attach every committed index build that matches a current index definition."""
        from gpuvec.records import index_id

        current = {(d["field_name"], index_id(d)) for d in meta.index_params}
        done = 0
        for (sid, field), rec in catalog.segment_indexes(meta.id).items():
            if (field, rec.get("index_id")) in current:
                seg = self._segments.get(meta.id, {}).get(sid)
                if seg is not None and seg.indexes.get(field, ("",))[0] == rec["index_id"]:
                    continue
                done += self.attach_index(meta.id, sid, field, rec)
        return done

    def release(self, collection_id: int) -> None:
        with self.lock:
            for seg in self._segments.pop(collection_id, {}).values():
                self.residency.drop(seg)

    def delete(self, collection_id: int, pks: np.ndarray, ts: int) -> None:
        with self.lock:
            for seg in self._segments.get(collection_id, {}).values():
                seg.delete(pks, ts)

    def segments(
        self, collection_id: int, partition_ids: set[int] | None = None
    ) -> list[SegmentData]:
        with self.lock:
            segs = list(self._segments.get(collection_id, {}).values())
        if partition_ids is not None:
            segs = [s for s in segs if s.partition_id in partition_ids]
        for seg in segs:
            self.residency.touch(seg)
        return segs

    def held(self) -> dict[int, list[SegmentData]]:
        """Every held segment by collection id, without touching residency (metrics)."""
        with self.lock:
            return {cid: list(segs.values()) for cid, segs in self._segments.items()}

    def deleted_fraction(self, collection_id: int, segment_id: int) -> float:
        """Share of a held segment's rows that are deleted (0 when not held)."""
        seg = self._segments.get(collection_id, {}).get(segment_id)
        if seg is None or seg.n == 0:
            return 0.0
        return 1.0 - seg.vis.live_count() / seg.n

    def stats(self, collection_id: int) -> dict[str, int]:
        with self.lock:
            segs = list(self._segments.get(collection_id, {}).values())
        return {
            "sealed_segments": len(segs),
            "sealed_rows": sum(s.n for s in segs),
            "gpu_resident": sum(s.on_device for s in segs),
        }

    @staticmethod
    def backend() -> str:
        return ops.backend_name()
