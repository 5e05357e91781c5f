"""Arrow column helpers every layer shares.

:func:`take_columns` gathers rows of named columns, a column the table lacks (a field
added to the collection after those rows were written) reading as nulls.

``ChunkedArray.combine_chunks()`` copies even a column of one chunk (pyarrow 26
concatenates it with nothing): for a half-gigabyte vector column that is a copy per call
on the hot paths of import, seal and load. :func:`one_array` returns the one chunk
itself and concatenates only when there are several.
"""

from __future__ import annotations

import pyarrow as pa


def one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``col`` as one Arrow array: its only chunk as is (no copy), else the chunks joined."""
    if isinstance(col, pa.Array):
        return col
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks()


def take_columns(table: pa.Table, rows: object, fields: list[str]) -> pa.Table:
    """Columns ``fields`` of ``table`` at row offsets ``rows``, in that order; a field the
    table has no column for reads as nulls (type ``null``: callers cast to the schema)."""
    idx = pa.array(rows, pa.int64())
    have = [f for f in fields if f in table.column_names]
    got = table.select(have).take(idx)
    if len(have) == len(fields):
        return got
    return pa.table({f: got.column(f) if f in have else pa.nulls(len(idx)) for f in fields})
