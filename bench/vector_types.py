"""Vector-type benchmark: BINARY_VECTOR search (gpuvec's HAMMING / JACCARD scan and
BIN_IVF_FLAT) against faiss-cpu's binary indexes on the same data, and FLOAT16 segments
against FLOAT32 ones (host bytes, device bytes, exact-search time), in one process.

    python bench/vector_types.py [--rows 200000] [--bits 256] [--dim 128] [--repeat 5]

Baselines: faiss ``IndexBinaryFlat`` (HAMMING, exact: results must be equal distances) for
the BIN_FLAT index and for :func:`gpuvec.ops.binary_knn` (the scan growing rows, filtered
searches and JACCARD use), and
``IndexBinaryIVF`` with the same nlist / nprobe (recall@10 against the exact answer is
reported for both IVFs); for FLOAT16, the same rows as FLOAT32 in a segment of the same
code. Writes ``bench/results/vector_types.json`` and ``bench/results/vector_types.png``.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of

from gpuvec import ops
from gpuvec.index.binary import BinaryIndex
from gpuvec.index.threads import faiss_module
from gpuvec.query.segdata import SegmentData

OUT = Path(__file__).parent / "results"
K = 10


def recall(got: np.ndarray, want: np.ndarray) -> float:
    pairs = zip(got, want, strict=True)
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in pairs]))


def binary_part(n: int, bits: int, repeat: int) -> dict[str, Any]:
    faiss = faiss_module()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 2, (256, bits)).astype(bool)
    flips = rng.random((n, bits)) < 0.12
    base = np.packbits(centres[rng.integers(0, 256, n)] ^ flips, axis=1)
    q = np.packbits(centres[rng.integers(0, 256, 100)] ^ (rng.random((100, bits)) < 0.12), axis=1)
    flat = faiss.IndexBinaryFlat(bits)
    flat.add(base)
    out: dict[str, Any] = {"rows": n, "bits": bits}
    bin_flat = BinaryIndex.build("BIN_FLAT", base, "HAMMING")
    for nq in (1, 100):
        qs = q[:nq]
        index_s = best_of(lambda qs=qs: bin_flat.search(qs, K), repeat)
        ours = best_of(lambda qs=qs: ops.binary_knn(base, qs, K, "HAMMING"), repeat)
        raw = best_of(lambda qs=qs: flat.search(qs, K), repeat)
        d_ours, _ = ops.binary_knn(base, qs, K, "HAMMING")
        d_raw, _ = flat.search(qs, K)
        assert np.array_equal(d_ours, d_raw.astype(np.float32)), "HAMMING distances differ"
        jac = best_of(lambda qs=qs: ops.binary_knn(base, qs, K, "JACCARD"), repeat)
        out[f"flat_nq{nq}"] = {"scan_hamming_s": ours, "faiss_hamming_s": raw,
                               "scan_ratio_vs_faiss": raw / ours, "scan_jaccard_s": jac,
                               "bin_flat_index_s": index_s, "bin_flat_ratio_vs_faiss":
                               raw / index_s}  # fmt: skip
    _, truth = flat.search(q, K)
    nlist = 1024
    t0 = time.perf_counter()
    ours_ix = BinaryIndex.build("BIN_IVF_FLAT", base, "HAMMING", {"nlist": nlist})
    build_ours = time.perf_counter() - t0
    quant = faiss.IndexBinaryFlat(bits)
    ivf = faiss.IndexBinaryIVF(quant, bits, nlist)
    t0 = time.perf_counter()
    ivf.train(base)
    ivf.add(base)
    build_raw = time.perf_counter() - t0
    rows = []
    for nprobe in tqdm((4, 16, 64), desc="BIN_IVF_FLAT nprobe"):
        ivf.nprobe = nprobe
        t_ours = best_of(lambda p=nprobe: ours_ix.search(q, K, {"nprobe": p}), repeat)
        t_raw = best_of(lambda: ivf.search(q, K), repeat)
        r_ours = recall(ours_ix.search(q, K, {"nprobe": nprobe})[1], truth)
        r_raw = recall(ivf.search(q, K)[1], truth)
        rows.append({"nprobe": nprobe, "gpuvec_qps": 100 / t_ours, "faiss_qps": 100 / t_raw,
                     "gpuvec_recall": r_ours, "faiss_recall": r_raw})
    out["ivf"] = {"nlist": nlist, "build_gpuvec_s": build_ours, "build_faiss_s": build_raw,
                  "rows": rows}
    return out


def fp16_part(n: int, dim: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal((100, dim)).astype(np.float32)
    out: dict[str, Any] = {"rows": n, "dim": dim}
    for name, mat in (("float32", x), ("float16", x.astype(np.float16))):
        seg = SegmentData(1, 0, {"v": dim}, True, capacity=n, vector_dtypes={"v": mat.dtype})
        seg.append(np.arange(n), np.ones(n, np.uint64), {"v": mat}, pa.table({"id": np.arange(n)}),
                   take=True)  # fmt: skip
        seg.sealed = True
        seg.search("v", q[:1], K, "L2", read_ts=2)  # the converted copy and norms, once
        row = {"host_vector_bytes": int(seg.vectors("v").nbytes),
               "device_bytes": seg.device_bytes()}
        for nq in (1, 100):
            row[f"search_nq{nq}_s"] = best_of(
                lambda nq=nq, seg=seg: seg.search("v", q[:nq], K, "L2", read_ts=2), repeat)
        out[name] = row
    f32, f16 = out["float32"], out["float16"]
    out["device_bytes_ratio"] = f16["device_bytes"] / f32["device_bytes"]
    out["nq1_time_ratio"] = f32["search_nq1_s"] / f16["search_nq1_s"]
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    rows = res["binary"]["ivf"]["rows"]
    a.plot([r["gpuvec_recall"] for r in rows], [r["gpuvec_qps"] for r in rows], "o-",
           label="gpuvec BIN_IVF_FLAT")
    a.plot([r["faiss_recall"] for r in rows], [r["faiss_qps"] for r in rows], "s--",
           label="faiss IndexBinaryIVF")
    a.set_xlabel("recall@10")
    a.set_ylabel("QPS (100 queries, 1 thread)")
    a.set_title(f"binary {res['binary']['bits']} bits, {res['binary']['rows']:,} rows")
    a.legend()
    f = res["fp16"]
    b.bar(["fp32 device", "fp16 device"], [f["float32"]["device_bytes"] / 2**20,
                                         f["float16"]["device_bytes"] / 2**20])
    b.set_ylabel("MiB")
    b.set_title("segment on the GPU: bytes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--bits", type=int, default=256)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    res = {"machine": platform.platform(), "cpus": os.cpu_count(),
           "binary": binary_part(args.rows, args.bits, args.repeat),
           "fp16": fp16_part(args.rows, args.dim, args.repeat)}  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "vector_types.json").write_text(json.dumps(res, indent=2))
    plot(res, OUT / "vector_types.png")
    b, f = res["binary"], res["fp16"]
    for nq in (1, 100):
        r = b[f"flat_nq{nq}"]
        print(f"nq={nq}: BIN_FLAT index / faiss speed {r['bin_flat_ratio_vs_faiss']:.2f}x; "
              f"ops.binary_knn scan (growing rows, filters, JACCARD) / faiss "
              f"{r['scan_ratio_vs_faiss']:.2f}x")
    for r in b["ivf"]["rows"]:
        print(f"BIN_IVF_FLAT nprobe={r['nprobe']}: gpuvec {r['gpuvec_qps']:.0f} QPS "
              f"r={r['gpuvec_recall']:.3f} | faiss {r['faiss_qps']:.0f} QPS "
              f"r={r['faiss_recall']:.3f}")
    print(f"fp16 device bytes / fp32: {f['device_bytes_ratio']:.3f}; "
          f"exact search nq=1 fp32/fp16 time {f['nq1_time_ratio']:.2f}x")


if __name__ == "__main__":
    main()
