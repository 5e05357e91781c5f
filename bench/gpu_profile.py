"""Where a batch-1 search spends its time on a GPU host (a diagnostic, not a benchmark).

    python bench/gpu_profile.py [--rows 100000] [--dim 384]

Times ``gpuvec.ops.knn`` on device-resident vectors step by step (CUDA events around the
whole call, and a cProfile of the Python side), then a cProfile of
``MilvusClient.search`` at batch 1 on a sealed, GPU-resident collection. Prints the top
entries; writes ``$OUT/gpu_profile.txt`` when ``$OUT`` is set.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuvec import MilvusClient, ops
from gpuvec.config import Config


def profile(fn, reps: int, label: str, out: io.StringIO) -> float:  # type: ignore[no-untyped-def]
    for _ in range(5):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    ms = (time.perf_counter() - t) / reps * 1e3
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(reps):
        fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(22)
    out.write(f"\n===== {label}: {ms:.3f} ms per call =====\n{s.getvalue()}")
    return ms


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    a = ap.parse_args()
    out = io.StringIO()
    out.write(f"backend: {ops.backend_name()}\n")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((a.rows, a.dim), dtype=np.float32)
    q = rng.standard_normal((1, a.dim), dtype=np.float32)
    dev = ops.to_device(base)
    norms = ops.to_device(ops.sq_norms(base))
    valid = np.ones(a.rows, bool)
    for metric in ("L2", "COSINE"):
        profile(lambda m=metric: ops.knn(dev, q, 10, m, base_sq_norms=norms), 200,
                f"ops.knn {metric} nq=1 no mask", out)  # fmt: skip
        profile(lambda m=metric: ops.knn(dev, q, 10, m, valid=valid, base_sq_norms=norms), 200,
                f"ops.knn {metric} nq=1 host mask", out)  # fmt: skip
    # brute force on every segment: no AUTOINDEX builds
    c = MilvusClient(tempfile.mkdtemp(), config=Config(seal_idle_s=3600, index_min_rows=1 << 62))
    c.create_collection("c", dimension=a.dim, metric_type="COSINE")
    for s in range(0, a.rows, 10_000):
        c.insert("c", [{"id": i, "vector": base[i]} for i in range(s, min(a.rows, s + 10_000))])
    c.flush("c")
    out.write(f"stats: {c.get_collection_stats('c')}\n")
    profile(lambda: c.search("c", data=q, limit=10), 200, "client.search nq=1", out)
    profile(lambda: c.search("c", data=q.tolist(), limit=10), 200, "client.search list", out)
    c.close()
    text = out.getvalue()
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_profile.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
