"""Top-k reduce across segments: merges per-segment hits into global hits that remember
which segment and row each came from (for output-field fetch)."""

from __future__ import annotations

import numpy as np

from gpuvec import ops
from gpuvec.records import Hits

_ROW_BITS = 40


def reduce_hits(
    parts: list[Hits], k: int, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-segment hits; return (distances, segment index, row) arrays [nq, k] with
    segment index -1 where fewer than k hits exist."""
    if not parts:
        raise ValueError("reduce_hits needs at least one part")
    if len(parts) == 1:  # one segment: its hits are already the best-first top k
        h = parts[0]
        if isinstance(h.rows, np.ndarray) and h.rows.shape[1] == k:
            rows = np.asarray(h.rows, np.int64)
            return np.asarray(h.distances, np.float32), np.where(rows >= 0, 0, -1), rows
    encoded = []
    for s, h in enumerate(parts):
        ids = np.where(h.rows >= 0, (np.int64(s) << _ROW_BITS) | h.rows, -1)
        encoded.append((h.distances, ids))
    dist, ids = ops.merge_topk(encoded, k, metric)
    seg = np.where(ids >= 0, ids >> _ROW_BITS, -1)
    row = np.where(ids >= 0, ids & ((1 << _ROW_BITS) - 1), -1)
    return dist, seg, row
