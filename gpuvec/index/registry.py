"""Which implementation serves each index type, and the index file format.

Owns :func:`build_index` (validate, then dispatch: FLAT and GPU_BRUTE_FORCE →
:class:`~gpuvec.index.flat.FlatIndex`, every other type → :class:`~gpuvec.index.
faiss_index.FaissIndex`), :func:`load_index` and :func:`dump`.

Index file layout (what goes under a segment's ``index/<index_id>/``)::

    b"GPUVECIX" | u32 format (=1) | u32 header length | header (UTF-8 JSON) | payload

The header names the requested type, metric, dim, rows, resolved params, implementation
and its serving plan; the payload is faiss ``serialize_index`` bytes (empty for FLAT,
whose vectors stay in the segment and are passed back as ``base`` when loading).
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from typing import Any

from gpuvec.errors import CorruptDataError, InvalidArgumentError
from gpuvec.index import validate
from gpuvec.index.base import VectorIndex
from gpuvec.index.faiss_index import FaissIndex
from gpuvec.index.flat import FlatIndex
from gpuvec.index.scalar import ScalarIndex

__all__ = ["FORMAT", "MAGIC", "build_index", "dump", "load_index"]

MAGIC = b"GPUVECIX"
FORMAT = 1
_EXACT = ("FLAT", "GPU_BRUTE_FORCE")


def build_index(
    vectors: Any,
    metric: str,
    index_type: str = "AUTOINDEX",
    params: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VectorIndex:
    """Build an index of ``index_type`` over ``vectors`` (float32 [n, dim]; row i of the
    input is result row i). ``params`` are Milvus build params (validated, defaults
    filled in). FLAT/GPU_BRUTE_FORCE borrow ``vectors`` (no copy); the faiss types copy
    them into the index (normalised for COSINE). ``progress(done, total)`` is told the
    rows added so far (the data nodes report it to the dashboard)."""
    itype = validate.check_index_type(index_type)
    metric = validate.check_metric(metric)
    if itype in _EXACT:
        index = FlatIndex.build(itype, vectors, metric, params)
        if progress is not None:
            progress(index.ntotal, index.ntotal)
        return index
    return FaissIndex.build(itype, vectors, metric, params, progress)


def dump(index: FlatIndex | FaissIndex | ScalarIndex) -> bytes:
    """The index file of ``index`` (module docstring)."""
    impl = {FlatIndex: "flat", FaissIndex: "faiss", ScalarIndex: "scalar"}[type(index)]
    header: dict[str, Any] = {
        "index_type": index.index_type,
        "metric_type": index.metric,
        "dim": index.dim,
        "rows": index.ntotal,
        "params": index.params,
        "impl": impl,
    }
    if isinstance(index, FaissIndex | ScalarIndex):
        header.update(index.header_extra())
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<II", FORMAT, len(head)) + head + index.payload()


def load_index(data: bytes | bytearray | memoryview, base: Any | None = None) -> VectorIndex:
    """An index from its file bytes. ``base`` (the segment's vectors) is required for FLAT
    and GPU_BRUTE_FORCE, whose files hold no vectors, and ignored otherwise."""
    buf = bytes(data)
    if len(buf) < len(MAGIC) + 8 or not buf.startswith(MAGIC):
        raise CorruptDataError("not a gpuvec index file (bad magic)")
    fmt, hlen = struct.unpack_from("<II", buf, len(MAGIC))
    if fmt != FORMAT:
        raise CorruptDataError(f"unsupported gpuvec index file format {fmt}")
    start = len(MAGIC) + 8
    try:
        header = json.loads(buf[start : start + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptDataError(f"gpuvec index file header is unreadable: {e}") from e
    payload = buf[start + hlen :]
    if header.get("impl") == "scalar":
        try:
            return ScalarIndex.from_payload(header, payload)  # type: ignore[return-value]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
            raise CorruptDataError(f"scalar index payload is unreadable: {e}") from e
    if header.get("impl") == "flat":
        return FlatIndex.from_payload(header, payload, base)
    if header.get("impl") == "faiss":
        try:
            return FaissIndex.from_payload(header, payload, base)
        except RuntimeError as e:  # faiss's deserialisation error
            raise CorruptDataError(f"faiss index payload is unreadable: {e}") from e
    raise InvalidArgumentError(f"unknown index implementation {header.get('impl')!r}")
