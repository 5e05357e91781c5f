"""One-shot check for a rented GPU machine (finishes in about 5 minutes at most).

    python bench/gpu_check.py            # from the repository root; no install needed

Needs only numpy, cupy and pytest (faiss-cpu is used as an extra CPU baseline when it
is importable). Steps, each with a time guard:

1. device information (name, memory, SMs, clocks → FP32 and memory-bandwidth peaks);
2. ``pytest -m gpu -q tests/gpu`` in a subprocess (the CuPy path against the NumPy path);
3. what the dashboard and ``/metrics`` read of the device (NVML, CuPy memory figures);
4. a short benchmark on 1M x 128 float32 (L2, k=10): ``gpuvec.ops.knn`` on the device
   vs the NumPy path on the same data in the same run, at nq = 1, 100, 10000, with
   ratios; cuBLAS SGEMM TFLOP/s vs the FP32 (non-tensor) peak; device-memory bandwidth
   (copy, and a read-only reduction) vs the peak;
5. GPU_IVF_FLAT: gpuvec's k-means (nlist 1024) and list assignment on the device vs
   faiss-cpu's k-means on the same sample; the device list scan (``kernels/ivf_flat.cu``)
   vs faiss-cpu's IndexIVFFlat holding the same lists: recall@10 and QPS per nprobe;
6. GPU_CAGRA: the kNN graph of 200k rows on the device, CAGRA's optimisation on the host,
   the device search (``kernels/cagra_search.cu``: QPS, latency and recall@10 per itopk at
   batch 1, 100, 10,000), and the graph served by faiss-cpu (with its upper layers) vs
   faiss HNSW at recall@10 0.95.

Prints a table and writes ``bench/results/gpu_check.json`` (and ``$OUT/gpu_check.json``
when ``$OUT`` is set) after every step, so a run cut short keeps what it measured.
Without CuPy or a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuvec.ops import backend  # noqa: E402

BUDGET_S = 270.0
TEST_TIMEOUT_S = 140
N, DIM, K = 1_000_000, 128, 10
BATCHES = ((1, 300, 1), (100, 50, 100), (10_000, 3, 1000))  # nq, GPU reps, CPU nq measured
BRIEF_PEAKS = {"fp32_tflops": 51.0, "hbm_tbs": 3.35}  # the H100 reference figures
T0 = time.perf_counter()


def left() -> float:
    return BUDGET_S - (time.perf_counter() - T0)


def _attr(cp: Any, dev: int, props: dict, key: str, attr_id: int) -> float | None:
    """A device property; CUDA 13 dropped some from cudaDeviceProp, so ask the attribute."""
    if props.get(key):
        return float(props[key])
    try:
        return float(cp.cuda.runtime.deviceGetAttribute(attr_id, dev))
    except Exception:
        return None


def device_info(cp: Any) -> dict:
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    sms = int(props.get("multiProcessorCount", 0))
    major, minor = int(props.get("major", 0)), int(props.get("minor", 0))
    clock_khz = _attr(cp, dev.id, props, "clockRate", 13)  # cudaDevAttrClockRate
    mem_khz = _attr(cp, dev.id, props, "memoryClockRate", 36)  # cudaDevAttrMemoryClockRate
    bus_bits = _attr(cp, dev.id, props, "memoryBusWidth", 37)  # ...GlobalMemoryBusWidth
    lanes = 64 if (major, minor) in ((7, 0), (8, 0)) else 128  # FP32 lanes per SM
    fp32 = sms * lanes * 2 * clock_khz * 1e3 / 1e12 if clock_khz else None
    hbm = mem_khz * 1e3 * 2 * bus_bits / 8 / 1e12 if mem_khz and bus_bits else None
    free, total = cp.cuda.runtime.memGetInfo()
    return {
        "name": name,
        "compute_capability": f"{major}.{minor}",
        "sms": sms,
        "clock_mhz": clock_khz / 1e3 if clock_khz else None,
        "memory_gib": total / 2**30,
        "memory_free_gib": free / 2**30,
        "peak_fp32_tflops_computed": fp32,
        "peak_hbm_tbs_computed": hbm,
        "cupy": cp.__version__,
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cp.cuda.runtime.driverGetVersion(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "CUPY_TF32": os.environ.get("CUPY_TF32", ""),
    }


def run_tests() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/gpu"]
    t = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S
        )
        rc, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        rc, text = -1, f"TIMEOUT after {TEST_TIMEOUT_S}s\n" + str(e.stdout or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    print("\n".join(lines[-25:]))
    return {"rc": rc, "summary": lines[-1] if lines else "", "seconds": time.perf_counter() - t}


def timed(fn: Callable[[], object], reps: int, max_s: float) -> tuple[float, int]:
    """Mean seconds per call over up to ``reps`` calls (stops after ``max_s``)."""
    fn()  # warm-up (kernel compilation, memory pool)
    t = time.perf_counter()
    done = 0
    while done < reps and (done == 0 or time.perf_counter() - t < max_s):
        fn()
        done += 1
    return (time.perf_counter() - t) / done, done


def gpu_time(cp: Any, fn: Callable[[], object], reps: int) -> float:
    """Seconds per call by CUDA events (device time)."""
    fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3 / reps


def _gemm_tflops(cp: Any, m: int, n: int, kdim: int, reps: int) -> float:
    a = cp.random.standard_normal((m, kdim), dtype=cp.float32)
    b = cp.random.standard_normal((n, kdim), dtype=cp.float32)
    s = gpu_time(cp, lambda: cp.matmul(a, b.T), reps)
    return 2 * m * n * kdim / s / 1e12


def _bandwidth(cp: Any) -> tuple[float, float]:
    n = 1 << 29  # 2 GiB of float32
    src = cp.ones(n, dtype=cp.float32)
    dst = cp.empty_like(src)
    copy_s = gpu_time(cp, lambda: cp.copyto(dst, src), 10)
    read_s = gpu_time(cp, lambda: src.sum(), 10)
    return 2 * 4 * n / copy_s / 1e12, 4 * n / read_s / 1e12  # copy reads and writes


def hardware(cp: Any) -> dict:
    out = {
        "sgemm_8192_tflops": _gemm_tflops(cp, 8192, 8192, 8192, 10),
        # the knn shape: 10k queries x 128k base rows x 128 dims (5 GiB of output)
        "sgemm_knn_shape_tflops": _gemm_tflops(cp, 10_000, 1 << 17, DIM, 5),
    }
    out["copy_tbs"], out["read_tbs"] = _bandwidth(cp)
    cp.get_default_memory_pool().free_all_blocks()
    return out


def knn_bench(cp: Any) -> dict:
    from gpuvec.ops import knn, knn_numpy, sq_norms

    rng = np.random.default_rng(0)
    base = rng.standard_normal((N, DIM), dtype=np.float32)
    queries = rng.standard_normal((10_000, DIM), dtype=np.float32)
    dev = cp.asarray(base)
    dnorms, hnorms = sq_norms(dev), sq_norms(base)
    faiss_index = None
    try:
        import faiss

        faiss_index = faiss.IndexFlatL2(DIM)
        faiss_index.add(base)
    except Exception:
        pass
    rows = []
    for nq, g_reps, c_nq in BATCHES:
        if left() < 25:
            print(f"time budget: skipping nq={nq}")
            break
        q = queries[:nq]
        cur = {"i": 0}

        def gpu_call(q: np.ndarray = q, cur: dict = cur, nq: int = nq) -> object:
            cur["i"] += 1  # batch 1: a different query each call
            qq = queries[cur["i"] % 10_000 : cur["i"] % 10_000 + 1] if nq == 1 else q
            return knn(dev, qq, K, "L2", base_sq_norms=dnorms)

        g_s, _ = timed(gpu_call, g_reps, 3.0)
        cq = queries[:c_nq]
        c_s, _ = timed(lambda cq=cq: knn_numpy(base, cq, K, "L2", base_sq_norms=hnorms), 5, 2.0)
        row = {
            "nq": nq,
            "gpu_qps": nq / g_s,
            "gpu_ms_per_batch": g_s * 1e3,
            "cpu_qps": c_nq / c_s,
            "cpu_measured_nq": c_nq,
            "gpu_vs_cpu": (nq / g_s) / (c_nq / c_s),
        }
        if faiss_index is not None and left() > 30:
            f_s, _ = timed(lambda cq=cq: faiss_index.search(cq, K), 3, 2.0)
            row["faiss_cpu_qps"] = c_nq / f_s
            row["gpu_vs_faiss_cpu"] = row["gpu_qps"] / row["faiss_cpu_qps"]
        check = min(nq, 100)
        gd, gi = knn(dev, queries[:check], K, "L2", base_sq_norms=dnorms)
        cd, ci = knn_numpy(base, queries[:check], K, "L2", base_sq_norms=hnorms)
        row["recall_vs_cpu"] = float(
            np.mean([len(set(a) & set(b)) / K for a, b in zip(gi, ci, strict=True)])
        )
        row["max_dist_diff"] = float(np.max(np.abs(gd - cd)))
        if nq == 1:
            row["effective_tbs"] = N * DIM * 4 / g_s / 1e12  # base read once per query
        else:
            row["effective_tflops"] = 2 * nq * N * DIM / g_s / 1e12
        rows.append(row)
        print(
            f"  nq={nq:>5}: gpu {row['gpu_qps']:12.1f} qps ({row['gpu_ms_per_batch']:.3f} ms/batch)"
            f" | cpu {row['cpu_qps']:10.1f} qps | gpu/cpu {row['gpu_vs_cpu']:8.1f}x"
            f" | recall vs cpu {row['recall_vs_cpu']:.4f}"
        )
    return {"n": N, "dim": DIM, "k": K, "metric": "L2", "rows": rows}


def observability() -> dict:
    """What the dashboard and /metrics show of this GPU: NVML figures (when ``pynvml`` is
    importable) and the embedded page's device state (CuPy memory figures)."""
    out: dict = {}
    try:
        from gpuvec.observability.nvml import gpus

        out["nvml"], out["nvml_reason"] = gpus()
    except Exception as e:  # reported, not fatal
        out["nvml_error"] = f"{type(e).__name__}: {e}"
    try:
        from gpuvec.observability.snapshot import device_state

        out["device_state"] = device_state()
    except Exception as e:  # e.g. dask not carried
        out["device_state_error"] = f"{type(e).__name__}: {e}"
    return out


def ivf_build_bench(cp: Any) -> dict:
    """GPU_IVF_FLAT's build on the device — gpuvec's balanced k-means (nlist 1024, 10
    iterations, 256 points per centroid) and the list assignment of every row — against
    faiss-cpu's k-means (all host cores) on the same sample, clustered 1M x 128 data made
    on the device from a seed."""
    from gpuvec.ops.kmeans import assign, kmeans

    nlist, iters = 1024, 10
    rs = cp.random.RandomState(7)
    centers = rs.standard_normal((4096, DIM), dtype=cp.float32) * 3
    x = centers[rs.randint(0, 4096, N)] + rs.standard_normal((N, DIM), dtype=cp.float32)
    out: dict = {"rows": N, "dim": DIM, "nlist": nlist, "iters": iters}
    kmeans(x[:50_000], 64, iters=2)  # compile and warm up
    cp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    km = kmeans(x, nlist, iters=iters)
    cp.cuda.Device().synchronize()
    out["gpu_kmeans_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = assign(x, km.centroids)
    cp.cuda.Device().synchronize()
    out["gpu_assign_s"] = time.perf_counter() - t0
    out["list_sizes_min_max"] = [int(km.sizes.min()), int(km.sizes.max())]
    try:
        out["search"] = ivf_search_bench(cp, x, km.centroids, labels)
    except Exception as e:  # the build figures stand on their own
        out["search"] = {"error": f"{type(e).__name__}: {e}"[:500]}
    del labels
    try:
        import faiss

        host = cp.asnumpy(x[: 256 * nlist])
        ref = faiss.Kmeans(DIM, nlist, niter=iters, seed=1, max_points_per_centroid=256)
        t0 = time.perf_counter()
        ref.train(host)
        out["faiss_cpu_kmeans_s"] = time.perf_counter() - t0
        out["faiss_threads"] = faiss.omp_get_max_threads()
        out["kmeans_ratio_vs_faiss_cpu"] = out["faiss_cpu_kmeans_s"] / out["gpu_kmeans_s"]
    except ImportError:
        out["faiss_cpu_kmeans_s"] = None
    return out


def ivf_search_bench(cp: Any, x: Any, centroids: Any, labels: Any) -> dict:
    """GPU_IVF_FLAT search on the device (``kernels/ivf_flat.cu``) against faiss-cpu's
    IndexIVFFlat holding the very same centroids and lists (so equal nprobe = equal
    recall), recall@10 against exact device brute force, QPS at nq 1 / 100 / 10000."""
    from gpuvec.index.ivf_lists import IvfLists
    from gpuvec.ops import knn
    from gpuvec.ops.ivf_gpu import DeviceIvfFlat

    host = cp.asnumpy(x)
    lists = IvfLists.fill(host, cp.asnumpy(centroids), "L2", labels=cp.asnumpy(labels))
    dev = DeviceIvfFlat.from_lists(lists)
    rs = cp.random.RandomState(11)
    qd = x[rs.randint(0, N, 10_000)] + 0.1 * rs.standard_normal((10_000, DIM), dtype=cp.float32)
    qh = cp.asnumpy(qd)
    _, truth = knn(x, qd[:1000], K, "L2")
    truth = np.asarray(truth)

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth, strict=True)]))

    out: dict = {"nlist": lists.nlist, "rows": lists.ntotal, "by_nprobe": {}}
    index = lists.to_faiss()
    try:
        import faiss

        out["faiss_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        faiss = None
    dev.search(qh[:100], K, 8)  # compile
    for nprobe in (8, 16, 32, 64):
        if left() < 25:
            out["cut_short"] = f"stopped before nprobe {nprobe}: time budget"
            break
        row: dict = {"recall_at_10": recall(dev.search(qh[:1000], K, nprobe)[1])}
        for nq, reps in ((1, 50), (100, 10), (10_000, 2)):
            cp.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for r in range(reps):
                a = (r * nq) % max(1, 10_000 - nq)
                dev.search(qh[a : a + nq], K, nprobe)
            dt = (time.perf_counter() - t0) / reps
            row[f"gpu_qps_nq{nq}"] = nq / dt
        if faiss is not None:
            index.nprobe = nprobe
            t0 = time.perf_counter()
            _, fi = index.search(qh[:2000], K)
            row["faiss_cpu_qps_nq2000"] = 2000 / (time.perf_counter() - t0)
            row["faiss_recall_at_10"] = recall(fi[:1000])
            row["gpu_vs_faiss_cpu_batch"] = row["gpu_qps_nq10000"] / row["faiss_cpu_qps_nq2000"]
        out["by_nprobe"][nprobe] = row
        print(f"  nprobe {nprobe}: {json.dumps(row)}")
    return out


def cagra_bench(n: int = 200_000, dim: int = DIM) -> dict:
    """GPU_CAGRA's build on this host: the exact kNN graph of ``n`` clustered rows on the
    device (intermediate degree 128) against the host's exact blocked brute force on a
    slice, then CAGRA's optimisation (host) to degree 64, and the faiss-cpu serving of the
    graph vs faiss HNSW (M = 32) QPS at recall@10 >= 0.95 on all cores."""
    from gpuvec.index import cagra_graph
    from gpuvec.index.cagra import add_hierarchy, to_faiss

    rng = np.random.default_rng(0)
    c = rng.normal(size=(1000, dim)).astype(np.float32) * 0.7
    x = (c[rng.integers(0, 1000, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    out: dict = {"rows": n, "dim": dim, "graph_backend": backend.backend_name()}
    t0 = time.perf_counter()
    knn = cagra_graph.knn_graph(x, 128, "L2")
    out["knn_graph_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = cagra_graph.optimize(knn, 64)
    out["optimize_host_s"] = time.perf_counter() - t0
    if left() < 20:
        return out
    import faiss  # type: ignore[import-not-found]

    q = (c[rng.integers(0, 1000, 1000)] + rng.normal(size=(1000, dim))).astype(np.float32)
    exact = faiss.IndexFlatL2(dim)
    exact.add(x)
    truth = exact.search(q, 10)[1]
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, 32)
    hnsw.hnsw.efConstruction = 128
    hnsw.add(x)
    out["faiss_hnsw_build_s"] = time.perf_counter() - t0
    out["device_search"] = _cagra_device_search(x, q, graph, truth)
    served = to_faiss(x, graph, "L2")
    add_hierarchy(served, x, "L2")  # as the index serves it
    for name, index in (("cagra_graph", served), ("faiss_hnsw", hnsw)):
        for ef in (16, 32, 64, 128, 256):
            p = faiss.SearchParametersHNSW()
            p.efSearch = ef
            t0 = time.perf_counter()
            got = index.search(q, 10, params=p)[1]
            qps = len(q) / (time.perf_counter() - t0)
            pairs = zip(got, truth, strict=True)
            rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in pairs]))
            if rec >= 0.95:
                out[f"{name}_qps_at_0.95"] = qps
                out[f"{name}_ef_at_0.95"] = ef
                break
    return out


def _cagra_device_search(x: np.ndarray, q: np.ndarray, graph: np.ndarray,
                         truth: np.ndarray) -> list[dict]:
    """``kernels/cagra_search.cu`` on the graph: QPS and recall@10 per itopk at batch 1,
    100 and (queries tiled) 10,000."""
    from gpuvec.index import cagra_walk
    from gpuvec.ops.cagra_gpu import DeviceCagra

    dev = DeviceCagra(x, graph, "L2")
    rows = []
    for itopk in (32, 64, 128, 256):
        if left() < 15:
            break
        for nq in (1, 100, 10_000):
            qs = np.tile(q, (max(1, nq // len(q) + 1), 1))[:nq]
            seeds = cagra_walk.start_rows(0, nq, max(itopk, graph.shape[1]), len(x))
            dev.search(qs[:1], 10, seeds[:1], itopk_size=itopk)  # compile / warm
            reps = 50 if nq == 1 else 3
            t0 = time.perf_counter()
            for _ in range(reps):
                _, got = dev.search(qs, 10, seeds, itopk_size=itopk)
            dt = (time.perf_counter() - t0) / reps
            m = min(nq, len(q))
            pairs = zip(got[:m], truth[:m], strict=True)
            rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in pairs]))
            rows.append({"itopk": itopk, "nq": nq, "qps": nq / dt, "latency_ms": dt * 1e3,
                         "recall": rec})  # fmt: skip
    return rows


def save(doc: dict) -> Path:
    """Write what is known so far (after every step: a timed-out run keeps its results)."""
    doc["seconds"] = time.perf_counter() - T0
    text = json.dumps(doc, indent=2, default=str) + "\n"
    out = ROOT / "bench" / "results" / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)
    return out


def main() -> int:
    reason = backend.gpu_unavailable_reason()
    if reason is not None:
        print(f"no GPU: {reason}. Nothing to check on this machine.")
        return 0
    import cupy as cp

    doc: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "brief_peaks": BRIEF_PEAKS}
    info = device_info(cp)
    doc["device"] = info
    doc["backend"] = backend.backend_name()
    print("device:")
    for key, val in info.items():
        print(f"  {key:28s} {val}")
    save(doc)
    doc["observability"] = observability()
    print(f"observability: {json.dumps(doc['observability'], default=str)[:600]}")
    print(f"\n[{time.perf_counter() - T0:6.1f}s] pytest -m gpu tests/gpu")
    doc["tests"] = run_tests()
    save(doc)
    print(f"\n[{time.perf_counter() - T0:6.1f}s] hardware limits")
    if left() > 60:
        doc["hardware"] = hw = hardware(cp)
        peak_f = info["peak_fp32_tflops_computed"] or BRIEF_PEAKS["fp32_tflops"]
        peak_b = info["peak_hbm_tbs_computed"] or BRIEF_PEAKS["hbm_tbs"]
        for key in ("sgemm_8192_tflops", "sgemm_knn_shape_tflops"):
            print(f"  {key:24s} {hw[key]:7.2f} TFLOP/s = {hw[key] / peak_f:6.1%} of {peak_f:.1f}")
        for key in ("copy_tbs", "read_tbs"):
            print(f"  {key:24s} {hw[key]:7.3f} TB/s    = {hw[key] / peak_b:6.1%} of {peak_b:.2f}")
        save(doc)
    print(f"\n[{time.perf_counter() - T0:6.1f}s] knn {N}x{DIM}, k={K}, L2")
    if left() > 40:
        doc["knn"] = knn_bench(cp)
        save(doc)
    print(f"\n[{time.perf_counter() - T0:6.1f}s] GPU_IVF_FLAT build: k-means + assignment")
    if left() > 40:
        try:
            doc["ivf_build"] = ivf_build_bench(cp)
        except Exception as e:  # a failure here must not hide the figures above
            doc["ivf_build"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        print(f"  {json.dumps(doc['ivf_build'], default=str)}")
    save(doc)
    print(f"\n[{time.perf_counter() - T0:6.1f}s] GPU_CAGRA: kNN graph on the device")
    if left() > 30:
        try:
            doc["cagra"] = cagra_bench()
        except Exception as e:  # a failure here must not hide the figures above
            doc["cagra"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        print(f"  {json.dumps(doc['cagra'], default=str)}")
    out = save(doc)
    print(f"\nwrote {out} in {doc['seconds']:.1f}s; tests: {doc['tests']['summary']}")
    return 0 if doc["tests"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
