"""The coordinator's compactions (DESIGN §4): running the rewrites as Dask data-node tasks,
committing the switch and collecting the garbage.

Which segments to rewrite is :func:`gpuvec.coord.planning.plan_compactions` (pure; its
docstring states the policy: merge small segments of a partition and channel, rewrite
segments with many deletes; ``compact()`` (manual) rewrites more).

A compaction drops rows deleted at or before its *horizon* (now − ``compaction_retention_s``)
and keeps later-deleted rows, which the delta logs keep hiding: a read at any timestamp
after the horizon sees the same rows before and after. The new segment's indexes are
built (data-node tasks) *before* the switch, so the old segments and their indexes serve
until the new segment can be swapped in already indexed. The switch (old segments and
their index records out, the new segment and its index records in) is one guarded meta
transaction that only commits while every old segment is still committed; then the query
node swaps segments (attaching the new indexes first) and the old objects are deleted. A
build that failed is left to the index builder, as for any segment.

Each job's entry in :attr:`Compactor.jobs` also records the collection's name, the rows it
rewrites and its start and end times (epoch seconds); :meth:`Compactor.recent` lists the
latest jobs for the dashboard.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog
from gpuvec.coord.indexing import build_record, submit_build
from gpuvec.coord.planning import plan_compactions
from gpuvec.coord.tso import compose, now_ts, physical_ms
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.observability.internals import track_compaction
from gpuvec.pipelines.common import StoreSpec
from gpuvec.pipelines.compact import compact_task
from gpuvec.records import NO_BUILD, CollectionMeta, SegmentMeta
from gpuvec.schema import DataType
from gpuvec.storage.objects.paths import segment_path, segment_root
from gpuvec.storage.objects.stores import delete_prefix

log = logging.getLogger(__name__)

Swap = Callable[[CollectionMeta, list[SegmentMeta], "SegmentMeta | None"], None]


class Compactor:
    def __init__(
        self,
        catalog: Catalog,
        runtime: DataNodeRuntime,
        store_spec: StoreSpec,
        store: Any,
        config: Config,
        deleted_fraction: Callable[[int, int], float],
        on_compacted: Swap,
        builds: Any = None,
    ) -> None:
        """``builds``: the :class:`~gpuvec.coord.indexing.IndexBuilder` whose build list
        (the dashboard's) also shows the builds a compaction runs before its switch."""
        self.builds = builds
        self.catalog, self.runtime, self.spec, self.store = catalog, runtime, store_spec, store
        self.config, self.deleted_fraction, self.on_compacted = (
            config,
            deleted_fraction,
            on_compacted,
        )
        self._lock = threading.Lock()
        self._ids = itertools.count(int(now_ts()))
        self.jobs: dict[int, dict[str, Any]] = {}  # job id → {"state", "collection", "plans"}
        self._busy: set[int] = set()  # collections with a running job

    # --- planning ------------------------------------------------------------------------
    def plan(self, meta: CollectionMeta, manual: bool = False) -> list[list[SegmentMeta]]:
        """The rewrites a job for ``meta`` would run now (:func:`plan_compactions` over the
        catalog's segments and the query nodes' deleted fractions)."""
        return plan_compactions(
            self.catalog.segments(meta.id),
            lambda s: self.deleted_fraction(meta.id, s.id),
            self.config.compaction_small_rows,
            self.config.compaction_deleted_ratio,
            manual,
        )

    # --- running -------------------------------------------------------------------------
    def compact(self, meta: CollectionMeta, manual: bool = False) -> int | None:
        """Start a compaction job for ``meta`` (None when nothing to do or one is running);
        returns its id for :meth:`state`."""
        with self._lock:
            if meta.id in self._busy:
                return None
            plans = self.plan(meta, manual)
            if not plans:
                if not manual:
                    return None
                job = next(self._ids)
                now = time.time()
                self.jobs[job] = {"state": "Completed", "collection": meta.id, "plans": 0,
                                  "name": meta.name, "rows": 0, "done": 0, "failed": 0,
                                  "started": now, "ended": now}  # fmt: skip
                return job
            job = next(self._ids)
            self._busy.add(meta.id)
            self.jobs[job] = {"state": "Executing", "collection": meta.id,
                              "plans": len(plans), "done": 0, "failed": 0, "merges": [],
                              "name": meta.name, "rows": sum(s.rows for p in plans for s in p),
                              "started": time.time(), "ended": None}  # fmt: skip
        pk = meta.collection_schema().primary_field
        assert pk is not None
        retention_ms = int(self.config.compaction_retention_s * 1000)
        horizon = compose(max(0, physical_ms(now_ts()) - retention_ms))
        deltas = self.catalog.delta_logs(meta.id)
        for old in plans:
            new_id = self.catalog.allocate_ids()
            with self._lock:
                self.jobs[job]["merges"].append(([int(s.id) for s in old], int(new_id)))
            new_path = segment_path(meta.id, new_id)
            try:
                fut = self.runtime.submit(
                    compact_task,
                    self.spec, [s.path for s in old], deltas, horizon, new_path, pk.name,
                    pk.dtype == DataType.INT64, self.config.segment_chunk_rows,
                    key=f"gpuvec-compact-{meta.id}-{new_id}",
                )  # fmt: skip
            except Exception as e:  # no data nodes: this part of the job fails
                log.warning("compaction of %s could not start: %s", meta.name, e)
                self._finish(job, meta, ok=False)
                continue
            track_compaction(fut)
            fut.add_done_callback(
                lambda f, old=old, new_id=new_id: self._done(f, job, meta, old, new_id)
            )
        return job

    def _done(
        self, fut: Any, job: int, meta: CollectionMeta, old: list[SegmentMeta], new_id: int
    ) -> None:
        ok = False
        try:
            out = fut.result()
            new = None
            if out["path"] is not None:
                first = old[0]
                new = SegmentMeta(new_id, meta.id, first.partition_id, first.channel, out["path"],
                                  out["rows"], out["ts_min"], out["ts_max"],
                                  max(s.checkpoint for s in old))  # fmt: skip
            built = self._build(meta, new) if new is not None else []
            if self.catalog.commit_compaction(meta.id, old, new, built):
                self.on_compacted(meta, old, new)
                for s in old:  # garbage: nothing points at them any more
                    delete_prefix(self.store, segment_root(s.path))
                ok = True
            elif new is not None:
                delete_prefix(self.store, segment_root(new.path))  # lost the race: never registered
        except Exception as e:
            log.warning("compaction %s of collection %s failed: %s", new_id, meta.name, e)
        self._finish(job, meta, ok)

    def _build(self, meta: CollectionMeta, new: SegmentMeta) -> list[tuple[str, dict[str, Any]]]:
        """The new segment's indexes, built before the switch (so the old segments' indexes
        serve until the new one is swapped in with its own): ``(field, record)`` of each
        build that succeeded; a failed one is left to the index builder, as before."""
        if new.rows < self.config.index_min_rows:
            return []
        defs = [d for d in meta.index_params if d.get("index_type") not in NO_BUILD]
        futs = []
        for d in defs:
            try:
                key, iid, fut = submit_build(self.runtime, self.spec, meta, new.path, new.id, d)
                futs.append((d, iid, key, fut))
            except Exception as e:  # no data nodes: the index builder tries later
                log.warning("compaction: index build of segment %s not started: %s", new.id, e)
                continue
            if self.builds is not None:
                self.builds.track(key, meta, new, d)
        out = []
        for d, iid, key, fut in futs:
            try:
                built = fut.result()
            except Exception as e:
                log.warning("compaction: index build of segment %s failed (%s); the index "
                            "builder retries it", new.id, e)  # fmt: skip
                if self.builds is not None:
                    self.builds.tracked_ended(key, f"{type(e).__name__}: {e}")
                continue
            if self.builds is not None:
                self.builds.tracked_ended(key, None)
            out.append((d["field_name"], build_record(d, iid, built)))
        return out

    def _finish(self, job: int, meta: CollectionMeta, ok: bool) -> None:
        with self._lock:
            j = self.jobs[job]
            j["done" if ok else "failed"] += 1
            if j["done"] + j["failed"] == j["plans"]:
                j["state"] = "Completed" if not j["failed"] else "Failed"
                j["ended"] = time.time()
                self._busy.discard(meta.id)

    def recent(self, limit: int = 32) -> list[dict[str, Any]]:
        """The latest ``limit`` jobs, oldest first, each with its ``job`` id."""
        with self._lock:
            ids = sorted(self.jobs)[-limit:]
            return [{"job": i, **self.jobs[i]} for i in ids]

    def merges(self, job: int) -> list[tuple[list[int], int]]:
        """The job's plans: (source segment ids, target segment id) each (none for an
        unknown job or one that had nothing to do)."""
        with self._lock:
            j = self.jobs.get(job)
            return [] if j is None else [(list(a), int(b)) for a, b in j.get("merges", [])]

    def state(self, job: int) -> str:
        """``Completed`` / ``Executing`` / ``Failed`` (``UndefiedState`` for unknown ids,
        as pymilvus names it)."""
        j = self.jobs.get(job)
        return "UndefiedState" if j is None else str(j["state"])
