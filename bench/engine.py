"""Engine benchmark: gpuvec's MilvusClient against raw flat search and Milvus Lite, on the
same vectors in the same run.

    python bench/engine.py [--rows 100000] [--dim 384] [--queries 200] [--no-lite]

Data: ``/tmp/gpuvec-data/minilm-gcide/base.npy`` when present (real MiniLM embeddings built
by ``shared/datasets/make_dataset.py``), else SYNTHETIC Gaussian vectors (labelled so).

* insert rows/s: batches of 10k rows, durable (WAL group commit), through ``insert``;
* FLAT search QPS at batch 1 and batch 100 through ``MilvusClient.search`` (COSINE, top 10)
  vs raw faiss ``IndexFlatIP`` on the same normalised vectors (the hardware-bound baseline);
* the same inserts and searches through Milvus Lite (``pymilvus.MilvusClient("./x.db")``).

Prints a table of figures and ratios; writes ``bench/results/engine.json`` and a PNG.
Targets (issue): insert ≥ 100k rows/s; search ≥ 0.85× raw flat; ≥ 10× Milvus Lite at batch 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

OUT = Path(__file__).parent / "results"


def load_data(rows: int, dim: int, nq: int) -> tuple[np.ndarray, np.ndarray, str]:
    path = Path("/tmp/gpuvec-data/minilm-gcide")
    if (path / "base.npy").exists():
        base = np.load(path / "base.npy", mmap_mode="r")[:rows].astype(np.float32)
        queries = np.load(path / "queries.npy")[:nq].astype(np.float32)
        return base, queries, f"MiniLM-GCIDE {len(base)}x{base.shape[1]} (real)"
    rng = np.random.default_rng(0)
    base = rng.standard_normal((rows, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    return base, queries, f"SYNTHETIC Gaussian {rows}x{dim}"


def qps(fn, queries: np.ndarray, batch: int, desc: str) -> float:  # type: ignore[no-untyped-def]
    n = len(queries) - len(queries) % batch
    t0 = time.perf_counter()
    for i in tqdm(range(0, n, batch), desc=desc, leave=False):
        fn(queries[i : i + batch])
    return n / (time.perf_counter() - t0)


def rows_of(base: np.ndarray, start: int, stop: int) -> list[dict]:
    return [{"id": i, "vector": base[i]} for i in range(start, stop)]


def bench_client(client, base: np.ndarray, queries: np.ndarray, label: str) -> dict:  # type: ignore[no-untyped-def]
    client.create_collection("bench", dimension=base.shape[1], metric_type="COSINE")
    t0 = time.perf_counter()
    for s in tqdm(range(0, len(base), 10_000), desc=f"{label} insert", leave=False):
        client.insert("bench", rows_of(base, s, min(s + 10_000, len(base))))
    ins = len(base) / (time.perf_counter() - t0)
    if hasattr(client, "flush"):
        client.flush("bench")

    def search(q: np.ndarray) -> None:
        client.search("bench", data=q.tolist(), limit=10)

    search(queries[:1])  # warm-up (load, caches)
    return {
        "insert_rows_s": ins,
        "qps_b1": qps(search, queries, 1, f"{label} b1"),
        "qps_b100": qps(search, queries, 100, f"{label} b100"),
    }


def bench_faiss(base: np.ndarray, queries: np.ndarray) -> dict:
    import faiss

    norm = base / np.linalg.norm(base, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(norm)

    def search(q: np.ndarray) -> None:
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        index.search(qn, 10)

    return {
        "qps_b1": qps(search, queries, 1, "faiss b1"),
        "qps_b100": qps(search, queries, 100, "faiss b100"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-lite", action="store_true", help="skip Milvus Lite")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    base, queries, source = load_data(args.rows, args.dim, args.queries)
    res: dict = {"data": source, "cores": os.cpu_count()}

    from gpuvec import MilvusClient, ops
    from gpuvec.config import Config

    res["backend"] = ops.backend_name()
    with tempfile.TemporaryDirectory() as d:
        # the flat (brute-force) path: no AUTOINDEX builds, so every segment is scanned
        c = MilvusClient(str(Path(d) / "gpuvec"), config=Config(index_min_rows=1 << 62))
        res["gpuvec"] = bench_client(c, base, queries, "gpuvec")
        c.close()
    res["faiss_flat"] = bench_faiss(base, queries)
    if not args.no_lite:
        try:
            from pymilvus import MilvusClient as LiteClient

            with tempfile.TemporaryDirectory() as d:
                lite = LiteClient(str(Path(d) / "lite.db"))
                res["milvus_lite"] = bench_client(
                    lite, base, queries[: min(100, len(queries))], "milvus-lite"
                )
                lite.close()
        except ImportError as e:
            res["milvus_lite"] = f"skipped: {e}"

    g, f = res["gpuvec"], res["faiss_flat"]

    def vs(ours: float, base: float, name: str, invert: bool = False) -> str:
        if invert:  # a peer's figure; the ratio says how many times gpuvec's it is
            return f"{ours:,.1f}  (gpuvec = {base / ours:.1f}x this)"
        return f"{ours:,.0f}  = {ours / base:.2f}x {name} ({base:,.0f})"

    lines = [
        ("data", source),
        ("search backend", res["backend"]),
        ("gpuvec insert rows/s (10k batches, durable)", f"{g['insert_rows_s']:,.0f}"),
        (
            "gpuvec search QPS batch 1",
            vs(g["qps_b1"], f["qps_b1"], "raw faiss flat"),
        ),
        (
            "gpuvec search QPS batch 100",
            vs(g["qps_b100"], f["qps_b100"], "raw faiss flat"),
        ),
    ]
    lite = res.get("milvus_lite")
    if isinstance(lite, dict):
        lines += [
            (
                "Milvus Lite insert rows/s",
                vs(lite["insert_rows_s"], g["insert_rows_s"], "gpuvec", invert=True),
            ),
            (
                "Milvus Lite search QPS batch 1",
                vs(lite["qps_b1"], g["qps_b1"], "gpuvec", invert=True),
            ),
            (
                "Milvus Lite search QPS batch 100",
                vs(lite["qps_b100"], g["qps_b100"], "gpuvec", invert=True),
            ),
        ]
    elif lite:
        lines.append(("Milvus Lite", lite))
    width = max(len(k) for k, _ in lines)
    print("\n| measurement | result |\n|---|---|")
    for k, v in lines:
        print(f"| {k:<{width}} | {v} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "engine.json").write_text(json.dumps(res, indent=2))
    plot(res, OUT / "engine.png")
    print(f"\nwrote {OUT / 'engine.json'} and {OUT / 'engine.png'}")
    return 0


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ("gpuvec", "faiss_flat", "milvus_lite") if isinstance(res.get(s), dict)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in zip(axes, ("qps_b1", "qps_b100"), ("batch 1", "batch 100"), strict=True):
        ax.bar(systems, [res[s][key] for s in systems], color=["C0", "C1", "C2"][: len(systems)])
        ax.set_yscale("log")
        ax.set_title(f"search QPS, {title}")
    fig.suptitle(f"{res['data']} — {res['backend']}, {res['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
