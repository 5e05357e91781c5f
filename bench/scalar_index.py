"""Scalar-index benchmark: a filter over a sealed segment's column through its scalar index
(:mod:`gpuvec.index.scalar`) against the scan of the same column, in this process, one
core, and against the bare NumPy expression as the raw baseline.

    python bench/scalar_index.py [--rows 2000000] [--repeat 5]

Columns: ``a`` int64 with 1,000 distinct values, ``s`` varchar with 100, ``b`` bool, ``j``
JSON ``{"price": <int 0..999>}`` (every 10th row's price a string) with a path index on
``j["price"]`` (DOUBLE). Filters from very to not selective. The JSON scan runs on a warm
per-segment JSON cache (documents decoded once), as a query node's does. Each mask is
checked equal to the scan's (and the bare NumPy baseline's) before it is timed.
Writes ``bench/results/scalar_index.json`` and ``bench/results/scalar_index.png``.
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

from gpuvec.expr import JsonCache, compile_filter
from gpuvec.expr.evaluate import Evaluator
from gpuvec.index.scalar import ScalarIndex
from gpuvec.schema import CollectionSchema, DataType

OUT = Path(__file__).parent / "results"
FILTERS = {  # filter → (raw NumPy baseline, index type of its column)
    "a == 17": (lambda d: d["a"] == 17, "STL_SORT"),
    "a in [1, 2, 3, 4, 5]": (lambda d: np.isin(d["a"], [1, 2, 3, 4, 5]), "STL_SORT"),
    "100 <= a < 110": (lambda d: (d["a"] >= 100) & (d["a"] < 110), "STL_SORT"),
    "a < 500": (lambda d: d["a"] < 500, "STL_SORT"),
    's == "s42"': (lambda d: d["s"] == "s42", "INVERTED"),
    "b == true": (lambda d: d["b"], "BITMAP"),
    'j["price"] == 17': (lambda d: d["price"] == 17, "INVERTED"),
    '100 <= j["price"] < 110': (lambda d: (d["price"] >= 100) & (d["price"] < 110), "INVERTED"),
}
JSON_INDEX = {"json_path": 'j["price"]', "json_cast_type": "DOUBLE"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    n = args.rows
    rng = np.random.default_rng(0)
    raw = {"a": rng.integers(0, 1000, n), "s": np.array([f"s{v}" for v in rng.integers(0, 100, n)]),
           "b": rng.random(n) < 0.3}  # fmt: skip
    price = rng.integers(0, 1000, n)
    texts = [f'{{"price": "{p}"}}' if i % 10 == 0 else f'{{"price": {p}}}'
             for i, p in enumerate(price.tolist())]  # fmt: skip
    raw["price"] = np.where(np.arange(n) % 10 == 0, -1, price)  # string prices match nothing
    table = pa.table({"a": raw["a"], "s": pa.array(raw["s"].tolist()), "b": raw["b"],
                      "j": pa.array(texts, pa.string())})  # fmt: skip
    sch = CollectionSchema()
    sch.add_field("id", DataType.INT64, is_primary=True)
    sch.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    sch.add_field("a", DataType.INT64)
    sch.add_field("s", DataType.VARCHAR, max_length=8)
    sch.add_field("b", DataType.BOOL)
    sch.add_field("j", DataType.JSON)
    res: dict[str, Any] = {"rows": n, "machine": f"{os.cpu_count()} cores, {platform.machine()}",
                           "build_s": {}, "filters": {}}  # fmt: skip
    built: dict[str, ScalarIndex] = {}
    for name, kind in (("a", "STL_SORT"), ("s", "INVERTED"), ("b", "BITMAP"), ("j", "INVERTED")):
        t0 = time.perf_counter()
        params = JSON_INDEX if name == "j" else None
        built[name] = ScalarIndex.build(kind, sch.field(name), table.column(name), params)
        res["build_s"][f"{name} ({kind})"] = time.perf_counter() - t0
    cache = JsonCache()  # a query node's per-segment cache, warmed by the first filter
    for expr, (baseline, kind) in tqdm(FILTERS.items(), desc="filters"):
        plan = compile_filter(expr, sch).plan  # type: ignore[union-attr]
        scan_mask = Evaluator(table, cache).mask(plan)
        index_mask = Evaluator(table, cache, indexes=built).mask(plan)
        assert np.array_equal(scan_mask, index_mask), expr
        assert np.array_equal(scan_mask, baseline(raw)), expr
        row = {
            "index_type": kind,
            "selectivity": float(scan_mask.mean()),
            "numpy_s": best_of(lambda b=baseline: b(raw), args.repeat),
            "scan_s": best_of(lambda p=plan: Evaluator(table, cache).mask(p), args.repeat),
            "index_s": best_of(
                lambda p=plan: Evaluator(table, cache, indexes=built).mask(p), args.repeat
            ),
        }
        row["index_vs_scan"] = row["scan_s"] / row["index_s"]
        row["index_vs_numpy"] = row["numpy_s"] / row["index_s"]
        res["filters"][expr] = row
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scalar_index.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'filter':24s} {'sel':>7s} {'numpy ms':>9s} {'scan ms':>8s} {'index ms':>9s} "
          f"{'idx/scan':>8s} {'idx/numpy':>9s}")  # fmt: skip
    for expr, r in res["filters"].items():
        print(f"{expr:24s} {r['selectivity']:7.2%} {r['numpy_s'] * 1e3:9.2f} "
              f"{r['scan_s'] * 1e3:8.2f} {r['index_s'] * 1e3:9.2f} {r['index_vs_scan']:7.1f}x "
              f"{r['index_vs_numpy']:8.1f}x")  # fmt: skip
    print("builds:", {k: round(v, 3) for k, v in res["build_s"].items()})
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(res["filters"])
        x = np.arange(len(names))
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for i, (key, label) in enumerate((("numpy_s", "bare NumPy"), ("scan_s", "gpuvec scan"),
                                          ("index_s", "gpuvec scalar index"))):  # fmt: skip
            ax.bar(x + (i - 1) * 0.27, [res["filters"][k][key] * 1e3 for k in names], 0.27,
                   label=label)  # fmt: skip
        ax.set_xticks(x, [f"{k}\n{res['filters'][k]['selectivity']:.2%}" for k in names],
                      fontsize=8)  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylabel("ms per filter (log)")
        ax.set_title(f"filter over {n:,} rows: scan vs scalar index ({res['machine']})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "scalar_index.png", dpi=110)
    except ImportError:
        print("matplotlib missing: no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
