"""The bulk-import part of ``MilvusClient`` (a base class of it): pymilvus's bulk-insert
names (``do_bulk_insert``, ``get_bulk_insert_state``, ``list_bulk_insert_tasks``, as in
``pymilvus.utility``) plus ``wait_for_bulk_insert`` and ``bulk_import`` (submit and wait,
with a progress bar) for scripts. The job itself is :mod:`gpuvec.coord.imports`.

Files: Parquet (a file or a directory of files), NumPy (one ``<field>.npy`` per field in
a directory, memory-mapped), JSON (``{"rows": [...]}``) and JSON lines, the output of
pymilvus's ``LocalBulkWriter``; local paths or ``s3://`` URIs (``storage_options`` goes to
fsspec). Options: ``idempotency_key`` (submitting the same key again returns the first job
instead of importing twice), ``on_error`` (``"fail"``: the first bad row fails the job,
naming file, row and field; ``"skip"``: bad rows go to ``imports/<job>/rejected-*.jsonl``
in the object store and the rest import), ``index_artifact`` (a directory that
``gpuvec build-index --source`` / :func:`gpuvec.pipelines.artifact.build_artifact` wrote
from the same files: its prebuilt pieces are adopted as the segments' indexes instead of
building them).
"""

from __future__ import annotations

import time
from typing import Any

from gpuvec.errors import DeadlineExceededError, ImportJobError
from gpuvec.proxy.names import user_name
from gpuvec.runtime.base import Runtime

OPTIONS = ("idempotency_key", "on_error", "storage_options", "index_artifact")


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """A job record as the client shows it."""
    return {
        "job_id": job["id"], "state": job["state"], "progress": job["progress"],
        "collection_name": user_name(job["collection"]), "partition_name": job["partition"],
        "files": job["files"], "row_count": job["rows"], "total_rows": job["total_rows"],
        "rejected_rows": job["rejected"], "failed_reason": job["reason"],
        "segments": job["segments"], "create_time": job["created"],
        "update_time": job["updated"], "idempotency_key": job["key"],
        "index_artifact": job.get("index_artifact", ""),
        "adopted_indexes": job.get("adopted", 0),
    }  # fmt: skip


class ImportMethods:
    _engine: Runtime
    _coll: Any

    def do_bulk_insert(
        self,
        collection_name: str,
        files: Any,
        partition_name: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> int:
        """Start importing ``files`` (see the module docstring); returns the job id at once,
        after the files were checked against the schema (a missing file, unknown column or
        wrong dimension raises here, before anything is written)."""
        coll = self._coll(collection_name)
        options = {k: kwargs[k] for k in OPTIONS if kwargs.get(k) is not None}
        return int(self._engine.import_files(coll.meta, files, partition_name or None,
                                             **options))  # fmt: skip

    def get_bulk_insert_state(self, task_id: int, timeout: float | None = None,
                              **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        """The job's state (``Pending``, ``Importing``, ``Building``, ``Completed``,
        ``Failed``), ``progress`` (percent), rows so far and the reason it failed."""
        return job_view(self._engine.import_state(int(task_id)))

    def list_bulk_insert_tasks(
        self, limit: int = 0, collection_name: str = "", timeout: float | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Import jobs, oldest first (of one collection when named; the last ``limit``)."""
        name = self._coll(collection_name).meta.name if collection_name else ""
        return [job_view(j) for j in self._engine.import_jobs(name, int(limit or 0))]

    def wait_for_bulk_insert(self, task_id: int, timeout: float | None = None,
                             progress: Any = None) -> dict[str, Any]:  # fmt: skip
        """Block until the job finished: its final state; ``ImportJobError`` (code 2100,
        with the file, row and field of a bad row) if it failed, ``DeadlineExceededError``
        after ``timeout`` s. ``progress(state)`` is called with each new state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        job = self._engine.import_state(int(task_id))
        while True:
            state = job_view(job)
            key = (state["state"], state["row_count"], state["progress"])
            if progress is not None and key != last:
                progress(state)
            last = key
            if state["state"] == "Completed":
                return state
            if state["state"] == "Failed":
                raise ImportJobError(f"import job {task_id} failed: {state['failed_reason']}")
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"import job {task_id} not finished after {timeout} s: {state['state']} "
                    f"{state['progress']}% ({state['row_count']:,} of "
                    f"{state['total_rows']:,} rows)"
                )
            left = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            job = self._engine.import_state_after(int(task_id), job["updated"], left)

    def bulk_import(
        self,
        collection_name: str,
        files: Any,
        partition_name: str | None = None,
        *,
        timeout: float | None = None,
        show_progress: bool = False,
        **options: Any,
    ) -> dict[str, Any]:
        """Import ``files`` and wait: the finished job's state (see
        :meth:`do_bulk_insert`, :meth:`wait_for_bulk_insert`). ``show_progress`` draws a
        tqdm bar of the rows imported."""
        job = self.do_bulk_insert(collection_name, files, partition_name, **options)
        if not show_progress:
            return self.wait_for_bulk_insert(job, timeout)
        from tqdm import tqdm

        with tqdm(desc=f"import job {job}", unit="row", unit_scale=True) as bar:

            def show(state: dict[str, Any]) -> None:
                bar.total = state["total_rows"]
                bar.n = min(state["row_count"], bar.total or state["row_count"])
                bar.set_postfix_str(state["state"])

            return self.wait_for_bulk_insert(job, timeout, progress=show)
