"""GPU_CAGRA on a CPU host: gpuvec's CAGRA graph (the NumPy twin build, served by faiss-cpu's
IndexHNSWCagra with upper layers) against faiss-cpu HNSW (M = 32, efConstruction 128) on
the same data, in one process: build time, and QPS at recall@10 >= 0.90 / 0.95 / 0.99 at
batch 1 (one thread) and batch 100 (all threads), both searched by faiss's HNSW code (the
efSearch sweep), so the graphs are what differs. The device build and search are issue
17's CUDA work; ``bench/gpu_check.py`` measures those on a GPU host.

    python bench/cagra.py [--rows 100000] [--dim 96] [--dataset DIR-with-base.npy]

Data: clustered Gaussian rows (or ``base.npy`` / ``query.npy`` of a dataset folder as
``shared/datasets/make_dataset.py`` builds), L2. Writes ``bench/results/cagra.json`` and
``bench/results/cagra.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuvec.index import build_index
from gpuvec.index.threads import faiss_module

OUT = Path(__file__).parent / "results"
EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
TARGETS = (0.90, 0.95, 0.99)
K = 10


def data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.dataset:
        d = Path(args.dataset)
        base = np.load(d / "base.npy").astype(np.float32)[: args.rows or None]
        return base, np.load(d / "query.npy").astype(np.float32)[:1000], d.name
    rng = np.random.default_rng(0)
    c = rng.normal(size=(1000, args.dim)).astype(np.float32) * 0.7  # overlapping clusters
    x = (c[rng.integers(0, 1000, args.rows)] + rng.normal(size=(args.rows, args.dim)))
    q = (c[rng.integers(0, 1000, 1000)] + rng.normal(size=(1000, args.dim)))
    return x.astype(np.float32), q.astype(np.float32), f"clustered {args.rows}x{args.dim}"


def curve(search: Any, q: np.ndarray, truth: np.ndarray, threads: int, nq: int) -> list[dict]:
    """(ef, recall@10, QPS) of ``search(queries, ef)`` at batch ``nq`` with ``threads``."""
    faiss = faiss_module()
    faiss.omp_set_num_threads(threads)
    out = []
    for ef in tqdm(EFS, desc=f"ef sweep nq={nq}", leave=False):
        rows = search(q, ef)
        rec = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, truth, strict=True)]))
        batches = [q[i : i + nq] for i in range(0, min(len(q), 200 if nq == 1 else 1000), nq)]
        t0 = time.perf_counter()
        for b in batches:
            search(b, ef)
        qps = sum(len(b) for b in batches) / (time.perf_counter() - t0)
        out.append({"ef": ef, "recall": rec, "qps": qps})
        if rec >= 0.995:
            break
    return out


def at_target(points: list[dict], target: float) -> float | None:
    ok = [p["qps"] for p in points if p["recall"] >= target]
    return max(ok) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--dataset", default="")
    args = ap.parse_args()
    faiss = faiss_module()
    cpus = os.cpu_count() or 1
    x, q, name = data(args)
    exact = faiss.IndexFlatL2(x.shape[1])
    exact.add(x)
    truth = exact.search(q, K)[1]
    faiss.omp_set_num_threads(cpus)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(x.shape[1], 32)
    hnsw.hnsw.efConstruction = 128
    hnsw.add(x)
    hnsw_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    cagra = build_index(x, "L2", "GPU_CAGRA", {"intermediate_graph_degree": 128,
                                               "graph_degree": 64})  # fmt: skip
    cagra_build = time.perf_counter() - t0

    def hnsw_search(qs: np.ndarray, ef: int) -> np.ndarray:
        p = faiss.SearchParametersHNSW()
        p.efSearch = max(ef, K)
        return hnsw.search(qs, K, params=p)[1]

    graph = cagra._index  # the same faiss search code as HNSW's: only the graphs differ

    def cagra_search(qs: np.ndarray, ef: int) -> np.ndarray:
        p = faiss.SearchParametersHNSW()
        p.efSearch = max(ef, K)
        return graph.search(qs, K, params=p)[1]

    res: dict[str, Any] = {"machine": platform.platform(), "cpus": cpus, "data": name,
                           "hnsw_build_s": hnsw_build, "cagra_build_s": cagra_build,
                           "build_speedup": hnsw_build / cagra_build, "curves": {}}  # fmt: skip
    for nq, threads in ((1, 1), (100, cpus)):
        h = curve(hnsw_search, q, truth, threads, nq)
        c = curve(cagra_search, q, truth, threads, nq)
        res["curves"][f"nq{nq}"] = {"hnsw": h, "cagra": c}
        for t in TARGETS:
            a, b = at_target(c, t), at_target(h, t)
            res[f"nq{nq}_qps_ratio_at_{t}"] = None if a is None or b is None else a / b
    OUT.mkdir(exist_ok=True)
    (OUT / "cagra.json").write_text(json.dumps(res, indent=2))
    plot(res, OUT / "cagra.png")
    print(f"{name}: build HNSW {hnsw_build:.1f} s, GPU_CAGRA (CPU twin) {cagra_build:.1f} s")
    for nq in (1, 100):
        ratios = ", ".join(f"{t}: {res[f'nq{nq}_qps_ratio_at_{t}']}" for t in TARGETS)
        print(f"batch {nq}: GPU_CAGRA / HNSW QPS at recall {ratios}")


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, cur) in zip(axes, res["curves"].items(), strict=True):
        for label, pts in (("faiss HNSW M=32", cur["hnsw"]), ("GPU_CAGRA graph", cur["cagra"])):
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], "o-", label=label)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("QPS")
        ax.set_yscale("log")
        ax.set_title(f"{res['data']}, {key} (CPU)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
