"""Arrow column helpers every layer shares.

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
