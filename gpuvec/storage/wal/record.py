"""WAL record: a small fixed header plus an Arrow IPC payload; one encoding for all WALs.

Layout (little endian)::

    u8  format version (1)
    u8  kind (RecordKind)
    u64 ts_begin
    u64 ts_end
    u16 channel name length, then the UTF-8 channel name
    ... payload: Arrow IPC stream bytes (may be empty, e.g. for time ticks)

The local WAL adds its own frame (length + CRC32) around these bytes; Kafka carries them
as the message value.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import pyarrow as pa

from gpuvec.errors import CorruptDataError, InvalidArgumentError

FORMAT_VERSION = 1
_HEAD = struct.Struct("<BBQQH")
_U64_MAX = (1 << 64) - 1


class RecordKind(enum.IntEnum):
    INSERT = 1
    DELETE = 2
    DDL = 3
    TIME_TICK = 4
    FLUSH = 5
    BARRIER = 6


@dataclass(frozen=True, slots=True)
class Record:
    """One WAL entry. ``ts_begin ≤ ts_end`` are hybrid timestamps (DESIGN §3)."""

    kind: RecordKind
    channel: str
    ts_begin: int
    ts_end: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, RecordKind):
            try:
                object.__setattr__(self, "kind", RecordKind(self.kind))
            except ValueError:
                raise InvalidArgumentError(f"unknown WAL record kind {self.kind!r}") from None
        for name in ("ts_begin", "ts_end"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= _U64_MAX:
                raise InvalidArgumentError(f"WAL record {name} must be a uint64, got {v!r}")
        if self.ts_begin > self.ts_end:
            raise InvalidArgumentError(
                f"WAL record ts_begin {self.ts_begin} > ts_end {self.ts_end}"
            )

    @classmethod
    def from_arrow(
        cls,
        kind: RecordKind,
        channel: str,
        ts_begin: int,
        ts_end: int,
        data: pa.RecordBatch | pa.Table,
    ) -> Record:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as w:
            w.write(data)
        return cls(kind, channel, ts_begin, ts_end, sink.getvalue().to_pybytes())

    def table(self) -> pa.Table:
        """Decode the Arrow payload (an empty table when there is none)."""
        if not self.payload:
            return pa.table({})
        try:
            return pa.ipc.open_stream(self.payload).read_all()
        except pa.ArrowInvalid as e:
            raise CorruptDataError(
                f"WAL record on channel {self.channel!r} has an invalid Arrow payload: {e}"
            ) from e

    def header(self) -> bytes:
        """The encoded bytes before the payload (``encode() == header() + payload``)."""
        name = self.channel.encode("utf-8")
        return (
            _HEAD.pack(FORMAT_VERSION, int(self.kind), self.ts_begin, self.ts_end, len(name)) + name
        )

    def encode(self) -> bytes:
        return self.header() + self.payload

    @property
    def encoded_size(self) -> int:
        return _HEAD.size + len(self.channel.encode("utf-8")) + len(self.payload)

    @classmethod
    def decode(cls, data: bytes | memoryview, where: str = "") -> Record:
        """Parse :meth:`encode` output; ``where`` names the position for error messages."""
        try:
            version, kind, tb, te, n = _HEAD.unpack_from(data, 0)
        except struct.error:
            raise CorruptDataError(f"WAL record {where} is truncated ({len(data)} bytes)") from None
        if version != FORMAT_VERSION:
            raise CorruptDataError(f"WAL record {where} has unknown format version {version}")
        start = _HEAD.size
        if start + n > len(data):
            raise CorruptDataError(f"WAL record {where} is truncated in its channel name")
        channel = bytes(data[start : start + n]).decode("utf-8")
        try:
            return cls(RecordKind(kind), channel, tb, te, bytes(data[start + n :]))
        except (ValueError, InvalidArgumentError) as e:
            raise CorruptDataError(f"WAL record {where} is invalid: {e}") from e
