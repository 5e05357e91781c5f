"""Standalone index artifacts: the indexes of a Parquet / NumPy file set, built offline as a
Dask job before (or without) any collection, which an import into a collection adopts
instead of building again.

An artifact is a local directory::

    manifest.json        written last: format, field, dim, index type, metric, params,
                         sources, chunk_rows and the pieces below
    piece-<i>.gpuvecix   the index of chunk ``i`` of the sources (the chunks an import of
    piece-<i>.json       the same files makes), and its record: rows, digest, describe

Each piece is built by one ``gpuvec-artifact-<tag>-<i>`` task (:func:`artifact_piece_task`,
on GPU workers when the index type is a GPU one; :func:`gpuvec.coord.artifacts.build_artifact`
plans and submits them and writes the manifest) from the rows an import would write: the
same reader, the same validation, the same vector bytes. A piece already on disk with the
same build settings is kept, so an interrupted build resumes where it stopped.

Adoption (:func:`adoptable`): an import given ``index_artifact=DIR`` fingerprints every
segment's vectors (:func:`gpuvec.pipelines.common.vector_digest`); a segment whose digest
is a piece's, for an index definition with the artifact's field, type, metric and params,
gets a copy of that piece instead of a build. With one shard and the same ``chunk_rows``
every segment matches; segments that do not (rows split over several shards) are built as
usual.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from gpuvec.pipelines.common import progress_reporter, vector_digest
from gpuvec.pipelines.sources import Chunk, read_chunk

from gpuvec.columns import columns_to_table
from gpuvec.errors import InvalidArgumentError
from gpuvec.index.registry import build_index, dump
from gpuvec.observability.datanode import observed
from gpuvec.schema import CollectionSchema
from gpuvec.storage.objects.segment import segment_columns

FORMAT = "gpuvec-index-artifact/1"
MANIFEST = "manifest.json"


def settings_of(field: str, index_type: str, metric: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"field": field, "index_type": index_type, "metric_type": metric, "params": params}


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@observed("index_build", rows=lambda out: out["rows"])
def artifact_piece_task(
    out_dir: str, index: int, chunk: Chunk, schema: dict[str, Any], settings: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Build (or keep, when already built with ``settings``) piece ``index`` of an
    artifact; return its record."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    record_path = out / f"piece-{index:05d}.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("settings") == settings and (out / record["file"]).exists():
            return record
    sch = CollectionSchema.from_dict(schema)
    data = read_chunk(chunk, sch, storage_options=storage_options)
    n = chunk.stop - chunk.start
    pk = sch.primary_field
    ids = np.arange(n) if pk is not None and pk.auto_id else None  # ids do not matter here
    table = columns_to_table(sch, data, operation="insert", auto_ids=ids,
                             row_offset=chunk.start, source=chunk.source)  # fmt: skip
    vectors = segment_columns(sch, table)[1][settings["field"]]
    report = progress_reporter()
    built = build_index(vectors, settings["metric_type"], settings["index_type"],
                        settings["params"], report)  # fmt: skip
    blob = dump(built)  # type: ignore[arg-type]
    name = f"piece-{index:05d}.gpuvecix"
    write_atomic(out / name, blob)
    record = {
        "piece": index, "source": chunk.source, "start": chunk.start, "stop": chunk.stop,
        "rows": int(built.ntotal), "digest": vector_digest(vectors), "file": name,
        "nbytes": len(blob), "settings": settings,
        "describe": built.describe() if hasattr(built, "describe") else {},
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    write_atomic(record_path, json.dumps(record).encode())
    return record


def load_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the artifact at ``path``; a clear error when there is none."""
    p = Path(path) / MANIFEST
    if not p.exists():
        raise InvalidArgumentError(
            f"{path}: not a finished index artifact (no {MANIFEST}; build it with "
            "'gpuvec build-index --source ... --out DIR')"
        )
    manifest = json.loads(p.read_text())
    if manifest.get("format") != FORMAT:
        raise InvalidArgumentError(f"{path}: unknown index artifact format "
                                   f"{manifest.get('format')!r} (expected {FORMAT})")  # fmt: skip
    manifest["path"] = str(path)
    return manifest


def adoptable(manifest: dict[str, Any], definition: dict[str, Any], digest: str | None) -> str:
    """The piece file (a path) an index definition can adopt for a segment with vector
    ``digest``, or "" when the artifact does not fit (other field/type/metric/params, or no
    piece with that digest)."""
    if not digest or definition.get("field_name") != manifest["field"]:
        return ""
    if (str(definition.get("index_type", "")).upper() != manifest["index_type"]
            or str(definition.get("metric_type", "")).upper() != manifest["metric_type"]
            or dict(definition.get("params") or {}) != manifest["params"]):  # fmt: skip
        return ""
    for piece in manifest["pieces"]:
        if piece["digest"] == digest:
            return str(Path(manifest["path"]) / piece["file"])
    return ""
