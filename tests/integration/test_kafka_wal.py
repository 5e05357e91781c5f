"""Fault and limit tests for :class:`~gpuvec.storage.wal.kafka.KafkaWAL` on real Kafka.

* fencing: a second writer (from another ``KafkaWAL``, as another process would) fences the
  first; the reader sees exactly the first writer's acknowledged records, then the second's;
* broker restarts: a private broker (``deploy/local/kafka.sh`` on port 29092) is restarted
  softly and then killed and started again while a writer appends and a reader tails; every
  acknowledged record is read exactly once, in order, and retried appends never duplicate;
* an unreachable broker is an ``UnavailableError`` naming the address, quickly;
* record size limits are enforced before sending, and records at the limit get through.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpuvec.errors import FencedError, RecordTooLargeError, UnavailableError
from gpuvec.storage.wal.kafka import KafkaWAL
from gpuvec.storage.wal.record import Record, RecordKind
from gpuvec.testing.services import private_service

pytestmark = pytest.mark.kafka

OWN_PORT = 29092


def rec(channel: str, seq: int, payload: bytes = b"") -> Record:
    return Record(RecordKind.INSERT, channel, seq, seq, payload or f"r{seq}".encode())


def drain(wal: KafkaWAL, channel: str, start: int, timeout: float = 20.0) -> list[tuple[int, int]]:
    """``(position, ts_begin)`` of every record from ``start`` on: reads until a poll of
    1 s finds nothing (appends return once their records are readable)."""
    r = wal.reader(channel, start)
    out: list[tuple[int, int]] = []
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            got = r.poll(timeout=1.0)
            if not got:
                break
            out.extend((p, x.ts_begin) for p, x in got)
    finally:
        r.close()
    return out


@pytest.fixture
def wal(kafka_bootstrap: str, unique: str) -> Iterator[KafkaWAL]:
    w = KafkaWAL(kafka_bootstrap, topic_prefix=f"{unique}-")
    try:
        yield w
    finally:
        for ch in w.channels():
            w.drop_channel(ch)
        w.close()


# --- (a) fencing -----------------------------------------------------------------------------
def test_new_writer_fences_old_one(wal: KafkaWAL, kafka_bootstrap: str) -> None:
    wal.create_channel("fence")
    a = wal.writer("fence")
    acked_a = [a.append(rec("fence", 0)), *a.append_many([rec("fence", 1), rec("fence", 2)])]
    other = KafkaWAL(kafka_bootstrap, topic_prefix=wal.topic_prefix)  # "another process"
    try:
        b = other.writer("fence")
        with pytest.raises(FencedError, match="'fence'"):
            a.append(rec("fence", 3))
        with pytest.raises(FencedError, match="'fence'"):  # and it stays fenced
            a.append_many([rec("fence", 4), rec("fence", 5)])
        acked_b = b.append_many([rec("fence", 10), rec("fence", 11)])
        acked_b.append(b.append(rec("fence", 12)))
    finally:
        other.close()
    got = drain(wal, "fence", wal.low_watermark("fence"))
    assert got == list(zip(acked_a + acked_b, [0, 1, 2, 10, 11, 12], strict=True))
    a.close()


# --- (b) broker restarts mid-stream ----------------------------------------------------------
@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """A private broker on 127.0.0.1:29092 with its data in ``tmp_path``; yields ``ctl(*args)``
    running ``kafka.sh *args`` against it. Killed at teardown, whatever happened."""
    if shutil.which("java") is None and os.environ.get("GPUVEC_REQUIRE_SERVICES") != "1":
        pytest.skip("no java; install Kafka with deploy/local/kafka.sh install")
    with private_service("kafka.sh", "GPUVEC_KAFKA_PORT", OWN_PORT, tmp_path / "run", 180) as ctl:
        yield ctl


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_writer_and_reader_survive_broker_restarts(own_kafka: Callable[..., None]) -> None:
    wal = KafkaWAL(f"127.0.0.1:{OWN_PORT}", topic_prefix="restart-", timeout=4)
    wal.create_channel("ch")
    writer = wal.writer("ch")
    reader = wal.reader("ch", 0)
    acked: list[tuple[int, int]] = []  # (position, seq) in acknowledgement order
    read: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    retried = 0
    stop_writing, stop_reading = threading.Event(), threading.Event()

    def write() -> None:
        nonlocal retried
        seq = 0
        try:
            while not stop_writing.is_set():
                n = 1 if seq % 2 else 3  # single appends and 3-record transactions
                batch = [rec("ch", s, os.urandom(2048)) for s in range(seq, seq + n)]
                try:
                    pos = writer.append_many(batch) if n > 1 else [writer.append(batch[0])]
                except UnavailableError:
                    retried += 1  # not committed: the same records are tried again
                    time.sleep(0.1)
                    continue
                acked.extend(zip(pos, range(seq, seq + n), strict=True))
                seq += n
                time.sleep(0.01)
        except BaseException as e:
            failures.append(e)

    def tail() -> None:
        try:
            while not stop_reading.is_set():
                read.extend((p, r.ts_begin) for p, r in reader.poll(timeout=0.2))
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=write), threading.Thread(target=tail)]
    for t in threads:
        t.start()
    try:
        for step in (("restart",), ("stop", "--hard")):
            before = len(acked)
            _wait(lambda b=before: len(acked) >= b + 40 or bool(failures), 60, "appends")
            own_kafka(*step)
            if step[0] == "stop":
                time.sleep(2)  # a real outage: appends fail and are retried meanwhile
                own_kafka("start")
        before = len(acked)
        _wait(lambda: len(acked) >= before + 40 or bool(failures), 90, "appends after restarts")
    finally:
        stop_writing.set()
        threads[0].join(120)
        last = acked[-1][0] if acked else -1
        try:
            _wait(lambda: reader.position > last or bool(failures), 60, "reader to catch up")
        finally:
            stop_reading.set()
            threads[1].join(30)
    assert not failures, failures
    print(f"\n{len(acked)} records acknowledged, {retried} appends retried")
    seqs = [s for _, s in acked]
    assert seqs == list(range(len(acked)))  # retries did not skip or repeat anything
    assert read == acked  # exactly once, in order, at the acknowledged positions
    assert drain(wal, "ch", 0) == acked  # and a fresh reader from the start agrees

    # with the broker gone, every call fails within its bounded timeout
    own_kafka("stop", "--hard")
    for call in (lambda: wal.high_watermark("ch"), lambda: writer.append(rec("ch", 10**6))):
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match=f"127.0.0.1:{OWN_PORT}"):
            call()
        assert time.monotonic() - t0 < 3 * wal.timeout + 2
    reader.close()
    writer.close()
    wal.close()


# --- (c) unreachable broker ------------------------------------------------------------------
def test_unreachable_broker_is_unavailable_quickly() -> None:
    t0 = time.monotonic()
    with pytest.raises(UnavailableError, match=r"127\.0\.0\.1:1\b"):
        KafkaWAL("127.0.0.1:1", timeout=2)
    assert time.monotonic() - t0 < 5


# --- (d) record size limits ------------------------------------------------------------------
def test_oversized_record_is_refused_before_sending(kafka_bootstrap: str, unique: str) -> None:
    wal = KafkaWAL(kafka_bootstrap, topic_prefix=f"{unique}-", max_record_bytes=4096)
    try:
        wal.create_channel("small")
        w = wal.writer("small")
        at_limit = rec("small", 1, b"x" * (4096 - rec("small", 1, b"x").encoded_size + 1))
        assert at_limit.encoded_size == 4096
        first = w.append(at_limit)
        hw = wal.high_watermark("small")
        too_big = rec("small", 2, b"x" * 4096)
        with pytest.raises(RecordTooLargeError) as exc:
            w.append(too_big)
        assert "'small'" in str(exc.value) and str(too_big.encoded_size) in str(exc.value)
        with pytest.raises(RecordTooLargeError, match="'small'"):
            w.append_many([rec("small", 3), too_big])  # all or none
        assert wal.high_watermark("small") == hw
        assert drain(wal, "small", 0) == [(first, 1)]
        wal.drop_channel("small")
    finally:
        wal.close()


def test_records_at_the_default_limit_pass_the_broker(wal: KafkaWAL) -> None:
    wal.create_channel("large")
    w = wal.writer("large")
    head = rec("large", 0, b"x").encoded_size - 1
    near = [rec("large", i, os.urandom(wal.max_record_bytes - head - i)) for i in range(3)]
    assert near[0].encoded_size == wal.max_record_bytes
    pos = w.append_many(near)  # 3 records of ~8 MiB in one transaction
    r = wal.reader("large", pos[0])
    got: list[tuple[int, Record]] = []
    end = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < end:
        got.extend(r.poll(timeout=0.5))
    r.close()
    assert [p for p, _ in got] == pos and [x for _, x in got] == near


@pytest.mark.slow
def test_append_many_throughput_1mib_records(wal: KafkaWAL) -> None:
    wal.create_channel("bw")
    w = wal.writer("bw")
    payload = os.urandom(1 << 20)
    batch = [rec("bw", i, payload) for i in range(16)]
    w.append_many(batch[:1])  # warm up (transaction coordinator, connections)
    t0 = time.monotonic()
    for _ in range(8):
        w.append_many(batch)
    mb_s = 8 * 16 * len(payload) / (time.monotonic() - t0) / 1e6
    print(f"\nKafkaWAL append_many, 16 x 1 MiB per transaction: {mb_s:.0f} MB/s")
    assert mb_s > 20  # loose floor for loaded CI hosts; ~150 MB/s on an idle loopback
