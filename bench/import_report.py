"""Reporting of ``bench/import.py``: the ratios and targets derived from the measured
methods, the table and the rows/s plot."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

TARGET_VS_INSERT = 10.0
TARGET_VS_DISK = 0.5
METHODS = {  # key -> label, in table order
    "import_parquet": "gpuvec import, Parquet (no index)",
    "import_parquet_hnsw": "gpuvec import, Parquet + HNSW build",
    "import_numpy": "gpuvec import, NumPy (no index)",
    "insert_rows": "gpuvec insert(), row dicts",
    "insert_columns": "gpuvec insert(), NumPy columns",
    "milvus_lite_insert": "Milvus Lite insert(), row dicts",
    "raw_disk_write": "raw disk write (vector bytes)",
    "raw_disk_sustained": "raw disk write, sustained (3rd pass of 3)",
}
DISKS = {"raw_disk_write": "raw_disk", "raw_disk_sustained": "sustained_disk"}  # ratio names
IMPORTS = ("import_parquet", "import_parquet_hnsw", "import_numpy")


def derive(res: dict[str, Any]) -> None:
    """Fill rows/s and vector MB/s of every method; the ratios and targets."""
    rows, vbytes = res["rows"], res["vector_bytes"]
    for v in res["methods"].values():
        if isinstance(v, dict) and v.get("seconds"):
            v["rows_s"] = rows / v["seconds"]
            v["vector_MBps"] = vbytes / v["seconds"] / 1e6
    m = res["methods"]

    def rate(key: str, field: str = "rows_s") -> float | None:
        return m[key].get(field) if isinstance(m.get(key), dict) else None

    ins, disk = rate("insert_rows"), rate("raw_disk_write", "vector_MBps")
    ratios: dict[str, Any] = {}
    for key in IMPORTS:
        r, mb = rate(key), rate(key, "vector_MBps")
        if r and ins:
            ratios[f"{key}_vs_insert_rows"] = r / ins
        for dkey, dname in DISKS.items():
            d = rate(dkey, "vector_MBps")
            if mb and d:
                ratios[f"{key}_MBps_vs_{dname}"] = mb / d
    if rate("insert_columns") and ins:
        ratios["insert_columns_vs_insert_rows"] = rate("insert_columns") / ins  # type: ignore[operator]
    if rate("milvus_lite_insert"):
        for key in ("import_parquet", "insert_rows"):
            if rate(key):
                ratios[f"{key}_vs_milvus_lite"] = rate(key) / rate("milvus_lite_insert")  # type: ignore[operator]
    res["ratios"] = ratios
    if ins and disk:  # what the 10x target asks of the disk
        ratios["target_10x_insert_vector_MBps_vs_raw_disk"] = (
            TARGET_VS_INSERT * m["insert_rows"]["vector_MBps"] / disk
        )
    res["targets"] = {
        "import_vs_insert": {
            "target": TARGET_VS_INSERT,
            "met": {
                k: ratios.get(f"{k}_vs_insert_rows", 0) >= TARGET_VS_INSERT
                for k in ("import_parquet", "import_numpy")
            },
        },
        **{
            f"import_MBps_vs_{dname}": {
                "target": TARGET_VS_DISK,
                "met": {
                    k: ratios.get(f"{k}_MBps_vs_{dname}", 0) >= TARGET_VS_DISK
                    for k in ("import_parquet", "import_numpy")
                },
            }
            for dname in DISKS.values()
        },
    }


def print_table(res: dict[str, Any]) -> None:
    out = Console(width=max(150, shutil.get_terminal_size().columns))
    t = Table(title=f"bulk import, {res['data']} — {res['machine']}")
    for col, just in [("method", "left"), ("seconds", "right"), ("rows/s", "right"),
                      ("vector MB/s", "right"), ("vs insert rows", "right"),
                      ("vs raw disk MB/s", "right"), ("vs sustained disk", "right"),
                      ("note", "left")]:  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    ins = res["methods"].get("insert_rows")
    disks = [res["methods"].get(k) for k in DISKS]
    for key, label in METHODS.items():
        v = res["methods"].get(key)
        if not isinstance(v, dict):
            t.add_row(label, "—", "—", "—", "—", "—", "—", str(v))
            continue
        vs_ins = f"{v['rows_s'] / ins['rows_s']:.1f}x" if isinstance(ins, dict) else "—"
        vs_disks = [
            f"{v['vector_MBps'] / d['vector_MBps']:.2f}x" if isinstance(d, dict) else "—"
            for d in disks
        ]
        note = v.get("note", "")
        if key == "import_parquet_hnsw":
            note = note or f"index {v.get('index_state')}"
        if key in IMPORTS:
            ph = v.get("phases_s", {})
            built = f"chunks written {ph['Building']:.1f} s, " if "Building" in ph else ""
            note += f" ({built}job done {v['job_completed_s']:.1f} s)"
        t.add_row(label, f"{v['seconds']:.2f}", f"{v['rows_s']:,.0f}",
                  f"{v['vector_MBps']:,.1f}", vs_ins, *vs_disks, note.strip())  # fmt: skip
    out.print(t)
    for name, tgt in res["targets"].items():
        for k, ok in tgt["met"].items():
            r = res["ratios"].get(
                f"{k}_vs_insert_rows" if name == "import_vs_insert"
                else f"{k}_MBps_vs_{name.removeprefix('import_MBps_vs_')}"
            )  # fmt: skip
            shown = f"{r:.2f}x" if r is not None else "n/a"
            out.print(f"target {name} ≥ {tgt['target']}x, {k}: {shown} — "
                      f"{'MET' if ok else 'missed'}")  # fmt: skip
    bd = res.get("breakdown")
    if isinstance(bd, dict):
        for src, v in bd.items():
            if isinstance(v, dict) and "seconds" in v:
                steps = ", ".join(f"{k} {s:.2f}s" for k, s in v["seconds"].items())
                out.print(f"one {v['rows']:,}-row chunk from {src} (one thread): {steps}; "
                          f"{v['chunk_rows_s']:,.0f} rows/s")  # fmt: skip
            else:
                out.print(f"breakdown {src}: {v}")


LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1}


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt

    labels, vals, colors = [], [], []
    palette = {"import": "C0", "insert": "C1", "milvus": "C2", "raw": "C7"}
    for key, label in METHODS.items():
        v = res["methods"].get(key)
        labels.append(textwrap.fill(label, 20))
        vals.append(v["rows_s"] if isinstance(v, dict) else 0.0)
        colors.append(palette[key.split("_")[0]])
    fig, ax = plt.subplots(figsize=(11, 5.5))
    x = np.arange(len(labels))
    ax.bar(x, [v or np.nan for v in vals], color=colors)
    for xi, v, key in zip(x, vals, METHODS, strict=True):
        if v:
            ax.text(xi, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        else:  # skipped / not supported: say so where the bar would be
            why = textwrap.fill(str(res["methods"].get(key, "missing"))[:80], 22)
            ax.text(xi, 0.03, why, ha="center", va="bottom", fontsize=7, color="C3",
                    transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("rows/s (log)")
    ins = res["methods"].get("insert_rows")
    if isinstance(ins, dict):
        y = TARGET_VS_INSERT * ins["rows_s"]
        ax.axhline(y, color="C3", ls="--", lw=1)
        ax.text(-0.45, y, f"target: {TARGET_VS_INSERT:g}× gpuvec insert rows/s", color="C3",
                ha="left", va="bottom", fontsize=8, bbox=LABEL_BOX)  # fmt: skip
    for (dkey, what), color in zip(
        (("raw_disk_write", "raw disk (burst)"), ("raw_disk_sustained", "sustained disk")),
        ("C4", "C5"), strict=True,
    ):  # fmt: skip
        disk = res["methods"].get(dkey)
        if isinstance(disk, dict):
            y = TARGET_VS_DISK * disk["rows_s"]  # the rows/s whose vector MB/s is 0.5× disk
            ax.axhline(y, color=color, ls=":", lw=1)
            ax.text(-0.45, y, f"target: {TARGET_VS_DISK:g}× {what} MB/s", color=color,
                    ha="left", va="top", fontsize=8, bbox=LABEL_BOX)  # fmt: skip
    ax.set_title(f"bulk import, {res['data']} — {res['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
