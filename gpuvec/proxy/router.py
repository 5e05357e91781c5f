"""Routing rows to shards by primary-key hash (stable across processes and restarts)."""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def shard_of(pks: np.ndarray, num_shards: int) -> np.ndarray:
    """Shard index of each primary key (int64 keys: Fibonacci hash; strings: CRC32)."""
    if num_shards == 1:
        return np.zeros(len(pks), np.int64)
    if pks.dtype.kind in "iu":
        with np.errstate(over="ignore"):
            h = pks.astype(np.uint64) * _GOLDEN
        return ((h >> np.uint64(33)) % np.uint64(num_shards)).astype(np.int64)
    return np.fromiter(
        (zlib.crc32(str(p).encode()) % num_shards for p in pks), np.int64, count=len(pks)
    )
