"""Chunk files of gpuvec's own Zarr arrays, written and read directly on a local store.

The arrays a sealed segment holds (:mod:`.segment`) all have one layout: a regular chunk
grid along rows only, the ``bytes`` codec (little endian) followed by ``crc32c``, no
compression, no shards, chunk keys ``c/<i>[/0...]``. For that layout a chunk file is the
chunk's bytes (the edge chunk padded with the fill value 0 to the full chunk shape) plus
the little-endian CRC32C of those bytes — exactly what zarr-python writes (the tests compare
the files byte for byte), so zarr reads what is written here and this reads what zarr
wrote. zarr-python runs every chunk of every array in a process through one event-loop
thread; these plain file reads and writes release the GIL, so segment writes and loads in
several data-node threads run in parallel.

Anything else (an object store, another codec chain, shards) gets ``False`` / ``None``
and the caller goes through zarr. A chunk file zarr left out (all fill value) reads as 0.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from zarr.storage import LocalStore

from gpuvec.errors import CorruptDataError


def _root(store: Any) -> Path | None:
    return Path(store.root) if isinstance(store, LocalStore) else None


def _chunk_file(base: Path, i: int, ndim: int) -> Path:
    return base.joinpath("c", str(i), *(["0"] * (ndim - 1)))


def write_chunks(store: Any, array_path: str, data: np.ndarray, chunk_rows: int) -> int | None:
    """Write ``data``'s chunk files under ``array_path`` (its ``zarr.json`` is zarr's to
    write) and return the CRC32C of ``data``'s bytes (computed block by block while each
    block is in cache); None when ``store`` is not local (nothing written)."""
    root = _root(store)
    if root is None:
        return None
    data = np.asarray(data)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    base, n, inner = root / array_path, data.shape[0], data.shape[1:]
    whole = 0
    for i, a in enumerate(range(0, n, chunk_rows)):
        block = np.ascontiguousarray(data[a : a + chunk_rows]).view()
        block.flags.writeable = False  # google_crc32c takes read-only buffers only
        whole = google_crc32c.extend(whole, block)
        if len(block) < chunk_rows:
            padded = np.zeros((chunk_rows, *inner), data.dtype)
            padded[: len(block)] = block
            block = padded.view()
            block.flags.writeable = False
        path = _chunk_file(base, i, data.ndim)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(block)
            f.write(struct.pack("<I", google_crc32c.value(block)))
    return whole


def _plain_layout(arr: Any) -> bool:
    """Whether a zarr array has the layout above."""
    meta = arr.metadata
    codecs = [type(c).__name__ for c in getattr(meta, "codecs", ())]
    if codecs != ["BytesCodec", "Crc32cCodec"]:
        return False
    endian = getattr(meta.codecs[0], "endian", None)
    if endian is not None and getattr(endian, "value", endian) != "little":
        return False
    chunks = tuple(arr.chunks)
    return chunks[1:] == tuple(arr.shape[1:]) and getattr(meta, "fill_value", 0) == 0


def read_rows(store: Any, array_path: str, arr: Any, start: int, stop: int) -> np.ndarray | None:
    """Rows ``[start, stop)`` of the zarr array ``arr`` at ``array_path``, each chunk's
    CRC32C checked (:class:`CorruptDataError` naming the file); None when ``store`` is not
    local or ``arr`` has another layout."""
    root = _root(store)
    if root is None or not _plain_layout(arr):
        return None
    stop = min(stop, int(arr.shape[0]))
    start = min(max(0, start), stop)
    dtype = np.dtype(arr.dtype).newbyteorder("<")
    inner, step = tuple(arr.shape[1:]), int(arr.chunks[0])
    out = np.empty((stop - start, *inner), dtype)
    width = int(np.prod(inner, dtype=np.int64)) * dtype.itemsize
    base = root / array_path
    for i in range(start // step, -(-stop // step) if stop > start else 0):
        a, b = max(start, i * step), min(stop, (i + 1) * step)
        dest = out[a - start : b - start]
        path = _chunk_file(base, i, len(arr.shape))
        try:
            with open(path, "rb") as f:
                if b - a == step:  # a whole chunk: straight into the result, no copy
                    got = f.readinto(memoryview(dest).cast("B"))
                    body, tail = dest, f.read()
                else:
                    raw = f.read()
                    got, tail = len(raw) - 4, raw[-4:]
                    body = np.frombuffer(raw, dtype, count=max(0, got) // dtype.itemsize)
        except FileNotFoundError:
            dest[...] = 0  # zarr leaves out chunks that are all fill value
            continue
        check = body.view()
        check.flags.writeable = False  # google_crc32c takes read-only buffers only
        if (
            got != step * width
            or len(tail) != 4
            or struct.pack("<I", google_crc32c.value(check)) != bytes(tail)
        ):
            raise CorruptDataError(f"chunk file {os.fspath(path)} fails its CRC32C check")
        if body is not dest:
            dest[...] = body.reshape(step, *inner)[a - i * step : b - i * step]
    return out.astype(dtype.newbyteorder("="), copy=False)
