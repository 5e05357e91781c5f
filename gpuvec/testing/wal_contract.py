"""Contract suite for the ``WAL`` Protocol.

Subclass :class:`WALContract` and provide a ``wal`` fixture yielding a WAL whose channel
namespace is fresh. Positions are only assumed to strictly increase (Kafka offsets skip
transaction markers), never to be dense.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from gpuvec.errors import (
    CompactedError,
    FencedError,
    InvalidArgumentError,
    InvalidChannelError,
    NotFoundError,
    RecordTooLargeError,
)
from gpuvec.storage.wal.base import WAL
from gpuvec.storage.wal.record import Record, RecordKind


def rec(channel: str, i: int, payload: bytes | None = None) -> Record:
    return Record(
        RecordKind.INSERT,
        channel,
        1000 + i,
        1000 + i,
        payload if payload is not None else f"r{i}".encode(),
    )


def read_all(wal: WAL, channel: str, start: int, n: int, timeout: float = 15.0) -> list:
    r = wal.reader(channel, start)
    out: list = []
    end = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < end:
            out.extend(r.poll(timeout=0.5, max_records=n - len(out)))
    finally:
        r.close()
    return out


class WALContract:
    def test_is_a_wal(self, wal: WAL) -> None:
        assert isinstance(wal, WAL)

    def test_channels_lifecycle(self, wal: WAL) -> None:
        wal.create_channel("life")
        wal.create_channel("life")  # idempotent
        assert "life" in wal.channels()
        wal.drop_channel("life")
        assert "life" not in wal.channels()

    def test_append_and_read_back_in_order(self, wal: WAL) -> None:
        wal.create_channel("c")
        w = wal.writer("c")
        positions = [w.append(rec("c", i)) for i in range(20)]
        assert positions == sorted(set(positions))
        assert wal.high_watermark("c") > positions[-1]
        got = read_all(wal, "c", wal.low_watermark("c"), 20)
        assert [p for p, _ in got] == positions
        assert [r for _, r in got] == [rec("c", i) for i in range(20)]
        # start in the middle: the record at that position comes first
        mid = read_all(wal, "c", positions[7], 13)
        assert [p for p, _ in mid] == positions[7:]
        w.close()

    def test_append_many_and_arrow_payload(self, wal: WAL) -> None:
        wal.create_channel("batch")
        w = wal.writer("batch")
        table = pa.table(
            {
                "pk": pa.array([1, 2, 3], pa.int64()),
                "vec": pa.array([[0.5, 1.5]] * 3, pa.list_(pa.float32(), 2)),
            }
        )
        recs = [Record.from_arrow(RecordKind.INSERT, "batch", 5, 9, table)] + [
            rec("batch", i) for i in range(4)
        ]
        pos = w.append_many(recs)
        assert len(pos) == 5 and pos == sorted(set(pos))
        got = read_all(wal, "batch", pos[0], 5)
        assert [r for _, r in got] == recs
        assert got[0][1].table().equals(table)

    def test_reader_tails_live_appends(self, wal: WAL) -> None:
        wal.create_channel("tail")
        w = wal.writer("tail")
        first = w.append(rec("tail", 0))
        r = wal.reader("tail", first)
        try:
            assert [p for p, _ in r.poll(timeout=5)] == [first]
            t0 = time.monotonic()
            assert r.poll(timeout=0.3) == []
            assert time.monotonic() - t0 < 5
            p2 = w.append(rec("tail", 1))
            got: list = []
            end = time.monotonic() + 10
            while not got and time.monotonic() < end:
                got = r.poll(timeout=0.5)
            assert [(p, x) for p, x in got] == [(p2, rec("tail", 1))]
            assert r.position > p2
            r.seek(first)
            again: list = []
            while len(again) < 2 and time.monotonic() < end:
                again.extend(r.poll(timeout=0.5))
            assert [p for p, _ in again] == [first, p2]
        finally:
            r.close()

    def test_new_writer_fences_old(self, wal: WAL) -> None:
        wal.create_channel("fence")
        old = wal.writer("fence")
        p_old = old.append(rec("fence", 0))
        new = wal.writer("fence")
        with pytest.raises(FencedError, match="fence"):
            old.append(rec("fence", 1))
        p_new = new.append(rec("fence", 2))
        got = read_all(wal, "fence", p_old, 2)
        assert [(p, r.ts_begin) for p, r in got] == [(p_old, 1000), (p_new, 1002)]
        # nothing from the fenced writer shows up later either
        assert read_all(wal, "fence", p_new + 1, 1, timeout=1.0) == []

    @pytest.mark.parametrize("name", ["", "has space", "x/y", "1starts-with-digit", "a" * 201])
    def test_bad_channel_names(self, wal: WAL, name: str) -> None:
        with pytest.raises(InvalidChannelError, match="channel"):
            wal.create_channel(name)

    def test_unknown_channel(self, wal: WAL) -> None:
        with pytest.raises(NotFoundError, match="nochan"):
            wal.writer("nochan")
        with pytest.raises(NotFoundError, match="nochan"):
            wal.high_watermark("nochan")

    def test_oversized_record_appends_nothing(self, wal: WAL) -> None:
        wal.create_channel("big")
        w = wal.writer("big")
        w.append(rec("big", 0))
        hw = wal.high_watermark("big")
        huge = rec("big", 1, b"x" * (wal.max_record_bytes + 1))
        with pytest.raises(RecordTooLargeError, match="'big'"):
            w.append_many([rec("big", 2), huge])
        assert wal.high_watermark("big") == hw
        with pytest.raises(InvalidArgumentError):
            w.append("not a record")  # type: ignore[arg-type]

    def test_truncate_before(self, wal: WAL) -> None:
        wal.create_channel("ret")
        w = wal.writer("ret")
        pos = [w.append(rec("ret", i)) for i in range(10)]
        wal.truncate_before("ret", pos[6])
        assert wal.low_watermark("ret") == pos[6]
        with pytest.raises(CompactedError, match="ret"):
            wal.reader("ret", pos[2])
        got = read_all(wal, "ret", pos[6], 4)
        assert [p for p, _ in got] == pos[6:]
