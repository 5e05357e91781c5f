"""Parquet import sources: one file (or each file of a directory), columns named after
fields, vectors as ``list<float>`` (or fixed-size list) columns, JSON and the dynamic field
``$meta`` as JSON text — Milvus's layout, and what pymilvus's ``LocalBulkWriter`` writes.

Planning reads the footer (schema, row groups) and, for a vector column of variable-size
lists, that one column of the first row group to learn its dimension. Chunks are runs of
whole row groups; reading a chunk reads only its row groups.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from gpuvec.pipelines.sources_io import Location

from gpuvec.columns import check_columns, column_type_problem, vector_dim_problem
from gpuvec.errors import DataError
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema

_INDEX = re.compile(r"__index_level_\d+__\Z")  # a pandas index written as a column


def _open(loc: Location) -> pq.ParquetFile:
    source: Any = loc.path if loc.local else loc.open()
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{loc.name}: not a readable Parquet file ({e})") from None


def _columns(pf: pq.ParquetFile) -> list[str]:
    return [n for n in pf.schema_arrow.names if not _INDEX.match(n)]


def plan_parquet(
    schema: CollectionSchema, loc: Location, chunk_rows: int
) -> tuple[list[tuple[int, int]], float]:
    """Check one file's columns against the schema; return its row ranges (whole row
    groups, about ``chunk_rows`` rows each) and the bytes one row costs to read."""
    pf = _open(loc)
    names = _columns(pf)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{loc.name}: column {dup!r} appears twice")
    check_columns(schema, names, loc.name)
    arrow = pf.schema_arrow
    for name in names:
        t = arrow.field(name).type
        if name == DYNAMIC_FIELD_NAME:
            if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
                raise DataError(f"{loc.name}, column {name!r}: expects JSON objects as text, "
                                f"got Arrow type {t}")  # fmt: skip
            continue
        if name not in schema.field_names:  # a dynamic key (check_columns allowed it)
            continue
        field = schema.field(name)
        problem = column_type_problem(field, t)
        if problem is None and field.is_vector:
            problem = _dim_problem(pf, name, field)
        if problem is not None:
            raise DataError(f"{loc.name}, column {name!r}: {problem}")
    md = pf.metadata
    ranges: list[tuple[int, int]] = []
    start = rows = 0
    for g in range(md.num_row_groups):  # whole row groups, past chunk_rows only when one is
        n = md.row_group(g).num_rows
        if rows and rows + n > chunk_rows:
            ranges.append((start, start + rows))
            start, rows = start + rows, 0
        rows += n
    if rows:
        ranges.append((start, start + rows))
    return ranges, loc.size() / max(1, md.num_rows)


def _dim_problem(pf: pq.ParquetFile, name: str, field: Any) -> str | None:
    t = pf.schema_arrow.field(name).type
    if pa.types.is_fixed_size_list(t):
        return vector_dim_problem(field, t.list_size)
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return None  # raw bytes per row: their lengths are checked with the values
    if pf.metadata.num_row_groups == 0 or pf.metadata.num_rows == 0:
        return None
    first = pf.read_row_group(0, columns=[name]).column(0)
    lengths = pc.drop_null(pc.list_value_length(first))
    return vector_dim_problem(field, lengths[0].as_py()) if len(lengths) else None


def read_parquet(loc: Location, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a file planned by :func:`plan_parquet`: its row groups."""
    pf = _open(loc)
    md = pf.metadata
    groups, pos, rows = [], 0, 0
    for g in range(md.num_row_groups):
        n = md.row_group(g).num_rows
        if pos >= start and pos + n <= stop:
            groups.append(g)
            rows += n
        pos += n
    if rows != stop - start:
        raise DataError(
            f"{loc.name}: rows {start}..{stop} are not whole row groups (the file changed "
            "since the import was planned)"
        )
    table = pf.read_row_groups(groups, columns=_columns(pf), use_threads=True)
    return table.replace_schema_metadata(None)
