"""CPU brute-force k-NN: gpuvec.ops.knn next to raw faiss and naive NumPy, same data, same run.

    python bench/knn.py [--dataset NAME] [--n 100000] [--dim 384] [--k 10] [--metric L2]
                        [--batches 1,100] [--seconds 3] [--rounds 3]

Data: ``/tmp/gpuvec-data/<NAME>/base.npy`` (and ``query.npy`` when present) if that file
exists, else ``n × dim`` standard-normal float32. For each batch size it measures, in
interleaved rounds (this machine is shared; the best round of each contender counts):

* ``gpuvec`` — :func:`gpuvec.ops.knn` on the NumPy base (squared norms kept, as a segment
  does);
* ``faiss`` — raw ``faiss.IndexFlatL2``/``IndexFlatIP`` (``OMP_WAIT_POLICY=PASSIVE``),
  each round with 1 OpenMP thread and with all threads, the better one counting;
* ``numpy`` — naive brute force: full distance matrix by one GEMM, ``argpartition`` over
  it, sort of the k.

Prints QPS and the ratios gpuvec/faiss (target ≥ 0.85) and gpuvec/numpy, checks that
gpuvec's ids agree with faiss's (recall@k), and writes ``bench/results/knn.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads libgomp

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuvec.ops import knn, sq_norms  # noqa: E402

OUT = ROOT / "bench" / "results"
DATA = Path("/tmp/gpuvec-data")


def load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.dataset and (DATA / args.dataset / "base.npy").exists():
        d = DATA / args.dataset
        base = np.ascontiguousarray(np.load(d / "base.npy", mmap_mode="r"), dtype=np.float32)
        qf = d / "query.npy"
        if qf.exists():
            queries = np.ascontiguousarray(np.load(qf), dtype=np.float32)
        else:
            pick = np.random.default_rng(7).choice(base.shape[0], 1000, replace=False)
            queries = base[pick] + np.float32(0.01)
        return base, queries, f"{args.dataset} ({d / 'base.npy'})"
    rng = np.random.default_rng(42)
    base = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((2000, args.dim), dtype=np.float32)
    return base, queries, f"random normal {args.n}x{args.dim}"


def naive_numpy(base: np.ndarray, norms: np.ndarray, q: np.ndarray, k: int, metric: str):
    scores = q @ base.T
    if metric == "L2":
        dist = norms[None, :] - 2 * scores + np.einsum("ij,ij->i", q, q)[:, None]
    else:
        dist = -scores
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dist, part, 1)
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, 1), np.take_along_axis(part, order, 1)


def qps(fn: Callable[[np.ndarray], object], queries: np.ndarray, nq: int, secs: float) -> float:
    """Queries per second of ``fn`` over distinct batches of ``nq`` for about ``secs``."""
    nb = max(1, queries.shape[0] // nq)
    fn(queries[:nq])  # warm-up
    done = 0
    t0 = time.perf_counter()
    while True:
        j = (done // nq) % nb
        fn(queries[j * nq : (j + 1) * nq])
        done += nq
        el = time.perf_counter() - t0
        if el >= secs and done >= 3 * nq:
            return done / el


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.environ.get("GPUVEC_BENCH_DATASET", ""))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="L2", choices=["L2", "IP"])
    ap.add_argument("--batches", default="1,100")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import faiss

    base, queries, label = load(args)
    n, dim = base.shape
    k, metric = args.k, args.metric
    norms = sq_norms(base)
    index = faiss.IndexFlatL2(dim) if metric == "L2" else faiss.IndexFlatIP(dim)
    index.add(base)
    threads = faiss.omp_get_max_threads()
    print(f"data: {label}; k={k} metric={metric}; cores={os.cpu_count()} faiss {faiss.__version__}")

    def faiss_with(t: int) -> Callable[[np.ndarray], object]:
        def run(q: np.ndarray) -> object:
            faiss.omp_set_num_threads(t)
            return index.search(q, k)

        return run

    contenders: dict[str, list[Callable[[np.ndarray], object]]] = {
        "gpuvec": [lambda q: knn(base, q, k, metric, base_sq_norms=norms)],
        "faiss": [faiss_with(1), faiss_with(threads)],
        "numpy": [lambda q: naive_numpy(base, norms, q, k, metric)],
    }
    results = []
    for nq in [int(b) for b in args.batches.split(",")]:
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, fns in contenders.items():
                for fn in fns:
                    best[name] = max(best.get(name, 0.0), qps(fn, queries, nq, args.seconds))
        faiss.omp_set_num_threads(threads)
        q = queries[:nq]
        _, gi = knn(base, q, k, metric, base_sq_norms=norms)
        _, fi = index.search(q, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(gi, fi, strict=True)]))
        row = {
            "batch": nq,
            "qps": best,
            "gpuvec_vs_faiss": best["gpuvec"] / best["faiss"],
            "gpuvec_vs_numpy": best["gpuvec"] / best["numpy"],
            "recall_vs_faiss": recall,
        }
        results.append(row)
        print(
            f"batch {nq:>5}: gpuvec {best['gpuvec']:9.1f} qps | faiss {best['faiss']:9.1f} | "
            f"numpy {best['numpy']:9.1f} | gpuvec/faiss {row['gpuvec_vs_faiss']:.2f}x "
            f"(target >= 0.85) | gpuvec/numpy {row['gpuvec_vs_numpy']:.2f}x | "
            f"recall@{k} vs faiss {recall:.4f}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {
        "data": label,
        "n": n,
        "dim": dim,
        "k": k,
        "metric": metric,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "baseline": "raw faiss IndexFlat (best of 1 and all OpenMP threads), same process",
        "results": results,
    }
    (OUT / "knn.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT / 'knn.json'}")


if __name__ == "__main__":
    main()
