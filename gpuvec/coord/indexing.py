"""The coordinator's index builds (DESIGN §1): submitting the builds that sealed segments
need to the data nodes as Dask tasks, and committing finished builds.

Which builds are needed is decided by :func:`gpuvec.coord.planning.plan_builds` (a pure
function of the catalog's records); :meth:`IndexBuilder.schedule` reads the catalog, asks
it, and submits each ``gpuvec-build-index-<segment>-<field>-<index id>`` not already in
flight or failed within ``retry_failed_s``. When a build returns, its record is
committed in meta in a guarded transaction (only while the segment is still committed) and
handed to ``on_built`` (the query node swaps the index in). A failed build (after Dask's
retries) — or one that could not even be submitted (no data nodes) — is logged once and
recorded with its reason: ``describe_index`` then reports ``state: "Failed"`` and
``index_state_fail_reason`` (Milvus's names), and the build is tried again only after
``retry_failed_s``. Brute force serves the segment meanwhile, so searches answer throughout.

:meth:`IndexBuilder.recent` lists the last :data:`RECENT_JOBS` builds (running, finished or
failed, with their segment, rows and times) for the dashboard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gpuvec.coord.catalog import Catalog
from gpuvec.coord.planning import build_key, plan_builds
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.datatypes import DataType
from gpuvec.observability.internals import track_index_build
from gpuvec.pipelines.build import build_index_task
from gpuvec.pipelines.common import StoreSpec
from gpuvec.records import NO_BUILD, CollectionMeta, index_id, is_scalar_index

log = logging.getLogger(__name__)

RECENT_JOBS = 64  # builds kept for the dashboard (running ones and the latest ended)


def build_record(definition: dict[str, Any], iid: str, built: dict[str, Any]) -> dict[str, Any]:
    """The catalog's record of a finished build of ``definition`` (``built``: the build
    task's result: path, size, rows, description, seconds)."""
    d = definition
    return {"index_id": iid, "index_name": d.get("index_name", d["field_name"]),
            "index_type": d["index_type"], "metric_type": d["metric_type"],
            "params": dict(d.get("params") or {}), **built}  # fmt: skip


def submit_build(
    runtime: Any, store: StoreSpec, meta: CollectionMeta, segment_path: str, segment_id: int,
    definition: dict[str, Any],
) -> tuple[str, str, Any]:  # fmt: skip
    """Submit the data-node build of ``definition`` for one segment (GPU workers for GPU_*
    types; a scalar index gets its field's schema, as it builds from the column); returns
    ``(build key, index id, future)``. The builder, imports and compactions all use it."""
    d = definition
    iid, field = index_id(d), d["field_name"]
    key = build_key(segment_id, field, iid)
    params = dict(d.get("params") or {})
    fschema = meta.collection_schema().field(field)
    if is_scalar_index(d) or fschema.dtype == DataType.SPARSE_FLOAT_VECTOR:
        params["field_schema"] = fschema.to_dict()  # built from the column
    fut = runtime.submit(
        build_index_task, store, segment_path, field, iid, d["index_type"], d["metric_type"],
        params, key=key, gpu=d["index_type"].startswith("GPU_"),
    )  # fmt: skip
    return key, iid, fut


class IndexBuilder:
    def __init__(
        self,
        catalog: Catalog,
        runtime: DataNodeRuntime,
        store: StoreSpec,
        on_built: Callable[[int, int, str, dict[str, Any]], None],
        min_rows: int = 1024,
        retry_failed_s: float = 300.0,
    ) -> None:
        self.catalog, self.runtime, self.store = catalog, runtime, store
        self.on_built, self.min_rows = on_built, min_rows
        self.retry_failed_s = retry_failed_s
        self._lock = threading.Lock()
        self._inflight: dict[str, Any] = {}
        self.failed: dict[str, tuple[str, float]] = {}  # build key → (reason, when)
        self._jobs: deque[dict[str, Any]] = deque(maxlen=RECENT_JOBS)
        self._job: dict[str, dict[str, Any]] = {}  # running build key → its entry in _jobs

    key = staticmethod(build_key)

    def failure(self, key: str) -> str | None:
        """Why the last build ``key`` failed (None: it did not, or it was rebuilt since)."""
        got = self.failed.get(key)
        return None if got is None else got[0]

    def _held_back(self, key: str) -> bool:
        """In flight, or failed less than ``retry_failed_s`` ago (call with ``_lock``)."""
        failed = self.failed.get(key)
        recent = failed is not None and time.monotonic() - failed[1] < self.retry_failed_s
        return recent or key in self._inflight

    def failures(self) -> dict[str, str]:
        """Build key → why its last build failed, for every build still failed (the
        active coordinator's report carries them to the proxies' ``describe_index``)."""
        with self._lock:
            return {key: reason for key, (reason, _) in self.failed.items()}

    def _fail(self, key: str, reason: str) -> None:
        log.warning("index build %s failed: %s", key, reason)
        self.failed[key] = (reason, time.monotonic())

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def recent(self) -> list[dict[str, Any]]:
        """The latest builds, oldest first: ``key``, ``collection``, ``segment``,
        ``field``, ``index_type``, ``rows``, ``state`` (Running / Finished / Failed),
        ``started`` and ``ended`` (epoch seconds; ended None while running), ``error``."""
        with self._lock:
            return [dict(job) for job in self._jobs]

    def _record(self, key: str, meta: CollectionMeta, sm: Any, d: dict[str, Any]) -> None:
        job = {"key": key, "collection": meta.name, "segment": sm.id, "field": d["field_name"],
               "index_type": d["index_type"], "rows": sm.rows, "state": "Running",
               "started": time.time(), "ended": None, "error": None}  # fmt: skip
        self._jobs.append(job)
        self._job[key] = job

    def track(self, key: str, meta: CollectionMeta, sm: Any, d: dict[str, Any]) -> None:
        """List a build someone else submitted (a compaction's, before its switch) with
        this builder's builds, for the dashboard; :meth:`tracked_ended` ends it."""
        with self._lock:
            self._record(key, meta, sm, d)

    def tracked_ended(self, key: str, error: str | None) -> None:
        with self._lock:
            self._ended(key, error)

    def _ended(self, key: str, error: str | None) -> None:
        """Mark the running build ``key`` ended (call with ``_lock`` held)."""
        job = self._job.pop(key, None)
        if job is not None:
            job.update(state="Failed" if error else "Finished", ended=time.time(), error=error)

    def schedule(self, meta: CollectionMeta) -> int:
        """Submit the builds ``meta``'s committed segments still need; return how many."""
        if not any(d.get("index_type") not in NO_BUILD for d in meta.index_params):
            return 0
        built = self.catalog.segment_indexes(meta.id)
        segments = self.catalog.segments(meta.id)
        with self._lock:
            actions = plan_builds(meta.index_params, segments, built, self.min_rows,
                                  self._held_back)  # fmt: skip
        submitted = 0
        for a in actions:
            d = a.definition
            with self._lock:
                if self._held_back(a.key):  # submitted by a concurrent pass meanwhile
                    continue
                try:
                    _, _, fut = submit_build(self.runtime, self.store, meta, a.segment.path,
                                             a.segment.id, d)  # fmt: skip
                except Exception as e:  # no data nodes: the build cannot even start
                    self._fail(a.key, f"could not submit to the data nodes: {e}")
                    continue
                self._inflight[a.key] = fut
                self._record(a.key, meta, a.segment, d)
            submitted += 1
            track_index_build(fut, d["index_type"])
            fut.add_done_callback(
                lambda f, a=a, cid=meta.id: self._done(f, a.key, cid, a.segment.id,
                                                       a.definition, a.index_id)
            )  # fmt: skip
        return submitted

    def _done(self, fut: Any, key: str, cid: int, sid: int, d: dict, iid: str) -> None:
        error = None
        try:
            record = build_record(d, iid, fut.result())
            if self.catalog.commit_index(cid, sid, d["field_name"], record):
                self.on_built(cid, sid, d["field_name"], record)
            self.failed.pop(key, None)
        except Exception as e:  # the build failed after retries: brute force keeps serving
            error = f"{type(e).__name__}: {e}"
            self._fail(key, error)
        finally:
            with self._lock:
                self._inflight.pop(key, None)
                self._ended(key, error)
