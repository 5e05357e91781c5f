"""The coordinator's index builds (DESIGN §1): which sealed segments need an index file,
submitting their builds to the data nodes as Dask tasks, and committing finished builds.

For every index definition of a collection whose type needs a build (everything but FLAT
and GPU_BRUTE_FORCE) and every committed sealed segment of at least ``min_rows`` rows
without a current build, :meth:`IndexBuilder.schedule` submits
``gpuvec-build-index-<segment>-<field>-<index id>``. When a build returns, its record is
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

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gpuvec.coord.catalog import Catalog, CollectionMeta
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.datanode.tasks import StoreSpec, build_index_task
from gpuvec.observability.internals import track_index_build

log = logging.getLogger(__name__)

NO_BUILD = ("FLAT", "GPU_BRUTE_FORCE")
RECENT_JOBS = 64  # builds kept for the dashboard (running ones and the latest ended)


def index_id(definition: dict[str, Any]) -> str:
    """A stable id of an index definition: another type, metric or params → another id."""
    keep = {k: definition.get(k) for k in ("field_name", "index_type", "metric_type", "params")}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


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

    @staticmethod
    def key(segment_id: int, field: str, iid: str) -> str:
        """The Dask task key of one segment's build of one index definition."""
        return f"gpuvec-build-index-{segment_id}-{field}-{iid}"

    def failure(self, segment_id: int, field: str, iid: str) -> str | None:
        """Why the last build of this segment and definition failed (None: it did not)."""
        got = self.failed.get(self.key(segment_id, field, iid))
        return None if got is None else got[0]

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

    def _ended(self, key: str, error: str | None) -> None:
        """Mark the running build ``key`` ended (call with ``_lock`` held)."""
        job = self._job.pop(key, None)
        if job is not None:
            job.update(state="Failed" if error else "Finished", ended=time.time(), error=error)

    def schedule(self, meta: CollectionMeta) -> int:
        """Submit the builds ``meta``'s committed segments still need; return how many."""
        defs = [d for d in meta.index_params if d.get("index_type") not in NO_BUILD]
        if not defs:
            return 0
        built = self.catalog.segment_indexes(meta.id)
        submitted = 0
        for sm in self.catalog.segments(meta.id):
            if sm.rows < self.min_rows:
                continue
            for d in defs:
                iid, field = index_id(d), d["field_name"]
                if built.get((sm.id, field), {}).get("index_id") == iid:
                    continue
                key = self.key(sm.id, field, iid)
                failed = self.failed.get(key)
                if failed is not None and time.monotonic() - failed[1] < self.retry_failed_s:
                    continue
                with self._lock:
                    if key in self._inflight:
                        continue
                    try:
                        fut = self.runtime.submit(
                            build_index_task,
                            self.store, sm.path, field, iid,
                            d["index_type"], d["metric_type"], dict(d.get("params") or {}),
                            key=key, gpu=d["index_type"].startswith("GPU_"),
                        )  # fmt: skip
                    except Exception as e:  # no data nodes: the build cannot even start
                        self._fail(key, f"could not submit to the data nodes: {e}")
                        continue
                    self._inflight[key] = fut
                    self._record(key, meta, sm, d)
                submitted += 1
                track_index_build(fut, d["index_type"])
                fut.add_done_callback(
                    lambda f, key=key, cid=meta.id, sid=sm.id, d=d, iid=iid: self._done(
                        f, key, cid, sid, d, iid
                    )
                )
        return submitted

    def _done(self, fut: Any, key: str, cid: int, sid: int, d: dict, iid: str) -> None:
        error = None
        try:
            out = fut.result()
            record = {
                "index_id": iid,
                "index_name": d.get("index_name", d["field_name"]),
                "index_type": d["index_type"],
                "metric_type": d["metric_type"],
                "params": dict(d.get("params") or {}),
                **out,
            }
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
