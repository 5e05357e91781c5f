"""The engine's data-node duties, run from its background thread: scheduling index builds
and compactions on the Dask data nodes, swapping finished ones into the query node, and
reporting how each index is served. A mixin of :class:`gpuvec.cluster.embedded.Engine`
(which provides ``collections``, ``query``, ``catalog``, ``indexer``, ``compactor``,
``store``, ``config`` and ``_stop``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gpuvec import ops
from gpuvec.coord.catalog import CollectionMeta, SegmentMeta
from gpuvec.coord.indexing import NO_BUILD, index_id
from gpuvec.errors import IndexBuildError
from gpuvec.query.node import load_segment

if TYPE_CHECKING:
    from gpuvec.cluster.embedded import Collection

log = logging.getLogger(__name__)


class DataNodeDuties:
    collections: dict[str, Any]
    query: Any
    catalog: Any
    indexer: Any
    compactor: Any
    store: Any
    config: Any
    _stop: Any

    def get(self, name: str) -> Any: ...

    def _index(self) -> None:
        """Submit the index builds that every collection's sealed segments need (loaded or
        not, as Milvus: ``create_index`` then ``load`` is the usual order), and the
        compactions the automatic policy asks for (loaded collections)."""
        last_compaction = time.monotonic()
        reported: dict[int, str] = {}  # the last error per collection, logged once
        while not self._stop.wait(1.0):
            compact = time.monotonic() - last_compaction >= self.config.compaction_interval_s
            if compact:
                last_compaction = time.monotonic()
            for coll in list(self.collections.values()):
                try:
                    self.indexer.schedule(coll.meta)
                    if compact and self.query.loaded(coll.meta.id):
                        self.compactor.compact(coll.meta)
                    reported.pop(coll.meta.id, None)
                except Exception as e:  # dropped meanwhile, or the cluster is unreachable
                    why = f"{type(e).__name__}: {e}"
                    if reported.get(coll.meta.id) != why:
                        reported[coll.meta.id] = why
                        log.warning("index/compaction of %s failed: %s", coll.meta.name, why)

    def _compacted(
        self, meta: CollectionMeta, old: list[SegmentMeta], new: SegmentMeta | None
    ) -> None:
        """A compaction committed: load its segment, apply every delete so far (delta
        logs, then the shards' unsealed ones, under the shard locks so none slips between),
        and swap it for the old segments."""
        coll = next((c for c in self.collections.values() if c.meta.id == meta.id), None)
        if coll is None or not self.query.loaded(meta.id):
            return
        seg = None
        if new is not None:
            seg = load_segment(self.store, new.path, new.id, new.partition_id, meta)
        with coll.locked():
            if seg is not None:
                self.query.apply_deltas(meta, self.catalog, [seg])
                for shard in coll.shards:
                    for pks, ts in shard._deletes:
                        seg.delete(pks, ts)
            self.query.replace(meta.id, [s.id for s in old], seg)

    def _index_built(self, cid: int, sid: int, field: str, record: dict[str, Any]) -> None:
        """A build was committed: swap it in if it still matches the index definition."""
        coll = next((c for c in self.collections.values() if c.meta.id == cid), None)
        if coll is None:
            return
        if any(index_id(d) == record["index_id"] for d in coll.meta.index_params):
            self.query.attach_index(cid, sid, field, record)

    def wait_for_indexes(self, name: str, timeout: float = 60.0) -> bool:
        """Block until every sealed segment of ``name`` that needs an index has one being
        served (tests, benchmarks, ``flush`` callers that want index speed); False on
        timeout. A failed build raises ``IndexBuildError`` with its reason."""
        coll = self.get(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.indexer.schedule(coll.meta)
            if self.indexer.pending() == 0 and self._indexes_served(coll):
                return True
            for d in coll.meta.index_params:
                progress = self.index_progress(coll, d)
                if progress["state"] == "Failed":
                    raise IndexBuildError(
                        f"index {d['index_name']!r} of collection {name!r} failed to build: "
                        f"{progress['index_state_fail_reason']}"
                    )
            time.sleep(0.05)
        return False

    def index_progress(self, coll: Collection, definition: dict[str, Any]) -> dict[str, Any]:
        """Milvus's build progress of one index definition, from the catalog: rows of
        committed sealed segments (``total_rows``), those with a committed build
        (``indexed_rows``; segments below ``index_min_rows`` and types without a build
        count as indexed: they are searched exactly by design), the rest pending; ``state``
        is ``Finished`` once nothing is pending, ``Failed`` (with
        ``index_state_fail_reason``) when a pending segment's build failed."""
        iid, field = index_id(definition), definition["field_name"]
        segs = self.catalog.segments(coll.meta.id)
        total = sum(s.rows for s in segs)
        waiting = []
        if definition.get("index_type") not in NO_BUILD:
            built = self.catalog.segment_indexes(coll.meta.id)
            waiting = [
                s
                for s in segs
                if s.rows >= self.config.index_min_rows
                and built.get((s.id, field), {}).get("index_id") != iid
            ]
        pending = sum(s.rows for s in waiting)
        reasons = [r for s in waiting if (r := self.build_failure(s.id, field, iid))]
        state = "Failed" if reasons else "InProgress" if pending else "Finished"
        out = {
            "total_rows": total,
            "indexed_rows": total - pending,
            "pending_index_rows": pending,
            "state": state,
        }
        if reasons:
            out["index_state_fail_reason"] = reasons[0]
        return out

    def build_failure(self, segment_id: int, field: str, iid: str) -> str | None:
        """Why the last build of a segment's index failed (None: it did not)."""
        return self.indexer.failure(segment_id, field, iid)

    def index_serving(self, coll: Collection, definition: dict[str, Any]) -> dict[str, Any]:
        """How one index definition is served right now (for ``describe_index``)."""
        iid, field = index_id(definition), definition["field_name"]
        segs = self.query.segments(coll.meta.id)
        using = [s.indexes[field][1] for s in segs if s.indexes.get(field, ("",))[0] == iid]
        backends = sorted({str(ix.describe().get("backend", "")) for ix in using})
        resident = sum(s.on_device for s in segs)
        if resident:  # resident segments are searched by exact brute force on the device
            backends.insert(0, f"{ops.backend_name()} brute force ({resident} resident)")
        return {
            "sealed_segments": len(segs),
            "indexed_segments": len(using),
            "gpu_resident_segments": resident,
            "pending_index_segments": self.indexer.pending(),
            "backend": ", ".join(backends) if backends else "brute force (gpuvec.ops)",
            "search_backend": ops.backend_name(),
        }

    def _indexes_served(self, coll: Collection) -> bool:
        defs = [d for d in coll.meta.index_params if d.get("index_type") not in NO_BUILD]
        for seg in self.query.segments(coll.meta.id):
            if seg.n < self.config.index_min_rows:
                continue
            for d in defs:
                if seg.indexes.get(d["field_name"], ("",))[0] != index_id(d):
                    return False
        return True
