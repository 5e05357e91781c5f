"""Server benchmark: search through unmodified pymilvus against ``gpuvec serve`` and against
Milvus Lite's server, on the same real vectors, in one run.

    python bench/server.py [--rows 100000] [--queries 300] [--index HNSW] [--no-lite]

Both servers run in their own process and pymilvus talks gRPC to each (Milvus Lite's
client starts its server process behind a local socket). Each gets the same rows (GloVe-50
from ``/tmp/gpuvec-data/glove50``, built by ``shared/datasets/make_dataset.py``; random
vectors if absent), inserted through pymilvus in 10k-row batches, the same index
(HNSW M 16 efConstruction 100, ef 64; or IVF_FLAT nlist 1024, nprobe 32), then:

* batch 1: ``--queries`` single-vector searches, one client, sequential → QPS, p50, p99;
* batch 100: the same queries in batches of 100 → queries/s and per-call p50/p99;
* recall@10 of both against the exact top 10 (so the speed is at equal quality);
* insert throughput (rows/s through pymilvus) and index build + load time.

Prints a markdown table, writes ``bench/results/server.json`` and ``server.png``.
Target (issue): gpuvec ≥ 10× Milvus Lite's QPS at batch 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"
K = 10


def _load(rows: int, queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    folder = Path(os.environ.get("GPUVEC_DATA", "/tmp/gpuvec-data")) / "glove50"
    if (folder / "base.npy").exists():
        base = np.load(folder / "base.npy", mmap_mode="r")[:rows].astype(np.float32)
        q = np.load(folder / "queries.npy")[:queries].astype(np.float32)
        return base, q, f"glove50 {len(base)}x{base.shape[1]} (real)"
    rng = np.random.default_rng(0)
    base = rng.standard_normal((rows, 50)).astype(np.float32)
    return base, rng.standard_normal((queries, 50)).astype(np.float32), "random 50-d"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_gpuvec(data: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, GPUVEC_DASHBOARD_ADDRESS="")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpuvec", "serve", "--data", data, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("gpuvec serve exited during start") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gpuvec serve did not open its port")


def _exact(base: np.ndarray, q: np.ndarray) -> np.ndarray:
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qq @ b.T), axis=1)[:, :K]


def _fill(client: Any, base: np.ndarray, itype: str) -> dict[str, float]:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
    client.create_collection("b", schema=schema, consistency_level="Bounded")
    t0 = time.perf_counter()
    for s in tqdm(range(0, len(base), 10_000), desc="insert", leave=False):
        chunk = base[s : s + 10_000]
        client.insert("b", [{"id": s + i, "vector": v} for i, v in enumerate(chunk.tolist())])
    client.flush("b")
    insert_s = time.perf_counter() - t0
    idx = client.prepare_index_params()
    params = {"M": 16, "efConstruction": 100} if itype == "HNSW" else {"nlist": 1024}
    idx.add_index("vector", index_type=itype, metric_type="COSINE", params=params)
    t0 = time.perf_counter()
    client.create_index("b", idx)
    client.load_collection("b")
    return {"insert_rows_per_s": len(base) / insert_s, "build_load_s": time.perf_counter() - t0}


def _search(client: Any, q: np.ndarray, batch: int, sp: dict) -> tuple[np.ndarray, list[float]]:
    ids = np.full((len(q), K), -1, np.int64)
    lat = []
    for s in range(0, len(q), batch):
        t0 = time.perf_counter()
        res = client.search("b", q[s : s + batch].tolist(), limit=K, search_params=sp)
        lat.append(time.perf_counter() - t0)
        for i, hits in enumerate(res):
            got = [h["id"] for h in hits][:K]
            ids[s + i, : len(got)] = got
    return ids, lat


def _measure(client: Any, q: np.ndarray, gt: np.ndarray, sp: dict, label: str) -> dict:
    out: dict[str, Any] = {}
    _search(client, q[:20], 1, sp)  # warm up
    for batch in (1, 100):
        best = None
        for _ in range(2):
            ids, lat = _search(client, q, batch, sp)
            total = sum(lat)
            if best is None or total < best[0]:
                best = (total, lat, ids)
        assert best is not None
        total, lat, ids = best
        arr = np.array(lat) * 1e3
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt, strict=True)]))
        out[f"b{batch}"] = {
            "qps": len(q) / total,
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "recall": recall,
        }
        print(f"  {label} batch {batch}: {out[f'b{batch}']}", flush=True)
    return out


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ("gpuvec", "milvus-lite") if s in res["systems"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "qps", "QPS (higher is better)"),
                           (axes[1], "p99_ms", "p99 latency ms (lower is better)")):  # fmt: skip
        x = np.arange(2)
        for i, s in enumerate(systems):
            vals = [res["systems"][s][f"b{b}"][key] for b in (1, 100)]
            ax.bar(x + i * 0.38, vals, 0.38, label=s)
        ax.set_xticks(x + 0.19, ["batch 1", "batch 100"])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"search through pymilvus: {res['data']}, {res['index']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--index", default="HNSW", choices=["HNSW", "IVF_FLAT"])
    ap.add_argument("--no-lite", action="store_true")
    args = ap.parse_args()
    from pymilvus import MilvusClient

    base, q, desc = _load(args.rows, args.queries)
    gt = _exact(base, q)
    sp = {"metric_type": "COSINE",
          "params": {"ef": 64} if args.index == "HNSW" else {"nprobe": 32}}  # fmt: skip
    res: dict[str, Any] = {"data": desc, "index": args.index, "search_params": sp,
                           "queries": len(q), "systems": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        proc, uri = _start_gpuvec(str(Path(tmp) / "gpuvec"))
        try:
            client = MilvusClient(uri=uri, timeout=600)
            build = _fill(client, base, args.index)
            res["systems"]["gpuvec"] = {**build, **_measure(client, q, gt, sp, "gpuvec")}
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        if not args.no_lite:
            lite = MilvusClient(str(Path(tmp) / "lite.db"))
            build = _fill(lite, base, args.index)
            res["systems"]["milvus-lite"] = {**build, **_measure(lite, q, gt, sp, "milvus-lite")}
            lite.close()
    print(f"\n{desc}, {args.index} {sp['params']}, {len(q)} queries\n")
    print("| system | batch | QPS | p50 ms | p99 ms | recall@10 |")
    print("|---|---|---|---|---|---|")
    for name, r in res["systems"].items():
        for b in (1, 100):
            m = r[f"b{b}"]
            print(f"| {name} | {b} | {m['qps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
                  f"| {m['recall']:.3f} |")  # fmt: skip
    if "milvus-lite" in res["systems"]:
        g, m = res["systems"]["gpuvec"], res["systems"]["milvus-lite"]
        res["ratio_b1"] = g["b1"]["qps"] / m["b1"]["qps"]
        res["ratio_b100"] = g["b100"]["qps"] / m["b100"]["qps"]
        print(f"\ngpuvec / Milvus Lite QPS: batch 1 {res['ratio_b1']:.1f}× (target ≥ 10×), "
              f"batch 100 {res['ratio_b100']:.1f}×")  # fmt: skip
        for name, r in res["systems"].items():
            print(f"{name}: insert {r['insert_rows_per_s']:,.0f} rows/s, "
                  f"index build + load {r['build_load_s']:.1f} s")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(res, indent=2))
    _plot(res, RESULTS / "server.png")
    print(f"wrote {RESULTS / 'server.json'} and {RESULTS / 'server.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
