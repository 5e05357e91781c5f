"""The bulk-import job body: one chunk of one source file → validated rows → sealed Zarr
segments, one per shard the chunk's primary keys route to (``gpuvec-import-<job>-<chunk>``).

A chunk reads only its rows (:func:`gpuvec.pipelines.sources.read_chunk`), validates them
with the same rules and messages as ``insert`` (:func:`gpuvec.columns.columns_to_table`,
naming the file and row), takes its auto ids from the range the job reserved for it,
stamps every row with the job's one timestamp, routes rows by primary key with the rule
``insert`` uses (:func:`gpuvec.records.shard_of`) and writes each shard's rows as a sealed
segment under the segment id the job reserved for (chunk, shard). Nothing here touches
meta: the job commits every segment in one transaction after all chunks returned.

Pure and safe to retry (a worker killed mid-chunk, a resumed job): a segment already
written completely is reused, a partial one is removed and written again. With
``on_error="skip"``, rows that fail validation are written to
``imports/<job>/rejected-<chunk>.jsonl`` (file, row, reason, the row) and the rest import.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from gpuvec.pipelines.common import StoreSpec, vector_digest
from gpuvec.pipelines.sources import Chunk, read_chunk

from gpuvec import faults
from gpuvec.columns import columns_to_table
from gpuvec.errors import DataError, GpuvecError
from gpuvec.observability.datanode import observed
from gpuvec.records import shard_of
from gpuvec.schema import CollectionSchema
from gpuvec.storage.objects.paths import (
    import_cancelled_path,
    rejected_rows_path,
    segment_path,
)
from gpuvec.storage.objects.segment import SegmentReader, segment_columns, write_segment
from gpuvec.storage.objects.stores import delete_prefix, exists, put_bytes
from gpuvec.text import bm25  # noqa: F401 (computes BM25 function outputs of imported rows)


@dataclass(frozen=True)
class ChunkJob:
    """What one chunk task needs besides the chunk (picklable)."""

    job_id: int
    collection_id: int
    schema: dict[str, Any]  # CollectionSchema.to_dict()
    channels: tuple[str, ...]  # one per shard
    partition_id: int
    ts: int  # the job's timestamp: every imported row's insert time
    segment_ids: tuple[int, ...]  # reserved for this chunk, one per shard
    id_first: int | None  # auto_id collections: the chunk's first id (row i gets +i)
    chunk_rows: int = 8192  # Zarr chunk rows of the segments
    on_error: str = "fail"  # "fail" | "skip"
    storage_options: dict[str, Any] | None = None
    digests: bool = False  # fingerprint each segment's vectors (adopting an index artifact)
    handoff: bool = False  # the loader runs in the worker's process: leave it the columns


def _auto_ids(job: ChunkJob, n: int) -> np.ndarray | None:
    return None if job.id_first is None else np.arange(job.id_first, job.id_first + n)


def _validate(job: ChunkJob, schema: CollectionSchema, chunk: Chunk, data: Any,
              store: Any, index: int) -> tuple[pa.Table, int]:  # fmt: skip
    """(valid rows, rejected count); with ``on_error="fail"`` the first bad row raises."""
    n = chunk.stop - chunk.start
    try:
        table = columns_to_table(schema, data, operation="insert", auto_ids=_auto_ids(job, n),
                                 row_offset=chunk.start, source=chunk.source)  # fmt: skip
        return table, 0
    except DataError:
        if job.on_error != "skip":
            raise
    good, rejected = [], []
    for i in range(n):  # the slow path, only for a chunk with bad rows: one row at a time
        one = data.slice(i, 1) if isinstance(data, pa.Table) else {
            k: v[i : i + 1] for k, v in data.items()}  # fmt: skip
        ids = None if job.id_first is None else [job.id_first + i]
        try:
            table = columns_to_table(schema, one, operation="insert", auto_ids=ids,
                                     row_offset=chunk.start + i, source=chunk.source)  # fmt: skip
            good.append(table)
        except DataError as e:
            row = one.to_pylist()[0] if isinstance(one, pa.Table) else {
                k: v[0] for k, v in one.items()}  # fmt: skip
            rejected.append({"file": chunk.source, "row": chunk.start + i, "reason": str(e),
                             "data": row})  # fmt: skip
    if rejected:
        text = "\n".join(json.dumps(r, default=_jsonable) for r in rejected) + "\n"
        put_bytes(store, rejected_rows_path(job.job_id, index), text.encode())
    if not good:
        return pa.table({}), len(rejected)
    return pa.concat_tables(good), len(rejected)


def _jsonable(v: Any) -> Any:
    return v.tolist() if isinstance(v, np.ndarray | np.generic) else str(v)


def _write(store: Any, path: str, **parts: Any) -> dict[str, Any]:
    """Write one segment, or reuse a complete one an earlier attempt wrote."""
    if exists(store, f"{path}/zarr.json"):
        try:
            info = SegmentReader(store, path).info
            return {"rows": info.row_count, "ts_min": info.ts_min, "ts_max": info.ts_max}
        except GpuvecError:
            delete_prefix(store, path)  # an interrupted attempt
    info = write_segment(store, path, **parts)
    return {"rows": info.row_count, "ts_min": info.ts_min, "ts_max": info.ts_max}


@observed("import", rows=lambda out: out["rows"])
def import_chunk_task(store: StoreSpec, chunk: Chunk, index: int, job: ChunkJob) -> dict[str, Any]:
    """Import chunk number ``index`` of ``job``; return its segments
    (``[{id, channel, partition_id, path, rows, ts_min, ts_max}]``), rows, rejected rows,
    bytes read and seconds."""
    t0 = time.perf_counter()
    faults.pause("import.chunk")
    st = store.open()
    if exists(st, import_cancelled_path(job.job_id)):  # the job failed meanwhile
        return {"segments": [], "rows": 0, "rejected": 0, "bytes": 0, "seconds": 0.0}
    schema = CollectionSchema.from_dict(job.schema)
    data = read_chunk(chunk, schema, storage_options=job.storage_options)
    table, rejected = _validate(job, schema, chunk, data, st, index)
    out: dict[str, Any] = {"segments": [], "rows": table.num_rows, "rejected": rejected,
                           "bytes": int(table.nbytes)}  # fmt: skip
    if table.num_rows:
        pks, vectors, rows = segment_columns(schema, table)
        pk_name = schema.primary_field.name  # type: ignore[union-attr]
        shards = shard_of(pks, len(job.channels))
        for s, (channel, sid) in enumerate(zip(job.channels, job.segment_ids, strict=True)):
            sel = np.flatnonzero(shards == s)
            if not len(sel):
                continue
            path = segment_path(job.collection_id, sid)
            if len(sel) == len(pks):  # every row routes here (one shard): no copies
                key, vecs, scalars = pks, vectors, rows
            else:
                key = pks[sel]
                vecs = {f: v[sel] for f, v in vectors.items()}
                scalars = rows.take(pa.array(sel))
            if key.dtype == object:
                key = pa.array(list(key), pa.string())
            meta = _write(st, path, pk=key, ts=np.full(len(sel), job.ts, np.uint64),
                          vectors=vecs, scalars=scalars.drop_columns([pk_name]),
                          checkpoint={channel: 0}, chunk_rows=job.chunk_rows,
                          handoff=job.handoff)  # fmt: skip
            if job.digests:
                meta["digests"] = {f: vector_digest(v) for f, v in vecs.items()}
            out["segments"].append({"id": sid, "channel": channel, "path": path,
                                    "partition_id": job.partition_id, **meta})  # fmt: skip
    out["seconds"] = time.perf_counter() - t0
    return out
