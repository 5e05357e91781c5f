"""Framing of the local WAL's segment files: parse, scan and recover.

Each record is stored as one frame::

    u32 length of payload | u32 CRC32 of (more, payload) | u32 more | payload

``more`` counts the frames that follow in the same atomic batch (0 on a batch's last
frame). A batch counts only when all its frames are present and valid, so a crash in the
middle of ``append_many`` loses the whole unacknowledged batch, never part of it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

HEADER = struct.Struct("<III")
_MORE = struct.Struct("<I")


def encode_batch(payloads: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Frame a batch; each payload is given as parts (e.g. record header, Arrow bytes) and
    stored as their concatenation. Returns buffers for one ``writev``, without copying."""
    out: list[bytes] = []
    n = len(payloads)
    for i, parts in enumerate(payloads):
        more = n - 1 - i
        crc = zlib.crc32(_MORE.pack(more))
        for part in parts:
            crc = zlib.crc32(part, crc)
        out.append(HEADER.pack(sum(len(p) for p in parts), crc, more))
        out.extend(parts)
    return out


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a scan of one segment found: complete batches up to ``good_bytes``."""

    records: int  # complete records (in complete batches)
    good_bytes: int  # offset just past the last complete batch
    file_bytes: int
    problem: str | None  # why the scan stopped before the end of file, if it did


class FrameError(Exception):
    """A frame that is complete on disk but fails its checks (not a torn tail)."""


def read_batch(f: BinaryIO, max_payload: int) -> list[bytes] | None:
    """Read one complete batch at the file position.

    Returns the payloads, or None when the file ends inside the batch (the position is
    then unspecified: callers seek back). Raises :class:`FrameError` on a bad frame."""
    out: list[bytes] = []
    expected = 0
    while True:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            return None
        length, crc, more = HEADER.unpack(head)
        if length > max_payload:
            raise FrameError(f"frame length {length} exceeds the limit {max_payload}")
        payload = f.read(length)
        if len(payload) < length:
            return None
        if zlib.crc32(payload, zlib.crc32(_MORE.pack(more))) != crc:
            raise FrameError("CRC32 mismatch")
        if out and more != expected:
            raise FrameError(f"batch continuation count {more}, expected {expected}")
        out.append(payload)
        if more == 0:
            return out
        expected = more - 1


def scan(f: BinaryIO, max_payload: int, start: int = 0) -> ScanResult:
    """Count the complete records of a segment from byte ``start``; stop at the first
    torn or corrupt batch and say why."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(start)
    good, records, problem = start, 0, None
    while good < size:
        try:
            batch = read_batch(f, max_payload)
        except FrameError as e:
            problem = f"corrupt frame at byte {good}: {e}"
            break
        if batch is None:
            problem = f"torn batch at byte {good} ({size - good} trailing bytes)"
            break
        records += len(batch)
        good = f.tell()
    return ScanResult(records, good, size, problem)
