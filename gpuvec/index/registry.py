"""Which implementation serves each index type, and the index file format.

Owns :func:`build_index` (validate, then dispatch: FLAT and GPU_BRUTE_FORCE →
:class:`~gpuvec.index.flat.FlatIndex`; BIN_FLAT and BIN_IVF_FLAT, the BINARY_VECTOR types
with the HAMMING/JACCARD metrics → :class:`~gpuvec.index.binary.BinaryIndex`; every other
type → :class:`~gpuvec.index.faiss_index.FaissIndex`), :func:`load_index` and :func:`dump`.
A binary type with a float metric, or a float type with a binary metric, is refused.

Index file layout (what goes under a segment's ``index/<index_id>/``)::

    b"GPUVECIX" | u32 format (=1) | u32 header length | header (UTF-8 JSON) | payload

The header names the requested type, metric, dim (bits for binary types), rows, resolved
params, implementation and its serving plan; the payload is faiss ``serialize_index`` bytes
(``impl`` "faiss"), the inverted lists of BIN_IVF_FLAT (``impl`` "binary", see
:func:`gpuvec.index.binary.pack_arrays`), the scalar index's arrays, or empty for FLAT and
BIN_FLAT, whose vectors stay in the segment and are passed back as ``base`` when loading.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from gpuvec.errors import CorruptDataError, InvalidArgumentError
from gpuvec.index import validate
from gpuvec.index.base import VectorIndex
from gpuvec.index.binary import BinaryIndex
from gpuvec.index.faiss_index import FaissIndex
from gpuvec.index.flat import FlatIndex
from gpuvec.index.scalar import ScalarIndex
from gpuvec.index.sparse import SparseIndex
from gpuvec.index.spec import BINARY_INDEX_TYPES, BINARY_METRICS, METRICS

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
    them into the index (normalised for COSINE). BIN_FLAT/BIN_IVF_FLAT take packed binary
    vectors (uint8 [n, dim/8]) with HAMMING or JACCARD; a binary type with a float metric,
    or a float type with a binary metric, is refused. ``progress(done, total)`` is told
    the rows added so far (the data nodes report it to the dashboard)."""
    itype = validate.check_index_type(index_type)
    binary_metric = isinstance(metric, str) and metric.upper() in BINARY_METRICS
    if itype == "AUTOINDEX" and binary_metric:  # Milvus's autoIndex for binary vectors
        return BinaryIndex.build("BIN_IVF_FLAT", vectors, metric,
                                 {"nlist": _auto_nlist(len(vectors))}, progress)  # fmt: skip
    _check_pairing(itype, metric)
    if itype in BINARY_INDEX_TYPES:
        return BinaryIndex.build(itype, vectors, metric, params, progress)
    if np.asarray(vectors).dtype != np.float32:
        vectors = np.asarray(vectors).astype(np.float32)  # FLOAT16 / BFLOAT16 / INT8 rows
    metric = validate.check_metric(metric)
    if itype in _EXACT:
        index = FlatIndex.build(itype, vectors, metric, params)
        if progress is not None:
            progress(index.ntotal, index.ntotal)
        return index
    return FaissIndex.build(itype, vectors, metric, params, progress)


def _auto_nlist(n: int) -> int:
    """AUTOINDEX's nlist on binary vectors: Milvus's 1024, at most one list per 39 rows
    (knowhere's minimum training points per list) so a small segment is not all lists."""
    return max(1, min(1024, n // 39))


def _check_pairing(itype: str, metric: Any) -> None:
    """InvalidArgumentError when ``metric`` belongs to the other kind of vectors than
    ``itype`` (unknown metrics are named by ``validate.check_metric``)."""
    name = metric.upper() if isinstance(metric, str) else None
    binary = itype in BINARY_INDEX_TYPES
    if binary and name in METRICS:
        raise InvalidArgumentError(
            f"index type {itype} does not support metric_type {metric!r}: binary vectors "
            f"take {', '.join(BINARY_METRICS)}"
        )
    if not binary and name in BINARY_METRICS:
        raise InvalidArgumentError(
            f"index type {itype} does not support metric_type {metric!r}: {metric} is for "
            f"binary vectors, indexed by {', '.join(BINARY_INDEX_TYPES)}"
        )


def dump(index: FlatIndex | FaissIndex | ScalarIndex | BinaryIndex | SparseIndex) -> bytes:
    """The index file of ``index`` (module docstring)."""
    impl = {FlatIndex: "flat", FaissIndex: "faiss", ScalarIndex: "scalar",
            BinaryIndex: "binary", SparseIndex: "sparse"}[type(index)]  # fmt: skip
    header: dict[str, Any] = {
        "index_type": index.index_type,
        "metric_type": index.metric,
        "dim": index.dim,
        "rows": index.ntotal,
        "params": index.params,
        "impl": impl,
    }
    if isinstance(index, FaissIndex | ScalarIndex | BinaryIndex | SparseIndex):
        header.update(index.header_extra())
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<II", FORMAT, len(head)) + head + index.payload()


def load_index(data: bytes | bytearray | memoryview, base: Any | None = None) -> VectorIndex:
    """An index from its file bytes. ``base`` (the segment's vectors, or a function
    returning them, called only when needed) is required for FLAT, GPU_BRUTE_FORCE and
    BIN_FLAT, whose files hold no vectors, and ignored otherwise."""
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
    if header.get("impl") == "sparse":
        try:
            return SparseIndex.from_payload(header, payload)  # type: ignore[return-value]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
            raise CorruptDataError(f"sparse index payload is unreadable: {e}") from e
    if callable(base):  # only the types that borrow the segment's vectors ask for them
        base = base() if header.get("impl") in ("binary", "flat") else None
    if header.get("impl") == "binary":
        try:
            return BinaryIndex.from_payload(header, payload, base)
        except InvalidArgumentError:
            raise  # a missing or mismatched base: the caller's mistake, not the file's
        except (KeyError, TypeError, ValueError, struct.error) as e:
            raise CorruptDataError(f"binary index payload is unreadable: {e}") from e
    if header.get("impl") == "flat":
        return FlatIndex.from_payload(header, payload, base)
    if header.get("impl") == "faiss":
        try:
            return FaissIndex.from_payload(header, payload, base)
        except RuntimeError as e:  # faiss's deserialisation error
            raise CorruptDataError(f"faiss index payload is unreadable: {e}") from e
    raise InvalidArgumentError(f"unknown index implementation {header.get('impl')!r}")
