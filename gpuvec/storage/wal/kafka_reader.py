"""``KafkaWalReader``: reads one Kafka WAL channel from a position with ``assign()`` and
``read_committed`` isolation; never subscribes, joins a group or commits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import OffsetSpec

from gpuvec.errors import ClosedError, InvalidArgumentError, StorageError
from gpuvec.storage.wal.kafka_common import (
    _NOT_FOUND,
    _OVERHEAD,
    _check_position,
    _compacted,
    log,
)
from gpuvec.storage.wal.record import Record

if TYPE_CHECKING:
    from gpuvec.storage.wal.kafka import KafkaWAL


class KafkaWalReader:
    """Reads one channel from a position with ``assign()``; never commits."""

    def __init__(self, wal: KafkaWAL, channel: str, topic: str, position: int) -> None:
        self.channel, self._wal, self._topic, self._pos = channel, wal, topic, position
        self._closed = False
        fetch = max(wal.max_record_bytes + _OVERHEAD, 8 << 20)
        conf = {
            "group.id": f"{wal.topic_prefix}wal-reader-unused",  # required, never joined
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",  # a truncated position is an error, not a jump
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "max.partition.fetch.bytes": fetch,
            "fetch.max.bytes": 4 * fetch,
            "receive.message.max.bytes": 4 * fetch + (1 << 20),
        }
        self._consumer = Consumer(wal.conf(**conf))
        self._consumer.assign([TopicPartition(topic, 0, position)])

    @property
    def position(self) -> int:
        return self._pos

    def cached_lag(self) -> int | None:
        """Offsets between the read position and the high watermark this reader's fetches
        last saw (no broker call; None before any fetch or once closed). Transaction
        markers take offsets too, so a reader that has read everything shows 1."""
        if self._closed:
            return None
        try:
            tp = TopicPartition(self._topic, 0)
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
        except Exception:  # closed concurrently, or nothing fetched yet
            return None
        return None if high is None or high < 0 else max(0, high - self._pos)

    def seek(self, position: int) -> None:
        self._check_open()
        _check_position(position)
        self._pos = position
        # re-assigning drops whatever was prefetched for the old position
        self._consumer.assign([TopicPartition(self._topic, 0, position)])

    def poll(self, timeout: float = 0.0, max_records: int = 1024) -> list[tuple[int, Record]]:
        self._check_open()
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise InvalidArgumentError(f"max_records must be an int >= 1, got {max_records!r}")
        c, out = self._consumer, []
        end = time.monotonic() + max(0.0, timeout)
        # consume(n, t) waits for all n or t: take what is there, else wait for one
        msgs: list[Message] = c.consume(max_records, 0)
        while True:
            for m in msgs:
                try:
                    item = self._take(m)
                except StorageError:
                    if not out:
                        raise
                    self.seek(self._pos)  # hand out what we have; re-fetch the rest
                    return out
                if item is not None:
                    out.append(item)
            left = end - time.monotonic()
            if out or left <= 0:
                return out
            first = c.poll(left)
            msgs = [] if first is None else [first]
            if first is not None and max_records > 1:
                msgs += c.consume(max_records - 1, 0)

    def _take(self, m: Message) -> tuple[int, Record] | None:
        if (err := m.error()) is not None:
            if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                if self._pos < (low := self._wal.offset(self.channel, OffsetSpec.earliest())):
                    raise _compacted(self.channel, self._pos, low)
                raise InvalidArgumentError(
                    f"position {self._pos} is past the end of WAL channel {self.channel!r}"
                )
            if err.code() in _NOT_FOUND or err.fatal():
                raise self._wal.error(err, "read", self.channel)
            log.debug("transient error reading %s: %s", self.channel, err)
            return None
        if (off := m.offset()) < self._pos:  # stale prefetch from before a seek
            return None
        rec = Record.decode(m.value() or b"", where=f"at position {off} of {self.channel!r}")
        self._pos = off + 1
        return off, rec

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"reader of WAL channel {self.channel!r} is closed")
        self._wal.check_open()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()
