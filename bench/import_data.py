"""The import benchmark's data (``bench/import.py``): the SYNTHETIC rows, their Parquet and
NumPy files, row and column batches of them, and what every timed step shares — the
batch and row-group sizes, the wait limit, ``count(*)`` and the page-cache settle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

BATCH = 10_000
ROW_GROUP = 100_000
MiB = 1 << 20
WAIT_S = 3600.0  # the longest any step may take before the run gives up


def make_data(rows: int, dim: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    vec = np.empty((rows, dim), np.float32)
    for s in range(0, rows, ROW_GROUP):  # in pieces: no float64 copy of the whole array
        e = min(s + ROW_GROUP, rows)
        vec[s:e] = rng.standard_normal((e - s, dim), dtype=np.float32)
    n = rng.integers(0, 1_000_000, rows, dtype=np.int64)
    return {
        "id": np.arange(rows, dtype=np.int64),
        "vector": vec,
        "n": n,
        "score": rng.random(rows, dtype=np.float32),
        "tag": np.array([f"tag-{v % 1000:04d}" for v in n.tolist()]),  # unicode <U8
    }


def write_parquet(data: dict[str, np.ndarray], path: Path, bar: Progress) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, dim = data["vector"].shape
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("n", pa.int64()),
            ("score", pa.float32()),
            ("tag", pa.string()),
        ]
    )
    task = bar.add_task("write Parquet", total=rows, note="")
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        for s in range(0, rows, ROW_GROUP):
            e = min(s + ROW_GROUP, rows)
            vec = pa.FixedSizeListArray.from_arrays(pa.array(data["vector"][s:e].ravel()), dim)
            cols = [pa.array(data["id"][s:e]), vec, pa.array(data["n"][s:e])]
            cols += [pa.array(data["score"][s:e]), pa.array(data["tag"][s:e].tolist())]
            w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=ROW_GROUP)
            bar.update(task, completed=e)
    bar.remove_task(task)


def write_numpy(data: dict[str, np.ndarray], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in data.items():
        np.save(folder / f"{name}.npy", arr)


def row_batch(data: dict[str, np.ndarray], s: int, e: int) -> list[dict[str, Any]]:
    """Rows ``s:e`` as pymilvus-style row dicts (Python scalars, a NumPy vector)."""
    vec = data["vector"]
    ns, scores, tags = data["n"][s:e].tolist(), data["score"][s:e].tolist(), data["tag"][s:e]
    return [
        {"id": s + i, "vector": vec[s + i], "n": ns[i], "score": scores[i], "tag": str(tags[i])}
        for i in range(e - s)
    ]


def column_batch(data: dict[str, np.ndarray], s: int, e: int) -> dict[str, np.ndarray]:
    return {k: v[s:e] for k, v in data.items()}


def add_fields(schema: Any, data_type: Any, dim: int) -> None:
    """The benchmark's fields on a gpuvec or pymilvus schema (their ``DataType`` given)."""
    schema.add_field("id", data_type.INT64, is_primary=True)
    schema.add_field("vector", data_type.FLOAT_VECTOR, dim=dim)
    schema.add_field("n", data_type.INT64)
    schema.add_field("score", data_type.FLOAT)
    schema.add_field("tag", data_type.VARCHAR, max_length=32)


def count(client: Any, name: str) -> int:
    return int(client.query(name, output_fields=["count(*)"])[0]["count(*)"])


def settle() -> None:
    """Untimed, before each timed run: write back what earlier steps left dirty in the page
    cache (the data files, earlier collections), so no run pays for another's writes."""
    os.sync()
