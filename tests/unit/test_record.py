"""WAL record encoding: round trip, Arrow payloads, and refusal of bad or corrupt input."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuvec.errors import CorruptDataError, InvalidArgumentError
from gpuvec.storage.wal.record import Record, RecordKind


@given(
    kind=st.sampled_from(list(RecordKind)),
    channel=st.text(min_size=1, max_size=40),
    ts=st.tuples(st.integers(0, 2**63), st.integers(0, 2**63)).map(sorted),
    payload=st.binary(max_size=2000),
)
def test_roundtrip(kind: RecordKind, channel: str, ts: list[int], payload: bytes) -> None:
    r = Record(kind, channel, ts[0], ts[1], payload)
    data = r.encode()
    assert len(data) == r.encoded_size
    assert Record.decode(data) == r


def test_arrow_payload() -> None:
    t = pa.table({"pk": [1, 2], "name": ["a", None]})
    r = Record.from_arrow(RecordKind.INSERT, "c", 1, 2, t)
    assert Record.decode(r.encode()).table().equals(t)
    assert Record(RecordKind.TIME_TICK, "c", 3, 3).table().num_rows == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((99, "c", 0, 0), "kind 99"),
        ((RecordKind.INSERT, "c", -1, 0), "ts_begin"),
        ((RecordKind.INSERT, "c", 0, 2**64), "ts_end"),
        ((RecordKind.INSERT, "c", 5, 4), "ts_begin 5 > ts_end 4"),
    ],
)
def test_bad_records(args: tuple, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        Record(*args)


def test_corrupt_bytes() -> None:
    data = Record(RecordKind.INSERT, "chan", 1, 1, b"x").encode()
    with pytest.raises(CorruptDataError, match="truncated"):
        Record.decode(data[:5], "chan@3")
    with pytest.raises(CorruptDataError, match="format version 9"):
        Record.decode(b"\x09" + data[1:])
    with pytest.raises(CorruptDataError, match="invalid Arrow payload"):
        Record(RecordKind.INSERT, "chan", 1, 1, b"not arrow").table()
