"""Output-field fetch: gathers the columns of hit rows from the segments that hold them,
in hit order, with the schema's Arrow types (growing and sealed segments agree)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec import vectors
from gpuvec.query.segdata import SegmentData
from gpuvec.schema import CollectionSchema, arrow_schema


def fetch_rows(
    schema: CollectionSchema,
    segs: list[SegmentData],
    seg_idx: np.ndarray,
    rows: np.ndarray,
    columns: tuple[str, ...],
) -> pa.Table:
    """Columns ``columns`` of the rows ``(segs[seg_idx[i]], rows[i])``, in that order."""
    target = arrow_schema(schema)
    fields = [target.field(c) for c in columns if c in target.names]
    out_schema = pa.schema(fields)
    if len(rows) == 0:
        return out_schema.empty_table()
    vector_types = {f.name: f.dtype for f in schema.vector_fields
                    if f.dtype in vectors.KINDS}  # sparse cells sit with the scalar rows
    vector_names = set(vector_types)
    pieces, order = [], []
    for s in np.unique(seg_idx):
        pick = np.flatnonzero(seg_idx == s)
        seg, r = segs[int(s)], rows[pick]
        scalar_cols = [c for c in out_schema.names if c not in vector_names]
        t = seg.take(r, scalar_cols) if scalar_cols else pa.table({})
        cols = {}
        for f in out_schema:
            if f.name in vector_names:
                cols[f.name] = vectors.column(vector_types[f.name], seg.vectors(f.name)[r])
            else:
                cols[f.name] = t.column(f.name).cast(f.type)
        pieces.append(pa.table(cols, schema=out_schema))
        order.append(pick)
    table = pa.concat_tables(pieces)
    inverse = np.empty(len(rows), np.int64)
    inverse[np.concatenate(order)] = np.arange(len(rows))
    return table.take(pa.array(inverse))


def hit_keys(segs: list[SegmentData], seg_idx: np.ndarray, rows: np.ndarray) -> list[Any]:
    """Primary keys of the rows ``(segs[seg_idx[i]], rows[i])`` as Python values, in that
    order (the search path's common case: no output fields, so no Arrow table)."""
    if len(rows) == 0:
        return []
    if len(segs) == 1:
        return segs[0].pks[rows].tolist()
    keys = np.empty(len(rows), dtype=object)
    for s in np.unique(seg_idx):
        pick = seg_idx == s
        keys[pick] = segs[int(s)].pks[rows[pick]]
    return keys.tolist()
