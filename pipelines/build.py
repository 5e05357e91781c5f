"""The index-build job body: read a sealed segment's vectors, build the index on the
worker (faiss-cpu here; the GPU types on the device where present), write the index file
under its deterministic path and return where it is. Pure and safe to retry: nothing here
touches meta storage; the coordinator commits the result in a guarded transaction."""

from __future__ import annotations

import os
import time
from typing import Any

import pyarrow as pa
from gpuvec.pipelines.common import StoreSpec, progress_reporter

from gpuvec.datatypes import DataType
from gpuvec.index import scalar
from gpuvec.index.registry import build_index, dump
from gpuvec.index.sparse import SparseIndex
from gpuvec.index.threads import faiss_module
from gpuvec.observability.datanode import observed
from gpuvec.schema import FieldSchema
from gpuvec.sparse import SparseRows
from gpuvec.storage.objects.paths import index_path
from gpuvec.storage.objects.segment import SegmentReader
from gpuvec.storage.objects.stores import put_bytes


@observed("index_build", rows=lambda out: out["rows"])
def build_index_task(
    store: StoreSpec,
    segment_path: str,
    field: str,
    index_id: int,
    index_type: str,
    metric: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Read a sealed segment's vectors, build the index, write its file; return where
    it is, its size, the serving description and the build time (timed and counted in
    the data node's ``gpuvec_datanode_task_*`` metrics, as is a compaction)."""
    t0 = time.perf_counter()
    st = store.open()
    if "field_schema" in params:  # a scalar or sparse index: built from the column
        if params["field_schema"].get("type") == int(DataType.SPARSE_FLOAT_VECTOR):
            return _sparse(st, segment_path, field, index_id, index_type, metric, params, t0)
        return _scalar(st, segment_path, field, index_id, index_type, params, t0)
    vectors = SegmentReader(st, segment_path).vectors(field)
    # Dask's nanny starts workers with OMP_NUM_THREADS=1: give the build the machine's cores
    # (GPUVEC_BUILD_THREADS overrides), or faiss builds HNSW/IVF on one thread
    threads = int(os.environ.get("GPUVEC_BUILD_THREADS", "0")) or (os.cpu_count() or 1)
    faiss_module().omp_set_num_threads(threads)
    report = progress_reporter()
    if report is not None:
        report(0, len(vectors))
    index = build_index(vectors, metric, index_type, params, report)
    data = dump(index)  # type: ignore[arg-type]
    path = index_path(segment_path, index_id, field)
    put_bytes(st, path, data)
    return {
        "path": path,
        "nbytes": len(data),
        "rows": int(index.ntotal),
        "describe": index.describe() if hasattr(index, "describe") else {},
        "seconds": time.perf_counter() - t0,
    }


def _sparse(st: Any, segment_path: str, field: str, index_id: int, index_type: str,
            metric: str, params: dict[str, Any], t0: float) -> dict[str, Any]:  # fmt: skip
    """A sparse index of the segment's SPARSE_FLOAT_VECTOR ``field`` (posting lists)."""
    opts = {k: v for k, v in params.items() if k != "field_schema"}
    rows = SparseRows.from_cells(SegmentReader(st, segment_path).column(field))
    itype = "SPARSE_INVERTED_INDEX" if index_type == "AUTOINDEX" else index_type
    index = SparseIndex.build(itype, rows, metric, opts)
    return _written(st, segment_path, field, index_id, index_type, index, t0)


def _scalar(st: Any, segment_path: str, field: str, index_id: int, index_type: str,
            params: dict[str, Any], t0: float) -> dict[str, Any]:  # fmt: skip
    """A scalar index of the segment's ``field`` column (:mod:`gpuvec.index.scalar`)."""
    opts = {k: v for k, v in params.items() if k != "field_schema"}
    schema = FieldSchema.from_dict(params["field_schema"])
    reader = SegmentReader(st, segment_path)
    column = reader.pk() if schema.is_primary else reader.column(field)
    if schema.is_primary and not isinstance(column, pa.Array):
        column = pa.array(column)
    itype = scalar.auto_type(schema) if index_type == "AUTOINDEX" else index_type
    index = scalar.ScalarIndex.build(itype, schema, column, opts)
    return _written(st, segment_path, field, index_id, index_type, index, t0)


def _written(st: Any, segment_path: str, field: str, index_id: int, index_type: str,
             index: Any, t0: float) -> dict[str, Any]:  # fmt: skip
    """Write a column index's file (its type as defined: AUTOINDEX stays AUTOINDEX)."""
    index.index_type = index_type
    data = dump(index)
    path = index_path(segment_path, index_id, field)
    put_bytes(st, path, data)
    return {"path": path, "nbytes": len(data), "rows": int(index.ntotal),
            "describe": index.describe(), "seconds": time.perf_counter() - t0}  # fmt: skip
