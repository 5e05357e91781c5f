"""Reporting of ``bench/cluster.py``: the markdown tables, the ratios of the cluster against
its baselines (added into the results), one-line RPC breakdowns, and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cluster_measure import LEVELS


def fmt_breakdown(b: dict[str, Any]) -> str:
    parts = [
        f"{k} {v['calls_per_request']:g}× {v['ms_per_request']:.2f} ms"
        + (f" ({v['node_ms_per_call']:.2f} in the node)" if v.get("node_ms_per_call") else "")
        for k, v in b["calls"].items()
    ]
    covered = b.get("critical_path_ms", 0.0)
    return (
        f"mean {b['mean_ms']:.2f} ms: " + ", ".join(parts)
        + f" (overlapping: {covered:.2f} ms covered by calls), rest {b['other_ms']:.2f} ms"
    )


# --- report --------------------------------------------------------------------------------
def summarise(res: dict[str, Any]) -> None:
    sysd = res["systems"]
    print(
        f"\n{res['data']}, HNSW M16 efC100 ef64, {res['queries']} queries, "
        f"{res['cpu_count']} CPUs, load avg {res['loadavg_start']} → {res['loadavg_end']}\n"
    )
    print(
        "| system | level | b1 QPS | b1 p50 ms | b1 p99 ms | b100 q/s | "
        f"{res['threads']} clients QPS | recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in sysd.items():
        for level in LEVELS:
            m = r["search"][level]
            print(
                f"| {name} | {level} | {m['b1']['qps']:,.1f} | {m['b1']['p50_ms']:.2f} | "
                f"{m['b1']['p99_ms']:.2f} | {m['b100']['qps']:,.0f} | "
                f"{m['concurrent']['qps']:,.1f} | {m['b1']['recall']:.3f} |"
            )
    added: dict[str, Any] = {}
    for name, r in sysd.items():
        if not name.startswith("cluster-"):
            continue
        for level in LEVELS:
            c = r["search"][level]
            for base in ("serve", "embedded"):
                if base in sysd:
                    b = sysd[base]["search"][level]
                    added[f"{name} vs {base} {level}"] = {
                        "p50_added_ms": c["b1"]["p50_ms"] - b["b1"]["p50_ms"],
                        "b1_qps_ratio": c["b1"]["qps"] / b["b1"]["qps"],
                        "b100_qps_ratio": c["b100"]["qps"] / b["b100"]["qps"],
                        "concurrent_qps_ratio": c["concurrent"]["qps"] / b["concurrent"]["qps"],
                    }
    res["cluster_vs_baselines"] = added
    print("\n| comparison | p50 added ms | b1 QPS × | b100 QPS × | concurrent QPS × |")
    print("|---|---|---|---|---|")
    for k, v in added.items():
        print(
            f"| {k} | {v['p50_added_ms']:+.2f} | {v['b1_qps_ratio']:.2f} | "
            f"{v['b100_qps_ratio']:.2f} | {v['concurrent_qps_ratio']:.2f} |"
        )
    ing = {k: r["ingest"] for k, r in sysd.items() if "ingest" in r}
    if len(ing) == 2:
        (a, ia), (b, ib) = ing.items()
        res["ingest_ratio_cluster_vs_serve"] = ib["rows_per_s"] / ia["rows_per_s"]
        print(
            f"\ninsert: {a} {ia['rows_per_s']:,.0f} rows/s, {b} {ib['rows_per_s']:,.0f} rows/s "
            f"(Kafka WAL; {res['ingest_ratio_cluster_vs_serve']:.2f}×); flush / index / load: "
            f"{a} {ia['flush_s']:.1f}/{ia['index_s']:.1f}/{ia['load_s']:.1f} s, "
            f"{b} {ib['flush_s']:.1f}/{ib['index_s']:.1f}/{ib['load_s']:.1f} s"
        )
    for name, r in sysd.items():
        for kind, b in r.get("breakdown", {}).items():
            if kind in ("search", "insert"):
                print(f"{name}, one {kind}: {fmt_breakdown(b)}")
        if "breakdown" in r:
            rtt = ", ".join(
                f"{k} {v:.2f} ms" for k, v in r["breakdown"]["flight_noop_rtt_ms"].items()
            )
            print(f"{name}, no-op Flight round trip: {rtt}")


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in res["systems"] if "search" in res["systems"][s]]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [3, 2, 1.3]})
    groups = [
        ("b1", "batch 1"),
        ("b100", "batch 100"),
        ("concurrent", f"{res['threads']} clients, batch 1"),
    ]
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        m = res["systems"][s]["search"]["Bounded"]
        vals = [m[g]["qps"] for g, _ in groups]
        bars = axes[0].bar(x + i * width, vals, width, label=s)
        axes[0].bar_label(bars, fmt="%.0f", fontsize=7)
    axes[0].set_xticks(x + width * (len(systems) - 1) / 2, [g for _, g in groups])
    axes[0].set_yscale("log")
    axes[0].set_title("search QPS, Bounded (higher is better)")
    axes[0].legend(fontsize=8)
    for j, level in enumerate(LEVELS):
        vals = [res["systems"][s]["search"][level]["b1"]["p50_ms"] for s in systems]
        bars = axes[1].bar(np.arange(len(systems)) + j * 0.4, vals, 0.4, label=level)
        axes[1].bar_label(bars, fmt="%.1f", fontsize=7)
    axes[1].set_xticks(np.arange(len(systems)) + 0.2, systems, rotation=20, fontsize=8)
    axes[1].set_title("batch-1 p50 latency ms (lower is better)")
    axes[1].legend(fontsize=8)
    ing = {s: r["ingest"]["rows_per_s"] for s, r in res["systems"].items() if "ingest" in r}
    bars = axes[2].bar(list(ing), list(ing.values()), color=["tab:gray", "tab:red"][: len(ing)])
    axes[2].bar_label(bars, fmt="%.0f", fontsize=8)
    axes[2].set_xticks(range(len(ing)), [s.split("-")[0] for s in ing])
    axes[2].set_title("insert rows/s, pymilvus")
    fig.suptitle(
        f"gpuvec cluster vs gpuvec serve: {res['data']}, HNSW ef 64, {res['cpu_count']} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
