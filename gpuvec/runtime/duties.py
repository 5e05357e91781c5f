"""The embedded runtime's data-node duties: a thread that drives the shared duty loop
(:class:`gpuvec.coord.maintenance.Maintenance`: index builds and compactions on the Dask
data nodes), the swaps of finished builds and compactions into its query node, and how
each index is built and served (``describe_index``, ``wait_for_index``).

:class:`DataNodeDuties` is composed into :class:`gpuvec.runtime.embedded.Engine` (its
``duties``); it reads the engine's ``collections``, ``query``, ``catalog``, ``indexer``,
``store`` and ``config`` and never changes the engine's own state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpuvec import ops
from gpuvec.coord.maintenance import Maintenance
from gpuvec.coord.planning import index_progress
from gpuvec.datatypes import DataType
from gpuvec.errors import IndexBuildError
from gpuvec.pipelines.common import PROGRESS_TOPIC, build_progress
from gpuvec.query.node import load_segment, load_segments
from gpuvec.records import NO_BUILD, CollectionMeta, CollectionView, SegmentMeta, index_id

if TYPE_CHECKING:
    from gpuvec.runtime.embedded import Engine


class DataNodeDuties:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the duty thread (once the engine's indexer and compactor exist)."""
        e = self.engine
        loop = Maintenance(e.indexer, e.compactor, e.config.compaction_interval_s)
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name="gpuvec-index", daemon=True
        )
        self._thread.start()

    def _run(self, loop: Maintenance) -> None:
        e = self.engine
        while not self._stop.wait(1.0):
            metas = [c.meta for c in list(e.collections.values())]
            loop.run_once(metas, lambda m: e.query.loaded(m.id))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- swaps ---------------------------------------------------------------------------
    def compacted(
        self, meta: CollectionMeta, old: list[SegmentMeta], new: SegmentMeta | None
    ) -> None:
        """A compaction committed: load its segment, apply every delete so far (delta
        logs, then the shards' unsealed ones, under the shard locks so none slips between),
        and swap it for the old segments."""
        e = self.engine
        coll = next((c for c in list(e.collections.values()) if c.meta.id == meta.id), None)
        if coll is None or not e.query.loaded(meta.id):
            return
        seg = None
        if new is not None:
            seg = load_segment(e.store, new.path, new.id, new.partition_id, meta)
            for (sid, field), record in e.catalog.segment_indexes(meta.id).items():
                if sid == new.id:  # built before the switch: served from the first read
                    e.query.attach_to(seg, field, record)
        with coll.locked():
            if seg is not None:
                e.query.apply_deltas(meta, e.catalog, [seg])
                for shard in coll.shards:
                    for pks, ts in shard.pending_deletes():
                        seg.delete(pks, ts)
            e.query.replace(meta.id, [s.id for s in old], seg)

    def publish_import(
        self, meta: CollectionMeta, segs: list[SegmentMeta], commit: Callable[[], bool]
    ) -> bool:
        """Commit a bulk import and serve its segments as one step for readers: the
        segments are loaded first, then ``commit()`` runs and (if it committed) every delete
        so far is applied and the segments are added, all under the collection's shard
        locks, so no read sees a part of the job, nor its ``Completed`` state before its
        rows. Returns whether it committed."""
        e = self.engine
        coll = next((c for c in list(e.collections.values()) if c.meta.id == meta.id), None)
        if coll is None:
            return commit()
        serve = e.query.loaded(meta.id)
        loaded = load_segments(e.store, segs, meta) if serve else []
        with coll.locked():
            if not commit():
                return False
            if loaded:
                e.query.apply_deltas(meta, e.catalog, loaded)
                for seg in loaded:
                    for shard in coll.shards:
                        for pks, ts in shard.pending_deletes():
                            seg.delete(pks, ts)
                e.query.adopt(meta.id, loaded)
        if loaded:
            e.query.attach_indexes(coll.meta, e.catalog)
        return True

    def index_built(self, cid: int, sid: int, field: str, record: dict[str, Any]) -> None:
        """A build was committed: swap it in if it still matches the index definition."""
        e = self.engine
        coll = next((c for c in list(e.collections.values()) if c.meta.id == cid), None)
        if coll is None:
            return
        if any(index_id(d) == record["index_id"] for d in coll.meta.index_params):
            e.query.attach_index(cid, sid, field, record)

    # --- describe / wait -----------------------------------------------------------------
    def index_progress(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        """:func:`gpuvec.coord.planning.index_progress` over the catalog's records."""
        e = self.engine
        cid = coll.meta.id
        return index_progress(e.catalog.segments(cid), e.catalog.segment_indexes(cid),
                              definition, e.config.index_min_rows, e.indexer.failure)  # fmt: skip

    def index_serving(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        """How one index definition is served right now (for ``describe_index``)."""
        e = self.engine
        iid, field = index_id(definition), definition["field_name"]
        segs = e.query.segments(coll.meta.id)
        using = [s.indexes[field][1] for s in segs if s.indexes.get(field, ("",))[0] == iid]
        backends = sorted({str(ix.describe().get("backend", "")) for ix in using})
        notes = sorted({str(n) for ix in using if (n := ix.describe().get("note"))})
        resident = sum(s.on_device for s in segs)
        if resident:  # resident segments are searched by exact brute force on the device
            backends.insert(0, f"{ops.backend_name()} brute force ({resident} resident)")
        return {
            "sealed_segments": len(segs),
            "indexed_segments": len(using),
            "gpu_resident_segments": resident,
            "pending_index_segments": e.indexer.pending(),
            "building_rows": self.building_rows(coll.meta.name),
            "backend": ", ".join(backends) if backends else _exact_backend(coll, field),
            "search_backend": ops.backend_name(),
            **({"build_notes": notes} if notes else {}),
        }

    def building_rows(self, name: str) -> int:
        """Rows the running builds of collection ``name`` have added so far (their
        per-batch progress events on the data nodes' scheduler)."""
        e = self.engine
        progress = build_progress(e.datanodes.events(PROGRESS_TOPIC))
        return sum(progress.get(job["key"], (0, 0))[0] for job in e.indexer.recent()
                   if job["collection"] == name and job["state"] == "Running")  # fmt: skip

    def wait_for_indexes(self, name: str, timeout: float = 60.0) -> bool:
        """Block until every sealed segment of ``name`` that needs an index has one being
        served (tests, benchmarks, ``flush`` callers that want index speed); False on
        timeout. A failed build raises ``IndexBuildError`` with its reason."""
        e = self.engine
        coll = e.get(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e.indexer.schedule(coll.meta)
            if e.indexer.pending() == 0 and self._indexes_served(coll):
                return True
            raise_failed(coll, self.index_progress)
            time.sleep(0.05)
        return False

    def _indexes_served(self, coll: CollectionView) -> bool:
        e = self.engine
        defs = [d for d in coll.meta.index_params if d.get("index_type") not in NO_BUILD]
        for seg in e.query.segments(coll.meta.id):
            if seg.n < e.config.index_min_rows:
                continue
            for d in defs:
                if seg.indexes.get(d["field_name"], ("",))[0] != index_id(d):
                    return False
        return True


def raise_failed(coll: CollectionView, progress: Any) -> dict[str, dict[str, Any]]:
    """Each index's progress (``progress(coll, definition)``), by index name; raise
    ``IndexBuildError`` with the reason when one of them failed to build."""
    out = {}
    for d in coll.meta.index_params:
        p = out[d.get("index_name", d["field_name"])] = progress(coll, d)
        if p["state"] == "Failed":
            raise IndexBuildError(
                f"index {d.get('index_name', d['field_name'])!r} of collection "
                f"{coll.meta.name!r} failed to build: {p['index_state_fail_reason']}"
            )
    return out


def _exact_backend(coll: CollectionView, field: str) -> str:
    """What searches a field no built index serves yet: the exact scan of its kind."""
    if field in coll.schema and coll.schema.field(field).dtype == DataType.SPARSE_FLOAT_VECTOR:
        return "exact sparse scan, CPU (gpuvec.index.sparse)"
    return "brute force (gpuvec.ops)"
