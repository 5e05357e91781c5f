"""Task bodies of the data nodes: pure functions of their arguments, safe to retry.

Each reads what it needs from object storage, computes, writes its outputs under
deterministic paths (a retried or duplicated task overwrites the same objects with the
same bytes) and returns a small dict describing them. Nothing here touches meta storage:
the coordinator commits a task's result in a guarded transaction after it returns, so a
task that fails or whose worker dies never leaves a half-registered index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gpuvec.index.registry import build_index, dump
from gpuvec.storage.objects.segment import SegmentReader
from gpuvec.storage.objects.stores import open_store, put_bytes


@dataclass(frozen=True)
class StoreSpec:
    """How a worker process opens the object store (picklable, no live handles)."""

    uri: str
    endpoint_url: str | None = None

    def open(self) -> Any:
        return open_store(self.uri, endpoint_url=self.endpoint_url)


def index_path(segment_path: str, index_id: int, field: str) -> str:
    return f"{segment_path}/index/{index_id}/{field}.gpuvecix"


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
    it is, its size, the serving description and the build time."""
    t0 = time.perf_counter()
    st = store.open()
    vectors = SegmentReader(st, segment_path).vectors(field)
    index = build_index(vectors, metric, index_type, params)
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
