"""Filter-evaluation benchmark: gpuvec.expr rows/s on one core, each next to a raw baseline
run in this process.

    python bench/filters.py [--quick] [--repeat 5]

* ``10 <= a < 25`` on 10M int64 rows (target ≥ 50M rows/s) — baseline: the bare NumPy
  expression ``(a >= 10) & (a < 25)``;
* ``s like 'abc%'`` on 5M strings (target ≥ 10M rows/s) — baseline: ``pc.starts_with``;
* ``a in [...]`` with 100 values on 10M rows — baseline: ``np.isin``;
* ``not (a > 100) and b < 0.5 or s like '%xyz%'`` (three columns) — baseline: the same
  NumPy/Arrow calls written by hand;
* ``meta["k"] > 500`` on 1M JSON rows, cached (the segment's JsonCache already holds the
  decoded column) and cold (decode + extract) — baseline: a ``json.loads`` per row.

Everything runs single-threaded (NumPy/BLAS via threadpoolctl, Arrow's CPU pool at 1).
Writes ``bench/results/filters.json`` and a bar chart ``bench/results/filters.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from gpuvec.expr import JsonCache, compile_filter
from gpuvec.expr.jsoncache import K_INT
from gpuvec.schema import CollectionSchema, DataType

OUT = Path(__file__).parent / "results"
TARGETS = {"range": 50e6, "like_prefix": 10e6}


def schema() -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("a", DataType.INT64)
    s.add_field("b", DataType.DOUBLE)
    s.add_field("s", DataType.VARCHAR, max_length=16)
    s.add_field("meta", DataType.JSON)
    return s


def best(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` timed runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_data(n: int, n_str: int, n_json: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, n)
    b = rng.random(n)
    words = np.array(["abc", "abd", "xyzq", "qabc", "zz", "abcxyz", "hello", "a%c"])
    suffix = rng.integers(0, 100_000, n_str).astype(str)
    s = pa.array(np.char.add(words[rng.integers(0, len(words), n_str)], suffix).tolist())
    keys = rng.integers(0, 1000, n_json)
    meta = pa.array([f'{{"k":{k},"t":"x{k % 7}","l":[{k % 3},{k % 5}]}}' for k in keys])
    return {
        "ints": pa.table({"a": a, "b": b}),
        "strings": pa.table({"s": s}),
        "mixed": pa.table({"a": a[:n_str], "b": b[:n_str], "s": s}),
        "json": pa.table({"meta": meta}),
    }


def run(quick: bool, repeat: int) -> dict[str, Any]:
    n, n_str, n_json = (
        (1_000_000, 500_000, 100_000) if quick else (10_000_000, 5_000_000, 1_000_000)
    )
    data = make_data(n, n_str, n_json)
    sch = schema()
    a = data["ints"].column("a").chunk(0).to_numpy()
    bcol = data["ints"].column("b").chunk(0).to_numpy()
    s = data["strings"].column("s").chunk(0)
    mixed = data["mixed"]
    values = list(range(0, 1000, 10))
    meta = data["json"]
    cache = JsonCache()
    compile_filter('meta["k"] > 500', sch).evaluate(meta, cache)  # type: ignore[union-attr]
    texts = meta.column("meta").to_pylist()
    jv, _ = cache.values("meta", meta.column("meta").chunk(0), ("k",))

    def ours(text: str, table: pa.Table, c: JsonCache | None = None) -> Callable[[], Any]:
        f = compile_filter(text, sch)
        assert f is not None
        return lambda: f.evaluate(table, c)

    def mixed_raw() -> Any:
        ma, mb = mixed.column("a").chunk(0).to_numpy(), mixed.column("b").chunk(0).to_numpy()
        sub = pc.match_substring(mixed.column("s").chunk(0), pattern="xyz")
        return (~(ma > 100) & (mb < 0.5)) | sub.to_numpy(zero_copy_only=False)

    cases = [
        (
            "range",
            "10 <= a < 25",
            n,
            ours("10 <= a < 25", data["ints"]),
            "numpy (a >= 10) & (a < 25)",
            lambda: (a >= 10) & (a < 25),
        ),
        (
            "like_prefix",
            "s like 'abc%'",
            n_str,
            ours("s like 'abc%'", data["strings"]),
            "pc.starts_with",
            lambda: pc.starts_with(s, pattern="abc"),
        ),
        (
            "in_list_100",
            "a in [0, 10, ..., 990]",
            n,
            ours(f"a in {values}", data["ints"]),
            "np.isin",
            lambda: np.isin(a, values),
        ),
        (
            "three_columns",
            "not (a > 100) and b < 0.5 or s like '%xyz%'",
            n_str,
            ours("not (a > 100) and b < 0.5 or s like '%xyz%'", mixed),
            "numpy + pc by hand",
            mixed_raw,
        ),
        (
            "json_cached",
            'meta["k"] > 500 (cached)',
            n_json,
            ours('meta["k"] > 500', meta, cache),
            "numpy over the cached ints",
            lambda: jv.mask(K_INT) & (jv.ints > 500),
        ),
        (
            "json_cold",
            'meta["k"] > 500 (cold cache)',
            n_json,
            lambda: compile_filter('meta["k"] > 500', sch).evaluate(meta, JsonCache()),  # type: ignore[union-attr]
            "json.loads per row",
            lambda: [json.loads(t)["k"] > 500 for t in texts],
        ),
    ]
    del bcol
    results = []
    for name, text, rows, fn, base_name, base in tqdm(cases, desc="filters", unit="case"):
        reps = max(1, repeat // 3) if name == "json_cold" else repeat
        t_ours, t_base = best(fn, reps), best(base, reps)
        results.append(
            {
                "case": name,
                "filter": text,
                "rows": rows,
                "seconds": t_ours,
                "rows_per_s": rows / t_ours,
                "baseline": base_name,
                "baseline_seconds": t_base,
                "baseline_rows_per_s": rows / t_base,
                "ratio_vs_baseline": t_base / t_ours,
                "target_rows_per_s": TARGETS.get(name),
            }
        )
    return {
        "quick": quick,
        "threads": 1,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "results": results,
    }


def report(res: dict[str, Any]) -> None:
    head = f"{'case':<14} {'filter':<46} {'rows':>10} {'Mrows/s':>9} {'baseline':>10} {'ratio':>6}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in res["results"]:
        target = r["target_rows_per_s"]
        flag = "" if target is None else ("  ok" if r["rows_per_s"] >= target else "  BELOW TARGET")
        print(
            f"{r['case']:<14} {r['filter'][:46]:<46} {r['rows']:>10,} "
            f"{r['rows_per_s'] / 1e6:>9.1f} {r['baseline_rows_per_s'] / 1e6:>10.1f} "
            f"{r['ratio_vs_baseline']:>6.2f}{flag}"
        )
    print(
        "(baseline = the raw NumPy/Arrow/json call named in the JSON; ratio = baseline time / "
        "gpuvec time)"
    )


def plot(res: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no chart (pip install gpuvec[bench])")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["results"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar(x - 0.2, [r["rows_per_s"] / 1e6 for r in rows], 0.4, label="gpuvec.expr")
    ax.bar(x + 0.2, [r["baseline_rows_per_s"] / 1e6 for r in rows], 0.4, label="raw baseline")
    for i, r in enumerate(rows):
        if r["target_rows_per_s"]:
            ax.hlines(r["target_rows_per_s"] / 1e6, i - 0.4, i + 0.4, colors="red", linestyles="--")
    ax.set_xticks(x, [r["case"] for r in rows], rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("million rows / s (one core, log)")
    ax.set_title("Filter evaluation (red dashes: targets)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer rows")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with threadpool_limits(1):
        res = run(args.quick, args.repeat)
    report(res)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "filters.json").write_text(json.dumps(res, indent=2) + "\n")
    plot(res, OUT / "filters.png")
    print(f"\nwrote {OUT / 'filters.json'} and {OUT / 'filters.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
