"""How many OpenMP threads a faiss search may use (DESIGN §9), in one place.

Small batches (fewer than :data:`MT_MIN_BATCH` queries, the same bound ``gpuvec.ops`` uses
for BLAS) run with one faiss/OpenMP thread: waking a thread team costs more than a
single-query graph walk or list scan (DESIGN §9: threads on 2 cores cut batch-1 QPS
5–20×). Larger batches keep every thread; faiss splits them over queries.

``omp_set_num_threads`` changes the calling OS thread's OpenMP setting only (libgomp keeps
the value per thread once a thread writes it), so concurrent searches from different
Python threads do not disturb each other; the previous value is restored on exit.

Importing this module sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already says
otherwise (DESIGN §9: idle OpenMP threads then sleep instead of spinning against the
caller's threads). libgomp reads it once, when faiss is first loaded, so it only takes
effect if nothing imported faiss earlier (``gpuvec.ops`` imports it lazily too); faiss is
imported here only through :func:`faiss_module`.

Measured on a 2-CPU host with the passive policy (50k×64 random rows, k=10, QPS with this
helper vs always all threads): IVF_FLAT nprobe 16 batch-1 4918 vs 4232, batch-8 12232 vs
11976; HNSW ef 64 batch-1 3974 vs 3917; batch-256 takes the same path either way (14174 vs
15820, run-to-run noise). DESIGN §9's 5–20× batch-1 loss was measured with spinning
threads, which the passive policy mostly avoids.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from types import ModuleType

from gpuvec.ops.search import MT_MIN_BATCH

__all__ = ["MT_MIN_BATCH", "faiss_module", "search_threads"]

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_lock = threading.Lock()
_faiss: ModuleType | None = None


def faiss_module() -> ModuleType:
    """faiss, imported on first use (module docstring: OpenMP wait policy)."""
    global _faiss
    if _faiss is None:
        with _lock:
            if _faiss is None:
                import faiss

                _faiss = faiss
    return _faiss


@contextlib.contextmanager
def search_threads(nq: int) -> Iterator[int]:
    """Run the body with 1 OpenMP thread when ``nq < MT_MIN_BATCH``, else with all of them;
    yields the thread count in force."""
    faiss = faiss_module()
    if nq >= MT_MIN_BATCH:
        yield faiss.omp_get_max_threads()
        return
    prev = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield 1
    finally:
        faiss.omp_set_num_threads(prev)
