"""Local WAL specifics: crash recovery (torn and corrupt tails, torn batches), rotation,
fsync policies, cross-process fencing and kill -9 durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gpuvec.errors import CorruptDataError, FencedError, InvalidArgumentError
from gpuvec.storage.wal.local import LocalWAL
from gpuvec.storage.wal.record import Record, RecordKind


def rec(i: int, size: int = 40) -> Record:
    return Record(RecordKind.INSERT, "ch", i, i, bytes([i % 251]) * size)


def positions(wal: LocalWAL, start: int = 0) -> list[int]:
    r = wal.reader("ch", start)
    out = []
    while batch := r.poll(timeout=0.05):
        out.extend(p for p, _ in batch)
    r.close()
    return out


def segment(root: Path) -> Path:
    return sorted((root / "ch").glob("*.log"))[-1]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    wal = LocalWAL(tmp_path)
    wal.create_channel("ch")
    w = wal.writer("ch")
    for i in range(10):
        w.append(rec(i))
    wal.close()
    return tmp_path


def test_torn_tail_cut_mid_record_keeps_earlier_records(root: Path) -> None:
    seg = segment(root)
    size = seg.stat().st_size
    os.truncate(seg, size - 17)  # cut inside the last record's payload
    wal = LocalWAL(root)
    assert positions(wal) == list(range(9)), "readers stop before the torn record"
    w = wal.writer("ch")  # recovery happens when the writer opens
    (report,) = wal.recovery_reports
    assert report.kept_records == 9 and "torn" in report.reason
    assert report.dropped_bytes == (size - 17) - report.truncated_at
    assert w.append(rec(99)) == 9, "the next append takes the torn record's position"
    assert positions(wal) == list(range(10))
    wal.close()


def test_corrupt_byte_in_tail_is_reported_and_truncated(root: Path) -> None:
    seg = segment(root)
    data = bytearray(seg.read_bytes())
    frame = len(data) // 10
    data[frame * 7 + 20] ^= 0xFF  # flip a payload byte of record 7
    seg.write_bytes(bytes(data))
    wal = LocalWAL(root)
    with pytest.raises(CorruptDataError, match=r"CRC32.*position 7"):
        positions(wal)
    wal.writer("ch")
    (report,) = wal.recovery_reports
    assert report.kept_records == 7 and "corrupt" in report.reason
    assert positions(wal) == list(range(7))
    wal.close()


def test_torn_batch_is_dropped_whole(tmp_path: Path) -> None:
    wal = LocalWAL(tmp_path)
    wal.create_channel("ch")
    w = wal.writer("ch")
    w.append(rec(0))
    w.append_many([rec(i) for i in range(1, 6)])
    wal.close()
    seg = segment(tmp_path)
    os.truncate(seg, seg.stat().st_size - 10)  # the batch's last frame is torn
    wal = LocalWAL(tmp_path)
    w = wal.writer("ch")
    assert positions(wal) == [0]
    assert wal.recovery_reports[0].kept_records == 1
    wal.close()


def test_rotation_and_reads_across_segments(tmp_path: Path) -> None:
    wal = LocalWAL(tmp_path, segment_bytes=300)
    wal.create_channel("ch")
    w = wal.writer("ch")
    recs = [rec(i) for i in range(50)]
    assert [w.append(r) for r in recs] == list(range(50))
    assert len(list((tmp_path / "ch").glob("*.log"))) > 5
    r = wal.reader("ch", 17)
    got = []
    while batch := r.poll(timeout=0.05, max_records=7):
        got.extend(batch)
    assert [p for p, _ in got] == list(range(17, 50))
    assert [x for _, x in got] == recs[17:]
    wal.close()
    # reopen: positions continue
    wal = LocalWAL(tmp_path, segment_bytes=300)
    assert wal.high_watermark("ch") == 50
    assert wal.writer("ch").append(rec(50)) == 50
    wal.close()


@pytest.mark.parametrize("policy", ["always", "group", "never"])
def test_fsync_policies_roundtrip(tmp_path: Path, policy: str) -> None:
    wal = LocalWAL(tmp_path, fsync=policy, group_commit_ms=2)  # type: ignore[arg-type]
    wal.create_channel("ch")
    w = wal.writer("ch")
    w.append_many([rec(i) for i in range(5)])
    w.sync()
    assert positions(wal) == list(range(5))
    wal.close()


def test_bad_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="fsync"):
        LocalWAL(tmp_path, fsync="sometimes")  # type: ignore[arg-type]


_CHILD = textwrap.dedent(
    """
    import sys, time
    from gpuvec.storage.wal.local import LocalWAL
    from gpuvec.storage.wal.record import Record, RecordKind
    wal = LocalWAL(sys.argv[1], fsync="group", group_commit_ms=50)
    wal.create_channel("ch")
    w = wal.writer("ch")
    print("ready", flush=True)
    i = 0
    while True:
        try:
            p = w.append(Record(RecordKind.INSERT, "ch", i, i, b"z" * 300))
        except Exception as e:
            print("error", type(e).__name__, flush=True)
            time.sleep(60)
        print("ack", p, flush=True)
        i += 1
    """
)


def _child(root: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_kill_9_keeps_every_acknowledged_append(tmp_path: Path) -> None:
    child = _child(tmp_path)
    acked = []
    assert child.stdout is not None
    for line in child.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) >= 3000:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    wal = LocalWAL(tmp_path)
    wal.writer("ch")
    got = positions(wal)
    assert got[: len(acked)] == acked, "every acknowledged record survives kill -9, in order"
    assert got == list(range(len(got)))
    wal.close()


def test_writer_in_another_process_fences_this_one(tmp_path: Path) -> None:
    wal = LocalWAL(tmp_path)
    wal.create_channel("ch")
    w = wal.writer("ch")
    w.append(rec(0))
    child = _child(tmp_path)
    try:
        time.sleep(0.2)
        with pytest.raises(FencedError, match="'ch'"):
            w.append(rec(1))
    finally:
        child.kill()
        child.wait()
    wal.close()
