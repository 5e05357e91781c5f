"""Local-file implementation of the ``WAL`` Protocol: the embedded default.

Layout: ``<root>/<channel>/`` holds segment files ``<first position:020d>.log`` (framed by
:mod:`gpuvec.storage.wal.frames`), ``epoch`` (the current writer's fencing epoch),
``low`` (retention watermark) and ``.lock``. Positions are dense record numbers.

Invariants:

* Writers append whole batches with one ``write`` while holding ``flock`` on ``.lock`` and
  only if the ``epoch`` file still holds their epoch; opening a writer bumps the epoch, so
  the previous writer (in any process) is fenced.
* Opening a writer recovers the last segment: a torn or corrupt tail is reported (logged,
  and kept in :attr:`LocalWAL.recovery_reports`) and truncated; every complete record
  before it is kept.
* ``fsync="always"`` syncs before an append returns; ``"group"`` syncs all dirty channels
  every ``group_commit_ms`` from a background thread (an acknowledged append has reached
  the OS, so it survives ``kill -9``; :meth:`LocalWalWriter.sync` forces it to disk);
  ``"never"`` leaves it to the OS.
* Readers only deliver complete batches and never write.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpuvec import faults
from gpuvec.errors import (
    ClosedError,
    CompactedError,
    CorruptDataError,
    FencedError,
    InvalidArgumentError,
    NotFoundError,
    RecordTooLargeError,
)
from gpuvec.storage.wal.base import check_channel
from gpuvec.storage.wal.frames import FrameError, encode_batch, read_batch, scan
from gpuvec.storage.wal.metrics import WalAppendMetrics
from gpuvec.storage.wal.record import Record

log = logging.getLogger(__name__)
_APPENDS = WalAppendMetrics("local")
FsyncPolicy = Literal["always", "group", "never"]
_SUFFIX = ".log"


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    channel: str
    segment: str
    kept_records: int
    truncated_at: int
    dropped_bytes: int
    reason: str


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """``writev`` every buffer, resuming after short writes, 512 buffers at a time."""
    views = [memoryview(b) for b in buffers if b]
    while views:
        done = os.writev(fd, views[:512])
        while done and views:
            if done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][done:]
                done = 0


def _seg_name(first: int) -> str:
    return f"{first:020d}{_SUFFIX}"


class _Channel:
    """Process-wide state of one channel directory, shared by its writers and readers."""

    def __init__(self, wal: LocalWAL, name: str) -> None:
        self.wal, self.name = wal, name
        self.dir = wal.root / name
        self.lock = threading.Lock()
        self.appended = threading.Condition()
        self.fd: int | None = None  # writer's fd on the last segment
        self.seg_first = 0
        self.seg_bytes = 0
        self.next_pos = 0
        self.dirty = False
        self.lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)

    def segments(self) -> list[int]:
        firsts = [int(n[: -len(_SUFFIX)]) for n in os.listdir(self.dir) if n.endswith(_SUFFIX)]
        return sorted(firsts)

    def read_int(self, fname: str) -> int:
        try:
            return int((self.dir / fname).read_text() or 0)
        except FileNotFoundError:
            return 0

    def write_int(self, fname: str, value: int) -> None:
        tmp = self.dir / f".{fname}.tmp"
        tmp.write_text(str(value))
        os.replace(tmp, self.dir / fname)

    def low(self) -> int:
        segs = self.segments()
        return max(self.read_int("low"), segs[0] if segs else 0)

    def recover(self) -> None:
        """Find the end of the log; truncate a torn/corrupt tail of the last segment."""
        segs = self.segments() or [self.read_int("low")]
        first = segs[-1]
        path = self.dir / _seg_name(first)
        with open(path, "a+b") as f:
            res = scan(f, self.wal.max_record_bytes)
        if res.problem is not None:
            report = RecoveryReport(
                self.name,
                path.name,
                res.records,
                res.good_bytes,
                res.file_bytes - res.good_bytes,
                res.problem,
            )
            log.warning(
                "WAL channel %r: %s in %s; kept %d records, truncated %d bytes",
                self.name,
                res.problem,
                path.name,
                res.records,
                report.dropped_bytes,
            )
            self.wal.recovery_reports.append(report)
            os.truncate(path, res.good_bytes)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.seg_first, self.seg_bytes = first, res.good_bytes
        self.next_pos = first + res.records

    def roll(self) -> None:
        assert self.fd is not None
        os.fsync(self.fd)
        os.close(self.fd)
        self.seg_first, self.seg_bytes = self.next_pos, 0
        self.fd = os.open(
            self.dir / _seg_name(self.seg_first), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def sync(self) -> None:
        with self.lock:
            if self.fd is not None and self.dirty:
                os.fsync(self.fd)
                self.dirty = False

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = None
            os.close(self.lock_fd)


class LocalWalWriter:
    """The single writer of one local channel (see module docstring)."""

    def __init__(self, ch: _Channel) -> None:
        self.channel = ch.name
        self._ch = ch
        self._closed = False
        with ch.lock:
            fcntl.flock(ch.lock_fd, fcntl.LOCK_EX)
            try:
                self.epoch = ch.read_int("epoch") + 1
                ch.write_int("epoch", self.epoch)
                ch.recover()
            finally:
                fcntl.flock(ch.lock_fd, fcntl.LOCK_UN)

    def append(self, record: Record) -> int:
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[Record]) -> list[int]:
        if self._closed:
            raise ClosedError(f"WAL writer of channel {self.channel!r} is closed")
        if not records:
            return []
        start = time.perf_counter()
        wal = self._ch.wal
        payloads = []
        for i, r in enumerate(records):
            if not isinstance(r, Record):
                raise InvalidArgumentError(f"WAL append: item {i} is not a Record: {r!r}")
            parts = (r.header(), r.payload)
            size = len(parts[0]) + len(parts[1])
            if size > wal.max_record_bytes:
                raise RecordTooLargeError(
                    f"WAL record {i} for channel {self.channel!r} is {size} bytes; "
                    f"the limit is {wal.max_record_bytes}"
                )
            payloads.append(parts)
        buffers = encode_batch(payloads)
        nbytes = sum(len(b) for b in buffers)
        ch = self._ch
        with ch.lock:
            if ch.fd is None:
                raise ClosedError(f"WAL channel {self.channel!r} is closed")
            fcntl.flock(ch.lock_fd, fcntl.LOCK_EX)
            try:
                if ch.read_int("epoch") != self.epoch:
                    raise FencedError(
                        f"WAL writer of channel {self.channel!r} (epoch {self.epoch}) was "
                        "fenced by a newer writer"
                    )
                if ch.seg_bytes and ch.seg_bytes + nbytes > wal.segment_bytes:
                    ch.roll()
                if len(records) > 1 and faults.armed("wal.torn-batch"):  # crash tests
                    half = len(buffers) // 2
                    _write_all(ch.fd, buffers[:half])
                    faults.pause("wal.torn-batch")
                    buffers = buffers[half:]
                _write_all(ch.fd, buffers)
                if wal.fsync == "always":
                    os.fsync(ch.fd)
                else:
                    ch.dirty = True
                first = ch.next_pos
                ch.next_pos += len(records)
                ch.seg_bytes += nbytes
            finally:
                fcntl.flock(ch.lock_fd, fcntl.LOCK_UN)
        with ch.appended:
            ch.appended.notify_all()
        _APPENDS.observe(len(records), nbytes, time.perf_counter() - start)
        return list(range(first, first + len(records)))

    def sync(self) -> None:
        """Force everything appended so far to disk."""
        self._ch.sync()

    def close(self) -> None:
        self._closed = True


class LocalWalReader:
    """Reads one local channel from a position; delivers complete batches only."""

    def __init__(self, ch: _Channel, position: int) -> None:
        self.channel = ch.name
        self._ch = ch
        self._f = None
        self._pending: list[tuple[int, Record]] = []
        self.seek(position)

    @property
    def position(self) -> int:
        return self._pos - len(self._pending)

    def seek(self, position: int) -> None:
        if not isinstance(position, int) or position < 0:
            raise InvalidArgumentError(f"WAL position must be a non-negative int: {position!r}")
        low = self._ch.low()
        if position < low:
            raise CompactedError(
                f"WAL channel {self.channel!r}: position {position} was removed by retention "
                f"(first readable is {low})"
            )
        self._close_file()
        self._pending = []
        self._pos = position
        self._target = position
        segs = [s for s in self._ch.segments() if s <= position]
        self._seg = segs[-1] if segs else None

    def _close_file(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def _open_segment(self) -> bool:
        if self._seg is None:
            segs = [s for s in self._ch.segments() if s <= self._target]
            if not segs:
                return False
            self._seg = segs[-1]
        path = self._ch.dir / _seg_name(self._seg)
        try:
            self._f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
        except FileNotFoundError:
            raise CompactedError(
                f"WAL channel {self.channel!r}: segment {path.name} was removed by retention"
            ) from None
        self._pos = self._seg
        return True

    def _read_available(self, max_records: int) -> None:
        while len(self._pending) < max_records:
            if self._f is None and not self._open_segment():
                return
            f = self._f
            assert f is not None
            start = f.tell()
            try:
                batch = read_batch(f, self._ch.wal.max_record_bytes)
            except FrameError as e:
                raise CorruptDataError(
                    f"WAL channel {self.channel!r}: {e} in segment {_seg_name(self._seg)} "
                    f"at byte {start} (position {self._pos})"
                ) from None
            if batch is None:
                f.seek(start)
                nxt = [s for s in self._ch.segments() if s > self._seg]  # type: ignore[operator]
                if nxt and nxt[0] == self._pos:
                    self._close_file()
                    self._seg = nxt[0]
                    continue
                return
            for payload in batch:
                if self._pos >= self._target:
                    where = f"{self.channel}@{self._pos}"
                    self._pending.append((self._pos, Record.decode(payload, where)))
                self._pos += 1

    def poll(self, timeout: float = 0.0, max_records: int = 1024) -> list[tuple[int, Record]]:
        deadline = time.monotonic() + timeout
        while True:
            self._read_available(max_records)
            if self._pending or time.monotonic() >= deadline:
                break
            with self._ch.appended:
                self._ch.appended.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        out, self._pending = self._pending[:max_records], self._pending[max_records:]
        if out:
            self._target = out[-1][0] + 1
        return out

    def close(self) -> None:
        self._close_file()


class LocalWAL:
    """Per-channel append-only log files under ``root`` (see module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "group",
        group_commit_ms: float = 10.0,
        segment_bytes: int = 64 << 20,
        max_record_bytes: int = 8 << 20,
    ) -> None:
        if fsync not in ("always", "group", "never"):
            raise InvalidArgumentError(f"fsync must be 'always', 'group' or 'never': {fsync!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync, self.group_commit_ms = fsync, group_commit_ms
        self.segment_bytes, self.max_record_bytes = segment_bytes, max_record_bytes
        self.recovery_reports: list[RecoveryReport] = []
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if fsync == "group":
            self._flusher = threading.Thread(
                target=self._flush_loop, daemon=True, name="gpuvec-wal-fsync"
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.group_commit_ms / 1000.0):
            for ch in list(self._channels.values()):
                ch.sync()

    def _channel(self, channel: str) -> _Channel:
        check_channel(channel)
        with self._lock:
            if self._stop.is_set():
                raise ClosedError(f"WAL at {str(self.root)!r} is closed")
            ch = self._channels.get(channel)
            if ch is None:
                if not (self.root / channel).is_dir():
                    raise NotFoundError(f"WAL channel {channel!r} does not exist")
                ch = self._channels[channel] = _Channel(self, channel)
            return ch

    def create_channel(self, channel: str) -> None:
        check_channel(channel)
        (self.root / channel).mkdir(exist_ok=True)

    def drop_channel(self, channel: str) -> None:
        check_channel(channel)
        with self._lock:
            ch = self._channels.pop(channel, None)
        if ch is not None:
            ch.close()
        shutil.rmtree(self.root / channel, ignore_errors=True)

    def channels(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def writer(self, channel: str) -> LocalWalWriter:
        return LocalWalWriter(self._channel(channel))

    def reader(self, channel: str, position: int = 0) -> LocalWalReader:
        return LocalWalReader(self._channel(channel), position)

    def high_watermark(self, channel: str) -> int:
        ch = self._channel(channel)
        with ch.lock:
            if ch.fd is not None:
                return ch.next_pos
        segs = ch.segments()
        if not segs:
            return ch.low()
        with open(ch.dir / _seg_name(segs[-1]), "rb") as f:
            return segs[-1] + scan(f, self.max_record_bytes).records

    def low_watermark(self, channel: str) -> int:
        return self._channel(channel).low()

    def truncate_before(self, channel: str, position: int) -> None:
        ch = self._channel(channel)
        if position > self.high_watermark(channel):
            raise InvalidArgumentError(
                f"WAL channel {channel!r}: cannot truncate before {position}, past the end"
            )
        with ch.lock:
            ch.write_int("low", max(ch.read_int("low"), position))
            segs = ch.segments()
            for first, nxt in itertools.pairwise(segs):
                if nxt <= position:
                    os.unlink(ch.dir / _seg_name(first))

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
