"""The index-build job body: read a sealed segment's vectors, build the index on the
worker (faiss-cpu here; the GPU types on the device where present), write the index file
under its deterministic path and return where it is. Pure and safe to retry: nothing here
touches meta storage; the coordinator commits the result in a guarded transaction."""

from __future__ import annotations

import os
import time
from typing import Any

from gpuvec.pipelines.common import StoreSpec, progress_reporter

from gpuvec.index.registry import build_index, dump
from gpuvec.index.threads import faiss_module
from gpuvec.observability.datanode import observed
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
