"""The coordinator's bulk-import jobs (Milvus's ``Import``): durable job records, the run
of each job's Dask graph, and the one transaction that makes a job's rows visible.

A job (``imports/jobs/<id>`` in meta, :mod:`gpuvec.storage.meta.keys`) goes
``Pending → Importing → Building → Completed`` or ``Failed``:

1. **Submit** checks the files against the schema before anything is written
   (:func:`gpuvec.pipelines.sources.plan_import`: missing files, unknown columns, wrong
   dimensions or types raise at once), then records the job with everything a re-run needs
   to be identical: its timestamp, the segment ids reserved for every (chunk, shard), and
   for ``auto_id`` collections the id range reserved for its rows. An ``idempotency_key``
   maps to its job (``imports/keys/<key>``): submitting the same key again returns that
   job instead of importing twice (unless it failed).
2. **Importing**: one ``gpuvec-import-<job>-<chunk>`` task per chunk
   (:func:`gpuvec.pipelines.importing.import_chunk_task`) on the data nodes; progress
   (chunks, rows, bytes) is written to the job record at most twice a second.
3. **Building**: the collection's index builds for the new segments
   (:func:`gpuvec.pipelines.build.build_index_task`; GPU workers when present). A build
   that fails is left to the duty loop, which builds it after the commit.
4. **Commit**: the segments, their index records and the job's ``Completed`` record in one
   guarded transaction (:meth:`Catalog.commit_import`): a job's rows become visible all at
   once or not at all. The runtime's ``publish`` runs that commit and serves the segments
   as one step for its readers (the embedded engine: under the collection's shard locks).

A failed job (a bad row with ``on_error="fail"``, a file gone, the collection dropped)
records its reason with the file, row and field, and deletes every object it wrote. A job
found ``Pending``/``Importing``/``Building`` when the runtime opens (the process was
killed) is run again from its record: tasks reuse complete segments and rewrite partial
ones, so it completes exactly once and leaves no orphan objects.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpuvec import faults
from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog
from gpuvec.coord.indexing import build_record, submit_build
from gpuvec.errors import (
    DeadlineExceededError,
    GpuvecError,
    ImportJobError,
    InvalidArgumentError,
    NotFoundError,
)
from gpuvec.pipelines.artifact import adoptable, load_artifact
from gpuvec.pipelines.common import StoreSpec
from gpuvec.pipelines.importing import ChunkJob, import_chunk_task
from gpuvec.pipelines.sources import Chunk, plan_import, source_bytes
from gpuvec.records import NO_BUILD, CollectionMeta, SegmentMeta, index_id
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Put
from gpuvec.storage.objects.paths import (
    import_cancelled_path,
    index_path,
    segment_path,
    segment_root,
)
from gpuvec.storage.objects.stores import delete_prefix, put_bytes

log = logging.getLogger(__name__)

ACTIVE = ("Pending", "Importing", "Building")
PROGRESS_EVERY_S = 0.5


def read_job(meta: Any, job_id: int) -> dict[str, Any]:
    """The record of import job ``job_id`` in meta storage (any role can read it)."""
    kv = meta.get(K.import_job_key(int(job_id)))
    if kv is None:
        raise NotFoundError(f"import job not found[job={job_id}]")
    return json.loads(kv.value)


def list_jobs(meta: Any, collection: str = "", limit: int = 0) -> list[dict[str, Any]]:
    """Import jobs oldest first (of ``collection`` when given; the last ``limit`` when > 0)."""
    kvs, _ = meta.range(K.IMPORT_JOBS)
    jobs = [json.loads(kv.value) for kv in kvs]
    jobs = [j for j in jobs if not collection or j["collection"] == collection]
    return jobs[-limit:] if limit > 0 else jobs


def _files(files: Any) -> list[Any]:
    if isinstance(files, str):
        return [files]
    return [f if isinstance(f, str) else [str(x) for x in f] for f in files]


class ImportJobs:
    def __init__(
        self, catalog: Catalog, tso: Any, runtime: Any, spec: StoreSpec, store: Any,
        config: Config,
        publish: Callable[[CollectionMeta, list[SegmentMeta], Callable[[], bool]], bool],
    ) -> None:  # fmt: skip
        self.catalog, self.tso, self.runtime, self.spec, self.store = (
            catalog, tso, runtime, spec, store)  # fmt: skip
        self.config, self.publish = config, publish
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Condition()  # notified whenever a job record changes
        self._changes = 0

    # --- records ---------------------------------------------------------------------------
    def state(self, job_id: int) -> dict[str, Any]:
        return read_job(self.catalog.meta, job_id)

    def list(self, collection: str = "", limit: int = 0) -> list[dict[str, Any]]:
        return list_jobs(self.catalog.meta, collection, limit)

    def _put(self, job: dict[str, Any]) -> None:
        job["updated"] = time.time()
        self.catalog.txn([], [Put(K.import_job_key(job["id"]), _dump(job))])
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changes += 1
            self._changed.notify_all()

    def state_after(self, job_id: int, seen: float, timeout: float) -> dict[str, Any]:
        """The job's record once its ``updated`` time differs from ``seen`` (a job this
        process runs wakes the caller the moment it changes), or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                mark = self._changes
            job = self.state(job_id)
            left = deadline - time.monotonic()
            if job["updated"] != seen or job["state"] not in ACTIVE or left <= 0:
                return job
            with self._changed:
                if self._changes == mark:  # nothing written since the read above
                    self._changed.wait(timeout=left)

    # --- submit ----------------------------------------------------------------------------
    def submit(
        self, meta: CollectionMeta, files: Any, partition: str | None = None, *,
        idempotency_key: str | None = None, on_error: str = "fail",
        storage_options: dict[str, Any] | None = None, index_artifact: str | None = None,
    ) -> int:  # fmt: skip
        """Check and record a job (see the module docstring), start it; return its id."""
        if on_error not in ("fail", "skip"):
            raise InvalidArgumentError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
        files = _files(files)
        if not files:
            raise ImportJobError("import needs at least one file")
        pname = partition or "_default"
        if pname not in meta.partitions:
            raise NotFoundError(f"partition not found[partition={pname}]")
        if idempotency_key:
            kv = self.catalog.meta.get(K.import_idempotency_key(idempotency_key))
            if kv is not None:
                prior = self.state(int(kv.value))
                if prior["state"] != "Failed":
                    return int(prior["id"])
        if index_artifact:
            load_artifact(index_artifact)  # a clear error now, not after the import
        schema = meta.collection_schema()
        chunks = plan_import(schema, files, chunk_rows=self.config.import_chunk_rows,
                             storage_options=storage_options)  # fmt: skip
        total = sum(c.stop - c.start for c in chunks)
        job_id = self.catalog.allocate_ids()
        seg_base = self.catalog.allocate_ids(max(1, len(chunks) * meta.num_shards))
        pk = schema.primary_field
        id_base = self.catalog.allocate_ids(total) if pk is not None and pk.auto_id else None
        job = {
            "id": job_id, "key": idempotency_key or "", "collection": meta.name,
            "shards": meta.num_shards,
            "collection_id": meta.id, "partition": pname,
            "partition_id": meta.partitions[pname], "files": files, "on_error": on_error,
            "storage_options": storage_options or {}, "state": "Pending", "reason": "",
            "index_artifact": str(index_artifact or ""), "adopted": 0,
            "ts": int(self.tso.allocate()), "seg_base": seg_base, "id_base": id_base,
            "chunks": len(chunks), "chunks_done": 0, "total_rows": total, "rows": 0,
            "rejected": 0, "bytes_total": source_bytes(chunks), "bytes": 0, "segments": [],
            "progress": 0, "created": time.time(), "updated": time.time(),
        }  # fmt: skip
        ops = [Put(K.import_job_key(job_id), _dump(job))]
        if idempotency_key:
            ops.append(Put(K.import_idempotency_key(idempotency_key), str(job_id).encode()))
        self.catalog.txn([Compare(K.import_job_key(job_id), "version", "==", 0)], ops)
        self._start(job_id)
        return job_id

    def _start(self, job_id: int) -> None:
        with self._lock:
            t = self._threads.get(job_id)
            if t is not None and t.is_alive():
                return
            t = threading.Thread(target=self._run, args=(job_id,), daemon=True,
                                 name=f"gpuvec-import-{job_id}")  # fmt: skip
            self._threads[job_id] = t
            t.start()

    def resume(self) -> list[int]:
        """Run again every job a previous process left unfinished; their ids."""
        ids = [int(j["id"]) for j in self.list() if j["state"] in ACTIVE]
        for job_id in ids:
            log.info("resuming import job %s", job_id)
            self._start(job_id)
        return ids

    def wait(self, job_id: int, timeout: float | None = None) -> dict[str, Any]:
        """The finished job's record; ``ImportJobError`` (with its reason) if it failed,
        ``DeadlineExceededError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.state(job_id)
        while True:
            if job["state"] == "Completed":
                return job
            if job["state"] == "Failed":
                raise ImportJobError(f"import job {job_id} failed: {job['reason']}")
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"import job {job_id} not finished after {timeout} s: {job['state']} "
                    f"{job['progress']}% ({job['rows']:,} of {job['total_rows']:,} rows)"
                )
            left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            job = self.state_after(job_id, job["updated"], left)

    def close(self) -> None:
        """Stop running jobs where they are (they resume on the next open); call before
        closing the data nodes, then :meth:`join`."""
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        for t in list(self._threads.values()):
            t.join(timeout=timeout)

    # --- run -------------------------------------------------------------------------------
    def _run(self, job_id: int) -> None:
        job = self.state(job_id)
        try:
            self._import(job)
        except Exception as e:
            if self._stop.is_set():  # closing: the job resumes on the next open
                log.info("import job %s interrupted by close; it resumes on reopen", job_id)
                return
            reason = str(e) if isinstance(e, GpuvecError) else f"{type(e).__name__}: {e}"
            log.warning("import job %s failed: %s", job_id, reason)
            self._fail(job, reason)
        finally:
            self._notify()  # the commit wrote the Completed record

    def _fail(self, job: dict[str, Any], reason: str) -> None:
        for sid in self._segment_ids(job):  # no orphan objects
            try:
                delete_prefix(self.store, segment_root(segment_path(job["collection_id"], sid)))
            except Exception:
                log.debug("cleanup of import %s segment %s failed", job["id"], sid,
                          exc_info=True)  # fmt: skip
        job.update(state="Failed", reason=reason)
        self._put(job)

    @staticmethod
    def _segment_ids(job: dict[str, Any]) -> range:
        return range(job["seg_base"], job["seg_base"] + max(1, job["chunks"] * job["shards"]))

    def _meta(self, job: dict[str, Any]) -> CollectionMeta:
        meta = self.catalog.get(job["collection"])
        if meta.id != job["collection_id"]:
            raise ImportJobError(f"collection {job['collection']!r} was dropped meanwhile")
        return meta

    def _import(self, job: dict[str, Any]) -> None:
        meta = self._meta(job)
        schema = meta.collection_schema()
        chunks = plan_import(schema, job["files"], chunk_rows=self.config.import_chunk_rows,
                             storage_options=job["storage_options"] or None)  # fmt: skip
        if len(chunks) != job["chunks"]:
            raise ImportJobError(f"the files changed since the job was submitted "
                                 f"({len(chunks)} chunks, was {job['chunks']})")  # fmt: skip
        job.update(state="Importing")
        self._put(job)
        results = self._chunks(job, meta, chunks)
        segs = [SegmentMeta(s["id"], meta.id, s["partition_id"], s["channel"], s["path"],
                            s["rows"], s["ts_min"], s["ts_max"], 0)
                for r in results for s in r["segments"]]  # fmt: skip
        digests = {s["id"]: s.get("digests", {}) for r in results for s in r["segments"]}
        job.update(state="Building", progress=95)
        self._put(job)
        indexes = self._build(meta, segs, job, digests)
        faults.pause("import.before-commit")
        job.update(state="Completed", progress=100, segments=[s.id for s in segs])
        job["updated"] = time.time()
        record = (K.import_job_key(job["id"]), _dump(job))
        if not self.publish(
            meta, segs, lambda: self.catalog.commit_import(meta, segs, indexes, record)
        ):
            raise ImportJobError(f"collection {job['collection']!r} was dropped meanwhile")

    def _chunks(self, job: dict[str, Any], meta: CollectionMeta,
                chunks: Sequence[Chunk]) -> list[dict[str, Any]]:  # fmt: skip
        shards, firsts = meta.num_shards, []
        row = 0
        for c in chunks:
            firsts.append(None if job["id_base"] is None else job["id_base"] + row)
            row += c.stop - c.start
        futures = {}
        for i, c in enumerate(chunks):
            spec = ChunkJob(
                job_id=job["id"], collection_id=meta.id, schema=meta.schema,
                channels=tuple(meta.channels), partition_id=job["partition_id"], ts=job["ts"],
                segment_ids=tuple(range(job["seg_base"] + i * shards,
                                        job["seg_base"] + (i + 1) * shards)),
                id_first=firsts[i], chunk_rows=self.config.segment_chunk_rows,
                on_error=job["on_error"], storage_options=job["storage_options"] or None,
                digests=bool(job.get("index_artifact")),
                handoff=bool(getattr(self.runtime, "in_process", False)),
            )  # fmt: skip
            key = f"gpuvec-import-{job['id']}-{i:05d}"
            futures[key] = self.runtime.submit(import_chunk_task, self.spec, c, i, spec, key=key)
        results: dict[str, dict[str, Any]] = {}
        last = 0.0
        try:
            for key, fut in _as_completed(futures):
                results[key] = fut.result()
                if self._stop.is_set():
                    raise ImportJobError("closed")
                if time.monotonic() - last >= PROGRESS_EVERY_S or len(results) == len(chunks):
                    last = time.monotonic()
                    done = list(results.values())
                    job.update(chunks_done=len(done), rows=sum(r["rows"] for r in done),
                               rejected=sum(r["rejected"] for r in done),
                               bytes=sum(r["bytes"] for r in done),
                               progress=int(90 * len(done) / max(1, len(chunks))))  # fmt: skip
                    self._put(job)
        except BaseException:
            if not self._stop.is_set():  # a failure: let no running task write after GC
                put_bytes(self.store, import_cancelled_path(job["id"]), b"failed")
                _settle(list(futures.values()))
            for fut in futures.values():
                fut.cancel()
            raise
        return [results[k] for k in futures]

    def _build(self, meta: CollectionMeta, segs: list[SegmentMeta], job: dict[str, Any],
               digests: dict[int, dict[str, str]]) -> list[tuple[int, str, dict]]:  # fmt: skip
        """Index builds of the new segments, before the commit (failures: left to the duty
        loop after it); pieces of the job's index artifact are adopted where they fit."""
        defs = [d for d in meta.index_params if d.get("index_type") not in NO_BUILD]
        todo = [(s, d) for s in segs if s.rows >= self.config.index_min_rows for d in defs]
        artifact = load_artifact(job["index_artifact"]) if job.get("index_artifact") else None
        futs, out = [], []
        for s, d in todo:
            iid, field = index_id(d), d["field_name"]
            piece = adoptable(artifact, d, digests.get(s.id, {}).get(field)) if artifact else ""
            if piece:
                out.append((s.id, field, self._adopt(s, d, iid, piece)))
                continue
            _, _, fut = submit_build(self.runtime, self.spec, meta, s.path, s.id, d)
            futs.append((s, d, iid, fut))
        job["adopted"] = len(out)
        for s, d, iid, fut in futs:
            try:
                built = fut.result()
            except Exception as e:
                log.warning("import: index build of segment %s failed (%s); the duty loop "
                            "builds it after the commit", s.id, e)  # fmt: skip
                continue
            out.append((s.id, d["field_name"], build_record(d, iid, built)))
        return out

    def _adopt(self, seg: SegmentMeta, d: dict[str, Any], iid: int, piece: str) -> dict:
        """Copy an artifact piece in as the segment's index file; its index record."""
        data = Path(piece).read_bytes()
        path = index_path(seg.path, iid, d["field_name"])
        put_bytes(self.store, path, data)
        rec = json.loads(Path(piece).with_suffix(".json").read_text())
        return {"index_id": iid, "index_name": d.get("index_name", d["field_name"]),
                "index_type": d["index_type"], "metric_type": d["metric_type"],
                "params": dict(d.get("params") or {}), "path": path, "nbytes": len(data),
                "rows": rec["rows"], "describe": rec.get("describe", {}), "seconds": 0.0,
                "adopted_from": piece}  # fmt: skip


def _as_completed(futures: dict[str, Any]) -> Any:
    """``(key, future)`` of the Dask futures as each finishes."""
    from distributed import as_completed

    by_future = {f.key: k for k, f in futures.items()}
    for fut in as_completed(list(futures.values())):
        yield by_future[fut.key], fut


def _settle(futures: list[Any], timeout: float = 600.0) -> None:
    """Wait until every future finished one way or the other (errors ignored)."""
    from distributed import wait

    try:
        wait(futures, timeout=timeout)
    except Exception:
        log.debug("import tasks did not settle", exc_info=True)


def _dump(job: dict[str, Any]) -> bytes:
    return json.dumps(job, separators=(",", ":"), default=str).encode()
