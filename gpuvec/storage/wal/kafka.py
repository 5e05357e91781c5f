"""Kafka WAL (DESIGN §2, distributed mode): one topic per channel, confluent-kafka client.

Owns: the channel topics (``topic_prefix + channel``, one partition, replication 1,
``retention.ms=-1`` so only :meth:`KafkaWAL.truncate_before` removes records), the
transactional writers and the ``read_committed`` readers of those topics.

Invariants:

* A position is the Kafka offset of the record in partition 0. Transaction markers take
  offsets too, so positions strictly increase but are not dense.
* One writer per channel: a writer is a transactional producer whose ``transactional.id``
  is ``f"{topic_prefix}{channel}-writer"``; opening a writer bumps the id's epoch, which
  fences the previous writer (its next append raises :class:`FencedError`).
* ``append``/``append_many`` run one Kafka transaction each (all or none). They return
  only once the records are committed *and* readable (``high_watermark`` is past them).
  When they raise :class:`UnavailableError` the records were **not** committed and may be
  appended again without creating duplicates. The one exception is a commit whose outcome
  stays unknown for :data:`COMMIT_WAIT_S`; the writer then raises a :class:`StorageError`
  saying so and refuses further appends (open a new writer and read the log).
* Readers use ``assign()`` + an explicit offset, ``read_committed`` isolation and never
  commit offsets or subscribe to a group; consumers keep their checkpoints in meta storage.
  (confluent-kafka insists on a ``group.id``; the one set here is never joined.)
* ``high_watermark`` is the last stable offset: one past the last committed readable
  record (and past its commit marker).
* Every call is bounded by ``timeout``; an unreachable broker gives
  :class:`UnavailableError` naming the bootstrap address.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from gpuvec.errors import (
    ClosedError,
    CompactedError,
    FencedError,
    InvalidArgumentError,
    NotFoundError,
    RecordTooLargeError,
    StorageError,
    UnavailableError,
)
from gpuvec.storage.wal.base import CHANNEL_RE, check_channel
from gpuvec.storage.wal.record import Record

log = logging.getLogger(__name__)

COMMIT_WAIT_S = 60.0  # = transaction.timeout.ms: how long an in-doubt commit is retried
_OVERHEAD = 64 << 10  # batch/request framing allowance above max_record_bytes
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._\-]{0,40}$")
_FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTION_COORDINATOR_FENCED,
}
_NOT_FOUND_CODES = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_ID,
}
_COMMON: dict[str, Any] = {
    "reconnect.backoff.ms": 50,  # come back quickly after a broker restart
    "reconnect.backoff.max.ms": 1000,
    "retry.backoff.ms": 50,
    "logger": log,
}


def _kafka_error(exc: BaseException | None) -> KafkaError | None:
    """The KafkaError behind ``exc``. confluent-kafka quirk: a fatal error raised while
    delivery callbacks run surfaces as ``SystemError`` caused by the KafkaException."""
    while exc is not None:
        if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
            return exc.args[0]
        exc = exc.__cause__ or exc.__context__
    return None


def _result(fut: Any, timeout: float) -> Any:
    """``fut.result`` with concurrent.futures' TimeoutError passed through as-is."""
    return fut.result(timeout=timeout)


class KafkaWAL:
    """The WAL Protocol on Apache Kafka; see the module docstring for the invariants."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topic_prefix: str = "gpuvec-",
        max_record_bytes: int = 8 << 20,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(bootstrap, str) or not bootstrap:
            raise InvalidArgumentError(f"Kafka bootstrap must be 'host:port', got {bootstrap!r}")
        if not isinstance(topic_prefix, str) or not _PREFIX_RE.match(topic_prefix):
            raise InvalidArgumentError(
                f"invalid Kafka topic_prefix {topic_prefix!r}: up to 40 of [A-Za-z0-9._-]"
            )
        if not isinstance(max_record_bytes, int) or not 0 < max_record_bytes <= 512 << 20:
            raise InvalidArgumentError(
                f"max_record_bytes must be in 1..{512 << 20}, got {max_record_bytes!r}"
            )
        if not timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.max_record_bytes = max_record_bytes
        self.timeout = float(timeout)
        self._closed = False
        self._children: weakref.WeakSet[KafkaWalWriter | KafkaWalReader] = weakref.WeakSet()
        self._admin = AdminClient(self.conf(**{"socket.timeout.ms": int(self.timeout * 1000)}))
        self._metadata()  # fail fast when the broker is unreachable

    # --- helpers shared with writers and readers ------------------------------------------
    def conf(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **_COMMON, **extra}

    def topic(self, channel: str) -> str:
        return self.topic_prefix + check_channel(channel)

    def error(self, err: KafkaError | None, what: str, channel: str | None = None) -> StorageError:
        """Translate a Kafka error into the gpuvec error tree."""
        where = f" on channel {channel!r}" if channel is not None else ""
        if err is not None and err.code() in _NOT_FOUND_CODES and channel is not None:
            return NotFoundError(f"WAL channel {channel!r} does not exist (Kafka topic "
                                 f"{self.topic_prefix + channel!r} on {self.bootstrap})")
        if err is None or err.retriable() or err.code() in (
            KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
            KafkaError._RESOLVE, KafkaError.REQUEST_TIMED_OUT, KafkaError.NETWORK_EXCEPTION,
        ):  # fmt: skip
            reason = err.str() if err is not None else "timed out"
            return UnavailableError(
                f"Kafka at {self.bootstrap} unavailable for {what}{where} within "
                f"{self.timeout:g}s: {reason}"
            )
        return StorageError(f"Kafka {what}{where} failed on {self.bootstrap}: {err.str()}")

    def check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"KafkaWAL on {self.bootstrap} is closed")

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self._admin.list_topics(topic=topic, timeout=self.timeout)
        except KafkaException as e:
            raise self.error(_kafka_error(e), "metadata") from e

    def require(self, channel: str) -> str:
        """The channel's topic; NotFoundError when it does not exist."""
        self.check_open()
        topic = self.topic(channel)
        t = self._metadata(topic).topics.get(topic)
        if t is None or t.error is not None:
            raise self.error(t.error if t is not None else None, "metadata", channel) if (
                t is not None and t.error.code() not in _NOT_FOUND_CODES
            ) else NotFoundError(f"WAL channel {channel!r} does not exist (Kafka topic "
                                f"{topic!r} on {self.bootstrap})")  # fmt: skip
        return topic

    def _await(self, fut: Any, what: str, channel: str | None) -> Any:
        try:
            return _result(fut, self.timeout)
        except KafkaException as e:
            raise self.error(_kafka_error(e), what, channel) from e
        except TimeoutError as e:
            raise self.error(None, what, channel) from e

    def offsets(self, channel: str, spec: Any, committed: bool = True) -> int:
        topic = self.topic(channel)
        tp = TopicPartition(topic, 0)
        level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
        try:
            futs = self._admin.list_offsets(
                {tp: spec}, isolation_level=level, request_timeout=self.timeout
            )
        except KafkaException as e:
            raise self.error(_kafka_error(e), "list offsets", channel) from e
        return int(self._await(next(iter(futs.values())), "list offsets", channel).offset)

    # --- channels -------------------------------------------------------------------------
    def create_channel(self, channel: str) -> None:
        self.check_open()
        topic = self.topic(channel)
        config = {
            "max.message.bytes": str(self.max_record_bytes + _OVERHEAD),
            "retention.ms": "-1",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "min.insync.replicas": "1",
            "unclean.leader.election.enable": "false",
        }
        futs = self._admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1, config=config)],
            request_timeout=self.timeout,
        )
        try:
            _result(futs[topic], self.timeout)
        except KafkaException as e:
            err = _kafka_error(e)
            if err is None or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise self.error(err, "create topic", channel) from e
        except TimeoutError as e:
            raise self.error(None, "create topic", channel) from e
        self._wait_metadata(channel, topic, present=True)

    def drop_channel(self, channel: str) -> None:
        topic = self.require(channel)
        futs = self._admin.delete_topics([topic], request_timeout=self.timeout)
        self._await(futs[topic], "delete topic", channel)
        self._wait_metadata(channel, topic, present=False)

    def _wait_metadata(self, channel: str, topic: str, *, present: bool) -> None:
        """Wait until the broker's metadata shows the topic ready (or gone)."""
        end = time.monotonic() + self.timeout
        while True:
            t = self._metadata(topic).topics.get(topic)
            ok = t is not None and t.error is None and 0 in t.partitions
            if present and ok and t.partitions[0].leader >= 0:
                return
            if not present and not ok:
                return
            if time.monotonic() > end:
                raise self.error(None, "topic metadata propagation", channel)
            time.sleep(0.02)

    def channels(self) -> list[str]:
        self.check_open()
        n = len(self.topic_prefix)
        names = (t[n:] for t in self._metadata().topics if t.startswith(self.topic_prefix))
        return sorted(c for c in names if CHANNEL_RE.match(c))

    # --- writers, readers, positions ------------------------------------------------------
    def writer(self, channel: str) -> KafkaWalWriter:
        topic = self.require(channel)
        w = KafkaWalWriter(self, channel, topic)
        self._children.add(w)
        return w

    def reader(self, channel: str, position: int = 0) -> KafkaWalReader:
        _check_position(position)
        topic = self.require(channel)
        r = KafkaWalReader(self, channel, topic, position)
        self._children.add(r)
        return r

    def high_watermark(self, channel: str) -> int:
        self.require(channel)
        return self.offsets(channel, OffsetSpec.latest())

    def low_watermark(self, channel: str) -> int:
        self.require(channel)
        return self.offsets(channel, OffsetSpec.earliest())

    def truncate_before(self, channel: str, position: int) -> None:
        _check_position(position)
        topic = self.require(channel)
        # never past the last stable offset: open transactions stay intact
        position = min(position, self.offsets(channel, OffsetSpec.latest()))
        if position <= self.offsets(channel, OffsetSpec.earliest()):
            return
        futs = self._admin.delete_records(
            [TopicPartition(topic, 0, position)],
            request_timeout=self.timeout,
            operation_timeout=self.timeout,
        )
        self._await(next(iter(futs.values())), "delete records", channel)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for child in list(self._children):
            child.close()

    def __enter__(self) -> KafkaWAL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaWAL({self.bootstrap!r}, topic_prefix={self.topic_prefix!r})"


def _check_position(position: int) -> None:
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise InvalidArgumentError(f"WAL position must be an int >= 0, got {position!r}")
