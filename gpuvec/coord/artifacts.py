"""Building a standalone index artifact (:mod:`gpuvec.pipelines.artifact`) as a Dask job:
infer the files' schema, plan the same chunks an import makes, submit one piece task per
chunk (on ``scheduler`` or an in-process cluster), and write the manifest once every piece
is there — so a manifest always describes a complete artifact."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpuvec import vectors
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.errors import InvalidArgumentError
from gpuvec.index.validate import check_build_params
from gpuvec.pipelines.artifact import (
    FORMAT,
    MANIFEST,
    artifact_piece_task,
    settings_of,
    write_atomic,
)
from gpuvec.pipelines.infer import infer_schema, vector_fields
from gpuvec.pipelines.sources import plan_import


def build_artifact(
    files: Sequence[Any], out: str | os.PathLike[str], *, field: str = "", pk: str = "id",
    index_type: str = "AUTOINDEX", metric: str = "COSINE", params: dict[str, Any] | None = None,
    chunk_rows: int = 100_000, scheduler: str = "", storage_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Build the index artifact of ``files`` into the directory ``out`` as a Dask job (on
    ``scheduler`` when given, else an in-process cluster); return its manifest.
    ``progress(rows_done, rows_total)`` is called as pieces finish. The schema comes from
    the files' columns (:func:`gpuvec.pipelines.infer.infer_schema`); ``field`` defaults to
    the first vector column. ``chunk_rows`` must be the importing runtime's
    ``Config.import_chunk_rows`` for the pieces to match its segments."""
    first = files[0] if isinstance(files[0], str | os.PathLike) else files[0][0]
    schema = infer_schema(str(first), pk)
    names = vector_fields(schema)
    field = field or names[0]
    if field not in names:
        raise InvalidArgumentError(f"field {field!r} is not a vector column of {first} "
                                   f"(vector columns: {names})")  # fmt: skip
    metric = str(metric).upper()
    kind = vectors.kind(schema.field(field).dtype)
    if metric not in kind.metrics:
        raise InvalidArgumentError(f"metric_type {metric!r} does not fit {kind.name} field "
                                   f"{field!r}; it takes {', '.join(kind.metrics)}")  # fmt: skip
    dim = schema.field(field).dim
    itype = str(index_type).upper()
    settings = settings_of(field, itype, metric, check_build_params(itype, params or {}, dim))
    chunks = plan_import(schema, list(files), chunk_rows=chunk_rows,
                         storage_options=storage_options)  # fmt: skip
    if not chunks:
        raise InvalidArgumentError("the files hold no rows")
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)  # written again when every piece is there
    tag = hashlib.blake2b(str(target.resolve()).encode(), digest_size=4).hexdigest()
    runtime = DataNodeRuntime(scheduler, processes=False)
    total = sum(c.stop - c.start for c in chunks)
    try:
        sch, gpu = schema.to_dict(), itype.startswith("GPU_")
        futures = []
        for i, c in enumerate(chunks):
            key = f"gpuvec-artifact-{tag}-{i:05d}"
            args = (str(target), i, c, sch, settings, storage_options)
            futures.append(runtime.submit(artifact_piece_task, *args, key=key, gpu=gpu))
        from distributed import as_completed

        done = 0
        pieces = {}
        for fut in as_completed(futures):
            rec = fut.result()
            pieces[rec["piece"]] = rec
            done += rec["stop"] - rec["start"]
            if progress is not None:
                progress(done, total)
    finally:
        runtime.close()
    manifest = {
        "format": FORMAT, **settings, "dim": dim, "chunk_rows": chunk_rows,
        "files": [str(f) if isinstance(f, str | os.PathLike) else [str(x) for x in f]
                  for f in files],
        "rows": total, "created": time.time(),
        "pieces": [{k: v for k, v in pieces[i].items() if k != "settings"}
                   for i in range(len(chunks))],
    }  # fmt: skip
    write_atomic(target / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest
