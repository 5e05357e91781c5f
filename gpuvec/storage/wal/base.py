"""The ``WAL`` Protocol (DESIGN §2): per-channel ordered logs of :class:`Record` s.

Positions are per-channel integers that strictly increase with each appended record
(dense for the local log; Kafka offsets, which skip transaction markers, for Kafka).
``high_watermark(channel)`` is one past the last readable position; a reader started at a
position sees every record at or after it, in order, exactly once.

Exactly one writer per channel: opening a new writer *fences* the previous one, whose
next append raises :class:`~gpuvec.errors.FencedError`. Readers never commit anything to
the log; consumers keep their checkpoints in meta storage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gpuvec.errors import InvalidChannelError
from gpuvec.storage.wal.record import Record

CHANNEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,199}$")


def check_channel(channel: str) -> str:
    """Validate a channel name: a letter or ``_`` then letters, digits, ``_``/``-``; ≤ 200."""
    if not isinstance(channel, str) or not CHANNEL_RE.match(channel):
        raise InvalidChannelError(
            f"invalid WAL channel name {channel!r}: use a letter or '_' followed by up to "
            "199 letters, digits, '_' or '-'"
        )
    return channel


@runtime_checkable
class WalWriter(Protocol):
    """The single writer of one channel."""

    channel: str

    def append(self, record: Record) -> int:
        """Append one record; return its position once it is acknowledged (durable per
        the WAL's policy)."""
        ...

    def append_many(self, records: Sequence[Record]) -> list[int]:
        """Append records atomically in order (all or none); return their positions."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class WalReader(Protocol):
    """Reads one channel from a position; never commits anything."""

    channel: str

    def poll(self, timeout: float = 0.0, max_records: int = 1024) -> list[tuple[int, Record]]:
        """Up to ``max_records`` next ``(position, record)`` pairs, waiting up to
        ``timeout`` seconds for the first one."""
        ...

    def seek(self, position: int) -> None: ...

    @property
    def position(self) -> int:
        """The position the next poll starts at."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class WAL(Protocol):
    """WAL storage: local log files (embedded) or Kafka (distributed)."""

    max_record_bytes: int

    def create_channel(self, channel: str) -> None:
        """Create the channel if missing (idempotent)."""
        ...

    def drop_channel(self, channel: str) -> None: ...

    def channels(self) -> list[str]: ...

    def writer(self, channel: str) -> WalWriter:
        """Open the channel's writer, fencing any earlier one."""
        ...

    def reader(self, channel: str, position: int = 0) -> WalReader: ...

    def high_watermark(self, channel: str) -> int: ...

    def low_watermark(self, channel: str) -> int:
        """The first position still readable (after retention)."""
        ...

    def truncate_before(self, channel: str, position: int) -> None:
        """Retention: allow records before ``position`` to be removed."""
        ...

    def close(self) -> None: ...
