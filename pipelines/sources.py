"""The read side of bulk import: which files a request names, the checks made before any
data is read in bulk, how the sources split into chunks, and reading one chunk.

Formats (Milvus's, and the layouts pymilvus's ``LocalBulkWriter`` writes): Parquet files
(:mod:`.sources_parquet`), groups of ``<field>.npy`` files (:mod:`.sources_npy`), JSON
documents and JSON lines (:mod:`.sources_json`); on local paths or remote URIs such as
``s3://bucket/key`` with fsspec ``storage_options`` (:mod:`.sources_io`).

``files`` is a list of paths (each a file or a directory) or, as Milvus and pymilvus give
it, a list of lists: one inner list is one source — one file, or the ``.npy`` files of one
group. A directory expands into its Parquet files (each its own source), its ``.npy``
files (one group), its JSON files, or, holding none of those, its subdirectories (a
``LocalBulkWriter`` data path: ``1/``, ``2/``... batches); names sort naturally.

Invariants:

- :func:`plan_import` raises (InvalidArgumentError for the request, DataError for a file's
  content), naming the file and the problem, before anything is imported: missing file,
  unknown format, columns against the schema, vector dimensions, dtypes, row counts of a
  ``.npy`` group — from headers and footers, not the data.
- A :class:`Chunk` names a file as the user did (a file found in a directory as the
  directory's name joined with the file's), so errors and rejected-row reports point at
  it; ``start``/``stop`` count rows of that file (or ``.npy`` group).
- :func:`read_chunk` reads only the chunk: its Parquet row groups, memory-mapped ``.npy``
  slices (or a byte range on S3), its JSON lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpuvec.pipelines.sources_io import Location, open_location, remember_row_bytes, row_bytes
from gpuvec.pipelines.sources_json import plan_json, read_json
from gpuvec.pipelines.sources_npy import plan_npy, read_npy
from gpuvec.pipelines.sources_parquet import plan_parquet, read_parquet

from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import CollectionSchema

__all__ = ["KINDS", "Chunk", "plan_import", "read_chunk", "source_bytes"]

KINDS = ("parquet", "npy", "json", "jsonl")
_EXTENSIONS = {".parquet": "parquet", ".npy": "npy", ".json": "json", ".jsonl": "json"}


@dataclass(frozen=True)
class Chunk:
    """Rows ``[start, stop)`` of one source: what one import task reads."""

    source: str  # the file (or the .npy group's directory) as the user named it
    kind: str  # "parquet" | "npy" | "json" | "jsonl"
    start: int  # first row (0-based) of the chunk within the source
    stop: int  # one past the last row
    files: tuple[str, ...] = ()  # the .npy files of a group / the file itself
    part: int = 0  # parquet: file index within a directory source; json: unused


@dataclass(frozen=True)
class _Source:
    kind: str  # "parquet" | "npy" | "json" (JSON lines are told apart when planned)
    name: str
    locs: tuple[Location, ...]
    part: int = 0


def plan_import(
    schema: CollectionSchema,
    files: Sequence[str] | Sequence[Sequence[str]],
    *,
    chunk_rows: int = 100_000,
    storage_options: dict | None = None,
) -> list[Chunk]:
    """Check every source against ``schema`` and split it into chunks of about
    ``chunk_rows`` rows (Parquet: whole row groups; NumPy: row ranges; a JSON document:
    one chunk; JSON lines: line ranges). Sources without rows give no chunk."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidArgumentError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    chunks: list[Chunk] = []
    for src in _sources(files, storage_options):
        names = tuple(loc.name for loc in src.locs)
        if src.kind == "parquet":
            kind = "parquet"
            ranges, per_row = plan_parquet(schema, src.locs[0], chunk_rows)
        elif src.kind == "npy":
            kind = "npy"
            ranges, per_row = plan_npy(schema, src.name, src.locs, chunk_rows)
        else:
            kind, ranges, per_row = plan_json(schema, src.locs[0], chunk_rows)
        remember_row_bytes(names, per_row)
        chunks += [Chunk(src.name, kind, a, b, names, src.part) for a, b in ranges]
    return chunks


def read_chunk(
    chunk: Chunk, schema: CollectionSchema, *, storage_options: dict | None = None
) -> Any:
    """The chunk's rows as column data for :func:`gpuvec.columns.columns_to_table`: a
    ``pyarrow.Table`` (Parquet), a dict of arrays (NumPy: memory-mapped views, or the
    chunk's bytes from S3) or a dict of lists (JSON, ``$meta`` as dicts)."""
    if chunk.kind not in KINDS:
        raise InvalidArgumentError(f"{chunk.source}: unknown chunk kind {chunk.kind!r}")
    if not chunk.files or not 0 <= chunk.start < chunk.stop:
        raise InvalidArgumentError(f"{chunk.source}: empty or invalid chunk {chunk!r}")
    locs = tuple(open_location(f, storage_options) for f in chunk.files)
    if chunk.kind == "parquet":
        return read_parquet(locs[0], chunk.start, chunk.stop)
    if chunk.kind == "npy":
        return read_npy(locs, chunk.start, chunk.stop)
    return read_json(chunk.kind, locs[0], schema, chunk.start, chunk.stop)


def source_bytes(chunks: list[Chunk]) -> int:
    """About how many bytes reading ``chunks`` costs (for progress): rows times the bytes
    per row measured when they were planned in this process; otherwise, for local files,
    their size shared out over the rows the chunks cover (remote: unknown, 0)."""
    ends: dict[str, int] = {}
    for c in chunks:
        ends[c.source] = max(ends.get(c.source, 0), c.stop)
    total = 0.0
    for c in chunks:
        for f in c.files:
            per_row = row_bytes(f)
            if per_row is None:
                path = f.removeprefix("file://")
                if "://" in path or not os.path.isfile(path):
                    continue
                per_row = os.path.getsize(path) / max(1, ends[c.source])
            total += per_row * (c.stop - c.start)
    return int(total)


# -- which sources a request names ------------------------------------------------------------
def _sources(files: Any, storage_options: dict | None) -> list[_Source]:
    if isinstance(files, str | os.PathLike):
        files = [files]
    if not isinstance(files, Sequence) or not files:
        raise InvalidArgumentError(f"files must be a non-empty list of paths, got {files!r}")
    out: list[_Source] = []
    for item in files:
        if isinstance(item, str | os.PathLike):
            out += _expand(open_location(item, storage_options))
        elif isinstance(item, Sequence) and item:
            locs = [open_location(p, storage_options) for p in item]
            out += _expand(locs[0]) if len(locs) == 1 else [_group(locs)]
        else:
            raise InvalidArgumentError(
                f"each entry of files must be a path or a non-empty list of paths, got {item!r}"
            )
    seen: set[str] = set()
    for src in out:
        for loc in src.locs:
            if loc.name in seen:
                raise InvalidArgumentError(f"{loc.name}: named twice in one import")
            seen.add(loc.name)
    return out


def _group(locs: list[Location]) -> _Source:
    """An inner list of several files: the ``.npy`` files of one group."""
    bad = [loc.name for loc in locs if not loc.basename.endswith(".npy")]
    if bad:
        raise InvalidArgumentError(
            f"{bad[0]}: a list of several files must be the .npy files of one group; give "
            "each Parquet or JSON file as a list of its own"
        )
    for loc in locs:
        _must_exist(loc)
    parent = os.path.dirname(locs[0].name.rstrip("/")) or locs[0].name
    return _Source("npy", parent, tuple(locs))


def _must_exist(loc: Location) -> None:
    if not loc.exists():
        raise InvalidArgumentError(f"{loc.name}: no such file or directory")


def _kind(loc: Location) -> str | None:
    return next((k for ext, k in _EXTENSIONS.items() if loc.basename.endswith(ext)), None)


def _expand(loc: Location, part: int = 0) -> list[_Source]:
    _must_exist(loc)
    if not loc.isdir():
        kind = _kind(loc)
        if kind is None:
            raise InvalidArgumentError(
                f"{loc.name}: unknown import format (expected .parquet, .npy, .json or .jsonl)"
            )
        return [_Source(kind, loc.name, (loc,), part)]
    entries = loc.children()
    by_kind: dict[str, list[Location]] = {}
    for e in entries:
        if (kind := _kind(e)) is not None:
            by_kind.setdefault(kind, []).append(e)
    if len(by_kind) > 1:
        raise InvalidArgumentError(
            f"{loc.name}: mixes import formats ({', '.join(sorted(by_kind))}); put each "
            "format in a directory of its own"
        )
    if "npy" in by_kind:
        return [_Source("npy", loc.name, tuple(by_kind["npy"]))]
    if by_kind:
        kind, found = next(iter(by_kind.items()))
        return [_Source(kind, e.name, (e,), i) for i, e in enumerate(found)]
    subdirs = [e for e in entries if e.isdir()]
    out = [src for d in subdirs for src in _expand(d)]
    if not out:
        raise InvalidArgumentError(
            f"{loc.name}: no .parquet, .npy, .json or .jsonl files in this directory"
        )
    return out
