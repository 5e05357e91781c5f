"""Bulk-import RPCs of the Milvus service: ``Import``, ``GetImportState`` and
``ListImportTasks``, as pymilvus's ``utility.do_bulk_insert`` / ``get_bulk_insert_state`` /
``list_bulk_insert_tasks`` call them. Translation only: the job is the client's
``do_bulk_insert`` (:mod:`gpuvec.client.imports`).

``files``: one Parquet or JSON file per source, or the ``.npy`` files of one column group
(all of a request's ``.npy`` files form one group, as Milvus reads them). ``options`` may
carry gpuvec's ``idempotency_key``, ``on_error`` (``fail`` / ``skip``) and ``index_artifact``
(a prebuilt index directory, :mod:`gpuvec.pipelines.artifact`). States map to Milvus's
``ImportState``: Pending → ImportPending, Importing/Building → ImportStarted,
Completed → ImportCompleted, Failed → ImportFailed (``infos["failed_reason"]`` says why).
"""

from __future__ import annotations

from typing import Any

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from gpuvec.server.status import ok, rpc

__all__ = ["ImportRPCs"]

_STATES = {
    "Pending": common_pb2.ImportPending,
    "Importing": common_pb2.ImportStarted,
    "Building": common_pb2.ImportStarted,
    "Completed": common_pb2.ImportCompleted,
    "Failed": common_pb2.ImportFailed,
}
_OPTIONS = ("idempotency_key", "on_error", "index_artifact")


def _files(files: list[str]) -> list[Any]:
    npy = [f for f in files if f.endswith(".npy")]
    rest = [f for f in files if not f.endswith(".npy")]
    return rest + ([npy] if npy else [])


def state_proto(job: dict[str, Any]) -> milvus_pb2.GetImportStateResponse:
    """A job (the client's ``get_bulk_insert_state`` dict) as Milvus's state response."""
    files = job["files"]
    names = ",".join(f if isinstance(f, str) else ",".join(f) for f in files)
    infos = {
        "files": names, "collection": job["collection_name"],
        "partition": job["partition_name"], "failed_reason": job["failed_reason"] or "",
        "progress_percent": str(job["progress"]), "state": job["state"],
        "rejected_rows": str(job["rejected_rows"]), "total_rows": str(job["total_rows"]),
    }  # fmt: skip
    return milvus_pb2.GetImportStateResponse(
        status=ok(), id=int(job["job_id"]), state=_STATES.get(job["state"], 0),
        row_count=int(job["row_count"]),
        infos=[common_pb2.KeyValuePair(key=k, value=str(v)) for k, v in infos.items()],
        create_ts=int(job["create_time"]), segment_ids=[int(s) for s in job["segments"]],
    )  # fmt: skip


class ImportRPCs:
    client: Any

    @rpc
    def Import(self, request: Any, context: Any) -> Any:
        options = {kv.key: kv.value for kv in request.options if kv.key in _OPTIONS}
        job = self.client(request, context).do_bulk_insert(
            request.collection_name, _files(list(request.files)),
            request.partition_name or None, **options,
        )  # fmt: skip
        return milvus_pb2.ImportResponse(status=ok(), tasks=[int(job)])

    @rpc
    def GetImportState(self, request: Any, context: Any) -> Any:
        return state_proto(self.client(request, context).get_bulk_insert_state(request.task))

    @rpc
    def ListImportTasks(self, request: Any, context: Any) -> Any:
        jobs = self.client(request, context).list_bulk_insert_tasks(
            int(request.limit), request.collection_name
        )
        return milvus_pb2.ListImportTasksResponse(status=ok(),
                                                  tasks=[state_proto(j) for j in jobs])  # fmt: skip
