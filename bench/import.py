"""Bulk-import benchmark: gpuvec's ``do_bulk_insert`` (Parquet, NumPy) against its own
``insert()``, Milvus Lite's insert path and this machine's raw sequential disk write rate,
on the same data in one run.

    python bench/import.py [--rows 1000000] [--dim 128] [--quick] [--out DIR]
                                 [--work-dir DIR] [--no-lite] [--no-breakdown]

Data: SYNTHETIC Gaussian float32 vectors ``[rows, dim]`` plus three scalar fields (int64
``n``, float ``score``, VARCHAR ``tag``) and an int64 primary key ``id``; written before any
timer starts as one Parquet file (row groups of 100k rows, snappy) and as a NumPy directory
(``id.npy``, ``vector.npy``, ``n.npy``, ``score.npy``, ``tag.npy``: Milvus's column layout).

Measured, each from the start of the call until every row is searchable (``count(*)`` is
``rows`` and a search returns a hit):

1. ``import parquet``: ``do_bulk_insert`` + ``wait_for_bulk_insert`` into a collection
   without an index to build (a FLAT index, so that it is loaded: rows are searchable by
   brute force once the job commits);
2. ``import parquet + HNSW``: the same into a collection with an HNSW index (M=16,
   efConstruction=100): the job commits after the index builds, so this is "indexed"
   (``describe_index`` state ``Finished`` is checked);
3. ``import numpy``: the NumPy directory, no index;
4. ``insert rows``: ``insert()`` in 10k-row batches of row dicts (pymilvus style), then
   ``flush``; ``insert columns``: the same with a dict of NumPy arrays per batch, when
   ``insert`` accepts that (a 10-row try decides; otherwise "not supported");
5. ``milvus-lite insert``: ``pymilvus.MilvusClient("./milvus_lite.db")`` (a loaded FLAT
   collection), 10k-row batches of row dicts, ``flush``, until ``count(*)`` is ``rows``;
6. ``raw disk write``: the vector bytes (rows × dim × 4) written to a file next to the data
   with large sequential ``write()`` calls and one ``fsync``;
7. ``raw disk write, sustained``: the vector bytes written three times over into one file,
   64 MiB per ``write()`` + ``fsync``; the third pass is timed. Virtual disks (this
   machine's among them) take a burst of some hundred MB at a high rate and then fall to
   the rate they sustain, a fraction of it: item 6 measures the burst, item 7 what a
   longer write gets (every 64 MiB block's milliseconds are in the JSON).

For each: seconds, rows/s and vector MB/s (rows × dim × 4 / seconds); the no-index imports,
the gpuvec inserts and the disk write run ``--repeats`` times (default 2, interleaved) and
the fastest run is reported (every run's seconds are in the JSON); the HNSW import and
Milvus Lite run once. Each method gets a fresh collection, dropped after it, and a small
untimed warm-up import / insert first pays the one-off costs (Dask's first tasks, imports).

Targets (issue): import ≥ 10× gpuvec ``insert`` rows/s; import vector MB/s ≥ 0.5× raw disk
MB/s, judged against both disk figures (burst and sustained) and reported for each. A
stage breakdown of one import chunk (read, validate, columns, Zarr write — the body of
``import_chunk_task`` run here, timed per step) says what bounds the import rate; the
job's own phases (chunks written, index builds, committed and served) are in the JSON.

Prints a table (rich); writes ``<out>/import.json`` and ``<out>/import.png`` (rows/s per
method, log scale, targets marked); ``--out`` defaults to ``bench/results``. The default
(1M × 128) takes several minutes on 2 cores; ``--rows 20000 --quick`` well under a minute.
The data and shared helpers are in ``import_data.py``, Milvus Lite and the raw disk writes
in ``import_baselines.py``, the ratios, table and plot in ``import_report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss loads (DESIGN §9)

import numpy as np
from import_baselines import bench_lite, raw_disk_write
from import_data import (
    BATCH,
    ROW_GROUP,
    WAIT_S,
    add_fields,
    column_batch,
    count,
    make_data,
    row_batch,
    settle,
    write_numpy,
    write_parquet,
)
from import_report import METHODS, derive, plot, print_table
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

OUT = Path(__file__).parent / "results"
HNSW = {"M": 16, "efConstruction": 100}
WARMUP_ROWS = 1000


console = Console(stderr=True)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


# --- gpuvec ------------------------------------------------------------------------------------
@contextlib.contextmanager
def gpuvec_client(root: Path) -> Iterator[Any]:
    from gpuvec import MilvusClient
    from gpuvec.config import Config

    cfg = Config(dashboard_address="", index_min_rows=1024, import_chunk_rows=ROW_GROUP)
    client = MilvusClient(str(root), config=cfg)
    try:
        yield client
    finally:
        client.close()


def gpuvec_schema(client: Any, dim: int) -> Any:
    from gpuvec.schema import DataType

    schema = client.create_schema(auto_id=False)
    add_fields(schema, DataType, dim)
    return schema


def create(client: Any, name: str, dim: int, hnsw: bool) -> None:
    """A loaded collection: HNSW, or FLAT (nothing to build: "no index", searched by brute
    force; loading needs an index on every vector field, as in Milvus)."""
    idx = client.prepare_index_params()
    if hnsw:
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params=HNSW)
    else:
        idx.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=gpuvec_schema(client, dim), index_params=idx)


def wait_searchable(client: Any, name: str, rows: int, probe: np.ndarray) -> None:
    """Until ``count(*)`` is ``rows`` and a search returns a hit (polled; part of the time)."""
    deadline = time.monotonic() + WAIT_S
    while (got := count(client, name)) != rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {got:,} of {rows:,} rows visible after {WAIT_S} s")
        time.sleep(0.05)
    hits = client.search(name, data=[probe], limit=1)
    if not hits or not hits[0]:
        raise RuntimeError(f"{name}: a search over {rows:,} rows returned nothing")


def bench_import(
    client: Any, name: str, path: Path, data: dict[str, np.ndarray], hnsw: bool, bar: Progress
) -> dict[str, Any]:
    rows, dim = data["vector"].shape
    create(client, name, dim, hnsw)
    task = bar.add_task(f"import {name}", total=100, note="submit")
    phases: dict[str, float] = {}
    settle()

    def show(state: dict[str, Any]) -> None:
        phases.setdefault(state["state"], time.perf_counter() - t0)
        note = f"{state['state']} {state['row_count']:,}/{state['total_rows']:,} rows"
        bar.update(task, completed=state["progress"], note=note)

    t0 = time.perf_counter()
    job = client.do_bulk_insert(name, [str(path)])
    submitted = time.perf_counter() - t0
    state = client.wait_for_bulk_insert(job, timeout=WAIT_S, progress=show)
    completed = time.perf_counter() - t0
    wait_searchable(client, name, rows, data["vector"][0])
    dt = time.perf_counter() - t0
    bar.remove_task(task)
    out: dict[str, Any] = {
        "seconds": dt,
        "job_completed_s": completed,
        "submit_s": submitted,
        "phases_s": phases,  # first time each job state was seen, from the submit call
        "job": {k: state.get(k) for k in ("state", "row_count", "segments")},
    }
    out["job"]["segments"] = len(state.get("segments") or [])
    if "Building" in phases:  # where the time went (poll resolution 0.1 s)
        out["timeline_s"] = {
            "submit (plan, checks)": submitted,
            "chunks read+validated+written": phases["Building"] - phases.get("Importing", 0),
            "index builds + serve + commit": completed - phases["Building"],
            "until count(*) and search agree": dt - completed,
        }
    if hnsw:
        desc = client.describe_index(name, "vector")
        out["index_state"] = (desc or {}).get("state")
        out["index"] = {"type": "HNSW", **HNSW}
        if out["index_state"] != "Finished":
            out["note"] = f"describe_index state {out['index_state']!r} at job completion"
    client.drop_collection(name)  # the next method runs alone
    return out


def warm_up_import(client: Any, data: dict[str, np.ndarray], root: Path, bar: Progress) -> float:
    """One small Parquet and one small NumPy import (not timed as results): the first job
    pays one-off costs (Dask's first tasks, module imports) that no method should carry."""
    t0 = time.perf_counter()
    small = {k: v[:WARMUP_ROWS] for k, v in data.items()}
    folder = root / "warmup"
    write_numpy(small, folder / "numpy")
    write_parquet(small, folder / "w.parquet", bar)
    dim = data["vector"].shape[1]
    for name, path in (("warm_pq", folder / "w.parquet"), ("warm_np", folder / "numpy")):
        create(client, name, dim, hnsw=False)
        client.wait_for_bulk_insert(client.do_bulk_insert(name, [str(path)]), timeout=WAIT_S)
        wait_searchable(client, name, len(small["id"]), data["vector"][0])
        client.drop_collection(name)
    shutil.rmtree(folder, ignore_errors=True)
    return time.perf_counter() - t0


def warm_up_insert(client: Any, data: dict[str, np.ndarray]) -> float:
    t0 = time.perf_counter()
    create(client, "warm", data["vector"].shape[1], hnsw=False)
    client.insert("warm", row_batch(data, 0, WARMUP_ROWS))
    client.flush("warm")
    wait_searchable(client, "warm", WARMUP_ROWS, data["vector"][0])
    client.drop_collection("warm")
    return time.perf_counter() - t0


def insert_loop(
    client: Any, name: str, data: dict[str, np.ndarray], batch_of: Callable, bar: Progress
) -> float:
    """Insert every row in ``BATCH``-row batches, flush, wait until searchable: seconds."""
    rows = len(data["id"])
    task = bar.add_task(f"insert {name}", total=rows, note="")
    t0 = time.perf_counter()
    for s in range(0, rows, BATCH):
        e = min(s + BATCH, rows)
        client.insert(name, batch_of(data, s, e))
        bar.update(task, completed=e)
    bar.update(task, note="flush")
    client.flush(name)
    wait_searchable(client, name, rows, data["vector"][0])
    dt = time.perf_counter() - t0
    bar.remove_task(task)
    return dt


def insert_run(
    client: Any, name: str, data: dict[str, np.ndarray], batch_of: Callable, bar: Progress
) -> dict[str, Any]:
    create(client, name, data["vector"].shape[1], hnsw=False)
    settle()
    out = {"seconds": insert_loop(client, name, data, batch_of, bar)}
    client.drop_collection(name)  # the next run starts alone
    return out


def keep(m: dict[str, Any], key: str, runs: list[dict[str, Any]]) -> None:
    """The fastest of ``runs`` as ``m[key]``, with every run's seconds."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["runs_s"] = [r["seconds"] for r in runs]
    m[key] = best


def columns_supported(client: Any, data: dict[str, np.ndarray], dim: int) -> str | None:
    """None when ``insert`` takes a dict of NumPy arrays (10 rows in, 10 rows counted),
    else why not."""
    create(client, "probe", dim, hnsw=False)
    try:
        res = client.insert("probe", column_batch(data, 0, 10))
        got = res.get("insert_count") if isinstance(res, dict) else None
        visible = count(client, "probe")
        if got != 10 or visible != 10:
            return f"not supported: 10-row column try gave insert_count={got}, count={visible}"
        return None
    except Exception as e:
        return f"not supported: {type(e).__name__}: {e}"[:300]
    finally:
        client.drop_collection("probe")


# --- stage breakdown ---------------------------------------------------------------------------
def breakdown(
    root: Path, client: Any, sources: dict[str, Path], dim: int, repeats: int = 3
) -> dict[str, Any]:
    """The body of ``import_chunk_task`` for the second chunk of each source (the first
    when there is one), step by step in this thread, ``repeats`` times: the median of each
    step. The job runs it on Dask worker threads, two chunks at a time, so with the GIL and
    2 cores the job's chunks take longer than this."""
    try:
        import pyarrow as pa
        from gpuvec.pipelines.sources import plan_import, read_chunk

        from gpuvec.columns import columns_to_table
        from gpuvec.records import shard_of
        from gpuvec.storage.objects.segment import segment_columns, write_segment
        from gpuvec.storage.objects.stores import open_store
    except ImportError as e:
        return {"unavailable": f"{type(e).__name__}: {e}"}
    schema = gpuvec_schema(client, dim)
    store = open_store(root / "breakdown-objects")
    out: dict[str, Any] = {}
    for label, path in sources.items():
        try:
            chunks = plan_import(schema, [str(path)], chunk_rows=ROW_GROUP)
            chunk = chunks[min(1, len(chunks) - 1)]
            runs: list[dict[str, float]] = []
            for r in range(repeats):
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                raw = read_chunk(chunk, schema)
                t["read"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                table = columns_to_table(schema, raw, operation="insert", auto_ids=None,
                                         row_offset=chunk.start, source=chunk.source)  # fmt: skip
                t["validate (columns_to_table)"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                pks, vectors, scal = segment_columns(schema, table)
                sel = np.flatnonzero(shard_of(pks, 1) == 0)  # one shard: every row
                vecs = {f: v[sel] for f, v in vectors.items()}
                scal = scal.take(pa.array(sel)).drop_columns(["id"])
                t["segment_columns + shard routing"] = time.perf_counter() - t0
                n = table.num_rows
                t0 = time.perf_counter()
                write_segment(store, f"bd/{label}/{r}", pk=pks[sel], ts=np.zeros(n, np.uint64),
                              vectors=vecs, scalars=scal, checkpoint={"c": 0},
                              chunk_rows=8192)  # fmt: skip
                t["Zarr write_segment"] = time.perf_counter() - t0
                runs.append(t)
                del raw, table, pks, vectors, vecs, scal
            med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            total = sum(med.values())
            out[label] = {
                "rows": chunk.stop - chunk.start,
                "seconds": med,
                "chunk_total_s": total,
                "chunk_rows_s": (chunk.stop - chunk.start) / total,
                "vector_MBps_one_thread": (chunk.stop - chunk.start) * dim * 4 / total / 1e6,
                "repeats": repeats,
            }
        except Exception as e:
            out[label] = {"unavailable": f"{type(e).__name__}: {e}"[:300]}
    shutil.rmtree(root / "breakdown-objects", ignore_errors=True)
    return out


# --- report ------------------------------------------------------------------------------------
# --- the run -----------------------------------------------------------------------------------
def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from gpuvec import ops

    rows, dim = args.rows, args.dim
    res: dict[str, Any] = {
        "rows": rows,
        "dim": dim,
        "vector_bytes": rows * dim * 4,
        "data": f"SYNTHETIC Gaussian {rows:,}x{dim} f32 + n, score, tag",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "quick": args.quick,
        "repeats": args.repeats,
        "batch_rows": BATCH,
        "parquet": {"row_group_rows": ROW_GROUP, "compression": "snappy"},
        "work_dir": str(root),
        "methods": {},
    }
    m = res["methods"]
    reps = args.repeats

    def done(key: str) -> None:  # a line per finished step (also in logs without a terminal)
        v = m[key]
        shown = f"{v['seconds']:.2f} s" if isinstance(v, dict) else v
        console.log(f"{METHODS[key]}: {shown}")

    with progress() as bar:
        bar_task = bar.add_task("generate data", total=None, note="")
        data = make_data(rows, dim)
        bar.remove_task(bar_task)
        pq_path, np_dir = root / "data.parquet", root / "numpy"
        write_parquet(data, pq_path, bar)
        write_numpy(data, np_dir)
        res["parquet"]["file_bytes"] = pq_path.stat().st_size
        res["backend"] = ops.backend_name()

        # 5 first: the disk rate before the imports fill the page cache with dirty pages
        keep(m, "raw_disk_write", [raw_disk_write(data["vector"], root) for _ in range(reps)])
        done("raw_disk_write")
        m["raw_disk_sustained"] = raw_disk_write(data["vector"], root, passes=3, fsync_each=True)
        done("raw_disk_sustained")

        with gpuvec_client(root / "gpuvec-import") as c:
            res["warmup_s"] = {"import": warm_up_import(c, data, root, bar)}
            runs: dict[str, list[dict[str, Any]]] = {"import_parquet": [], "import_numpy": []}
            for r in range(reps):  # interleaved: load from other processes hits both alike
                runs["import_parquet"].append(
                    bench_import(c, f"parquet_{r}", pq_path, data, False, bar)
                )
                runs["import_numpy"].append(bench_import(c, f"numpy_{r}", np_dir, data, False, bar))
            for key, got in runs.items():
                keep(m, key, got)
                done(key)
            m["import_parquet_hnsw"] = bench_import(c, "parquet_hnsw", pq_path, data, True, bar)
            done("import_parquet_hnsw")
            if not args.no_breakdown:
                res["breakdown"] = breakdown(root, c, {"parquet": pq_path, "numpy": np_dir}, dim)
        shutil.rmtree(root / "gpuvec-import", ignore_errors=True)

        with gpuvec_client(root / "gpuvec-insert") as c:
            res["warmup_s"]["insert"] = warm_up_insert(c, data)
            why = columns_supported(c, data, dim)
            runs = {"insert_rows": [], "insert_columns": []}
            for r in range(reps):
                runs["insert_rows"].append(insert_run(c, f"rows_{r}", data, row_batch, bar))
                if why is None:
                    runs["insert_columns"].append(
                        insert_run(c, f"columns_{r}", data, column_batch, bar)
                    )
            keep(m, "insert_rows", runs["insert_rows"])
            done("insert_rows")
            if why is None:
                keep(m, "insert_columns", runs["insert_columns"])
            else:
                m["insert_columns"] = why
            done("insert_columns")
        shutil.rmtree(root / "gpuvec-insert", ignore_errors=True)

        if args.no_lite:
            m["milvus_lite_insert"] = "skipped: --no-lite"
        else:
            m["milvus_lite_insert"] = bench_lite(root, data, bar)
        done("milvus_lite_insert")
    for k, v in m.items():
        if isinstance(v, str):
            console.print(f"[yellow]{METHODS[k]}: {v}[/yellow]")
    derive(res)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="smoke run: no stage breakdown")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for import.json/import.png")
    ap.add_argument("--work-dir", type=Path, default=None, help="data + databases (a temp dir)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of the no-index imports, the gpuvec inserts and the disk write, the best "
        "reported (default 2; 1 with --quick); HNSW import and Milvus Lite run once",
    )
    ap.add_argument("--no-lite", action="store_true", help="skip Milvus Lite")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the stage breakdown")
    args = ap.parse_args(argv)
    args.no_breakdown = args.no_breakdown or args.quick
    args.repeats = args.repeats or (1 if args.quick else 2)
    t0 = time.perf_counter()
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        ctx: Any = tempfile.TemporaryDirectory(dir=args.work_dir)
    else:
        ctx = tempfile.TemporaryDirectory(prefix="gpuvec-import-")
    with ctx as d:
        res = run(args, Path(d))
    res["run_s"] = time.perf_counter() - t0
    print_table(res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "import.json").write_text(json.dumps(res, indent=2, default=str))
    plot(res, args.out / "import.png")
    Console(width=150).print(
        f"\nwrote {args.out / 'import.json'} and {args.out / 'import.png'} "
        f"({res['run_s']:.0f} s in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
