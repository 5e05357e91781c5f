"""What every data-node job body shares: how a worker opens the object store
(:class:`StoreSpec`, picklable) and how a running task reports its progress to the Dask
scheduler (:data:`PROGRESS_TOPIC` events ``{"key", "done", "total"}``, at most a few per
second; the gpuvec dashboard page, ``describe_index`` and the CLIs read them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gpuvec.storage.objects.stores import open_store


@dataclass(frozen=True)
class StoreSpec:
    """How a worker process opens the object store (picklable, no live handles)."""

    uri: str
    endpoint_url: str | None = None

    def open(self) -> Any:
        return open_store(self.uri, endpoint_url=self.endpoint_url)


PROGRESS_TOPIC = "gpuvec-build-progress"
PROGRESS_EVERY_S = 0.25  # the least time between two progress events of one build


def progress_reporter() -> Callable[[int, int], None] | None:
    """``report(done, total)`` that logs the running task's progress on the scheduler
    (throttled; the last step is always sent); None outside a Dask worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
        key = str(worker.get_current_task())
    except (ImportError, ValueError, KeyError):
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        worker.log_event(PROGRESS_TOPIC, {"key": key, "done": int(done), "total": int(total)})

    return report


def build_progress(events: Iterable[tuple[float, Any]]) -> dict[str, tuple[int, int]]:
    """The latest ``(done, total)`` rows of each build key in the scheduler's progress
    events (``(time, {"key", "done", "total"})`` pairs, oldest first)."""
    out: dict[str, tuple[int, int]] = {}
    for _, msg in events:
        if isinstance(msg, dict) and "key" in msg:
            out[str(msg["key"])] = (int(msg.get("done", 0)), int(msg.get("total", 0)))
    return out


def vector_digest(vectors: Any) -> str:
    """A fingerprint of a ``[n, dim]`` float32 block (shape and bytes): how an import
    recognises a segment whose vectors an index artifact's piece was built from."""
    import hashlib

    import numpy as np

    a = np.ascontiguousarray(vectors, dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape[0]}x{a.shape[1] if a.ndim == 2 else 0}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()
