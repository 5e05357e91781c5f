"""Kafka WAL (DESIGN §2, distributed mode): one topic per channel, confluent-kafka client.

Owns the channel topics (``topic_prefix + channel``: one partition, replication 1,
``retention.ms=-1`` so only :meth:`KafkaWAL.truncate_before` removes records), their
transactional writers and their ``read_committed`` readers (the reader class lives in
:mod:`~gpuvec.storage.wal.kafka_reader`, shared helpers in ``kafka_common``). Invariants:

* A position is the record's Kafka offset in partition 0. Commit markers take offsets
  too, so positions strictly increase but are not dense.
* One writer per channel: a transactional producer with ``transactional.id``
  ``f"{topic_prefix}{channel}-writer"``. Opening one bumps that id's epoch, which fences
  the previous writer: its next append raises :class:`FencedError`.
* ``append``/``append_many`` are one Kafka transaction each (all or none) and return once
  the records are committed *and* readable (``high_watermark`` is past them). When they
  raise :class:`UnavailableError` nothing was committed, and the same records may be
  appended again without duplicates. A commit still in doubt after :data:`COMMIT_WAIT_S`
  raises :class:`StorageError` and retires the writer instead.
* Readers ``assign()`` an explicit offset with ``read_committed`` isolation; they never
  subscribe, join a group or commit (confluent-kafka demands a ``group.id``; it is unused).
* ``high_watermark`` is the last stable offset: one past the last committed record and
  its commit marker. ``low_watermark`` is the log start offset.
* Every call is bounded by ``timeout`` (a commit in doubt by :data:`COMMIT_WAIT_S`); an
  unreachable broker is :class:`UnavailableError` naming the bootstrap address.
* A fatal client error other than fencing (librdkafka can raise INVALID_TXN_STATE when a
  rollback follows a long outage) retires the writer with :class:`StorageError`.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import (
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
    FencedError,
    InvalidArgumentError,
    NotFoundError,
    RecordTooLargeError,
    StorageError,
    UnavailableError,
)
from gpuvec.storage.wal.base import CHANNEL_RE, check_channel
from gpuvec.storage.wal.kafka_common import (
    _COMMON,
    _DOWN,
    _FENCED,
    _KAFKA_ERRORS,
    _NOT_FOUND,
    _OVERHEAD,
    _PREFIX_RE,
    _ROLLBACK,
    COMMIT_WAIT_S,
    _check_position,
    _compacted,
    _kafka_error,
    log,
)
from gpuvec.storage.wal.kafka_reader import KafkaWalReader
from gpuvec.storage.wal.metrics import WalAppendMetrics
from gpuvec.storage.wal.record import Record

_APPENDS = WalAppendMetrics("kafka")


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
        for bad, what in (
            (not isinstance(bootstrap, str) or not bootstrap, f"bootstrap {bootstrap!r}"),
            (not _PREFIX_RE.match(str(topic_prefix)), f"topic_prefix {topic_prefix!r}"),
            (not 0 < max_record_bytes <= 512 << 20, f"max_record_bytes {max_record_bytes!r}"),
            (not timeout > 0, f"timeout {timeout!r}"),
        ):
            if bad:
                raise InvalidArgumentError(f"KafkaWAL: invalid {what}")
        self.bootstrap, self.topic_prefix = bootstrap, topic_prefix
        self.max_record_bytes, self.timeout = max_record_bytes, float(timeout)
        self._closed = False
        self._children: weakref.WeakSet[KafkaWalWriter | KafkaWalReader] = weakref.WeakSet()
        self._admin = AdminClient(self.conf(**{"socket.timeout.ms": int(self.timeout * 1000)}))
        self._metadata()  # fail fast when the broker is unreachable

    # --- helpers shared with writers and readers ------------------------------------------
    def conf(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **_COMMON, **extra}

    def error(self, err: KafkaError | None, what: str, channel: str | None = None) -> StorageError:
        """Translate a Kafka error (None: a timeout) into the gpuvec error tree."""
        where = f" on WAL channel {channel!r}" if channel is not None else ""
        if err is not None and err.code() in _NOT_FOUND and channel is not None:
            topic = self.topic_prefix + channel
            return NotFoundError(
                f"WAL channel {channel!r} does not exist (Kafka topic "
                f"{topic!r} on {self.bootstrap})"
            )
        if err is None or err.retriable() or err.code() in _DOWN:
            why = err.str() if err is not None else "timed out"
            return UnavailableError(
                f"Kafka at {self.bootstrap} unavailable for {what}{where} "
                f"within {self.timeout:g}s: {why}"
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

    def _admin_call(
        self, what: str, channel: str, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """One admin request (``method`` returns a dict of one future) to its result."""
        try:
            futs = method(*args, request_timeout=self.timeout, **kw)
            return next(iter(futs.values())).result(timeout=self.timeout)
        except KafkaException as e:
            raise self.error(_kafka_error(e), what, channel) from e
        except TimeoutError as e:
            raise self.error(None, what, channel) from e

    def require(self, channel: str) -> str:
        """The channel's topic; NotFoundError when there is none."""
        self.check_open()
        topic = self.topic_prefix + check_channel(channel)
        t = self._metadata(topic).topics.get(topic)
        err = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART) if t is None else t.error
        if err is not None:
            raise self.error(err, "metadata", channel)
        return topic

    def offset(self, channel: str, spec: Any) -> int:
        """The ``read_committed`` offset for ``spec`` (latest: the LSO)."""
        tps = {TopicPartition(self.topic_prefix + channel, 0): spec}
        level, call = IsolationLevel.READ_COMMITTED, self._admin.list_offsets
        return int(
            self._admin_call("list offsets", channel, call, tps, isolation_level=level).offset
        )

    # --- channels -------------------------------------------------------------------------
    def create_channel(self, channel: str) -> None:
        self.check_open()
        topic = self.topic_prefix + check_channel(channel)
        config = {
            "max.message.bytes": str(self.max_record_bytes + _OVERHEAD),
            "retention.ms": "-1",  # the WAL's consumers decide, through truncate_before
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
            "unclean.leader.election.enable": "false",
        }
        new = NewTopic(topic, num_partitions=1, replication_factor=1, config=config)
        try:
            self._admin_call("create topic", channel, self._admin.create_topics, [new])
        except StorageError as e:
            if e.__cause__ is None or _kafka_error(e).code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        self._wait_topic(channel, topic, present=True)

    def drop_channel(self, channel: str) -> None:
        topic = self.require(channel)
        self._admin_call("delete topic", channel, self._admin.delete_topics, [topic])
        self._wait_topic(channel, topic, present=False)

    def _wait_topic(self, channel: str, topic: str, *, present: bool) -> None:
        """Wait until the broker's metadata shows the topic with a leader (or gone)."""
        end = time.monotonic() + self.timeout
        while True:
            t = self._metadata(topic).topics.get(topic)
            ok = t is not None and t.error is None and 0 in t.partitions
            if (present and ok and t.partitions[0].leader >= 0) or (not present and not ok):
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
        w = KafkaWalWriter(self, channel, self.require(channel))
        self._children.add(w)
        return w

    def reader(self, channel: str, position: int = 0) -> KafkaWalReader:
        _check_position(position)
        topic = self.require(channel)
        if position < (low := self.offset(channel, OffsetSpec.earliest())):
            raise _compacted(channel, position, low)
        r = KafkaWalReader(self, channel, topic, position)
        self._children.add(r)
        return r

    def high_watermark(self, channel: str) -> int:
        self.require(channel)
        return self.offset(channel, OffsetSpec.latest())

    def low_watermark(self, channel: str) -> int:
        self.require(channel)
        return self.offset(channel, OffsetSpec.earliest())

    def truncate_before(self, channel: str, position: int) -> None:
        _check_position(position)
        topic = self.require(channel)
        # never past the last stable offset: an open transaction stays whole
        position = min(position, self.offset(channel, OffsetSpec.latest()))
        if position > self.offset(channel, OffsetSpec.earliest()):
            tps, delete = [TopicPartition(topic, 0, position)], self._admin.delete_records
            self._admin_call("delete records", channel, delete, tps, operation_timeout=self.timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for child in list(self._children):
                child.close()

    def __repr__(self) -> str:
        return f"KafkaWAL({self.bootstrap!r}, topic_prefix={self.topic_prefix!r})"


class KafkaWalWriter:
    """The single writer of one channel (module invariants). Appends are serialized."""

    def __init__(self, wal: KafkaWAL, channel: str, topic: str) -> None:
        self.channel, self._wal, self._topic = channel, wal, topic
        self._lock = threading.Lock()
        self._closed = False
        self._dead: StorageError | None = None  # fenced, fatal error or commit in doubt
        self._abort_pending = False  # a failed transaction still to be rolled back
        self._txn_id = f"{wal.topic_prefix}{channel}-writer"
        limit = wal.max_record_bytes + _OVERHEAD
        conf = {
            "transactional.id": self._txn_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": limit,  # a batch per ~max record; flush() sends at once anyway
            "message.max.bytes": limit,
            "transaction.timeout.ms": int(COMMIT_WAIT_S * 1000),
            "message.timeout.ms": int(COMMIT_WAIT_S * 1000),
        }
        self._producer = Producer(wal.conf(**conf))
        try:  # bumps the transactional.id's epoch: fences the previous writer
            self._producer.init_transactions(wal.timeout)
        except _KAFKA_ERRORS as e:
            err = _kafka_error(e)
            raise self._die(err) if err.fatal() else wal.error(err, "writer init", channel) from e

    def append(self, record: Record) -> int:
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[Record]) -> list[int]:
        recs, limit = list(records), self._wal.max_record_bytes
        for r in recs:
            if not isinstance(r, Record):
                raise InvalidArgumentError(f"WAL append expects Record, got {type(r).__name__}")
            if r.encoded_size > limit:
                raise RecordTooLargeError(
                    f"WAL record of {r.encoded_size} bytes on channel "
                    f"{self.channel!r} exceeds max_record_bytes={limit}"
                )
        with self._lock:
            if self._closed:
                raise ClosedError(f"writer of WAL channel {self.channel!r} is closed")
            if self._dead is not None:
                raise type(self._dead)(self._dead.message)
            self._wal.check_open()
            if not recs:
                return []
            start = time.perf_counter()
            deadline = time.monotonic() + self._wal.timeout
            self._finish_abort(deadline)
            positions = self._transaction(recs, deadline)
            nbytes = sum(r.encoded_size for r in recs)
            _APPENDS.observe(len(recs), nbytes, time.perf_counter() - start)
            return positions

    def _transaction(self, recs: list[Record], deadline: float) -> list[int]:
        p, reports = self._producer, []  # delivery reports come in produce order

        def report(err: KafkaError | None, msg: Message) -> None:
            reports.append(err if err is not None else msg.offset())

        err: KafkaError | None = None
        try:
            p.begin_transaction()
            for r in recs:
                self._produce(r.encode(), report, deadline)
            p.flush(max(0.0, deadline - time.monotonic()))
        except _KAFKA_ERRORS as e:
            err = _kafka_error(e)
        offsets = [o for o in reports if isinstance(o, int)]
        if err is not None or len(offsets) < len(recs):
            raise self._failed(err or next((e for e in reports if not isinstance(e, int)), None))
        self._commit()  # nothing is committed before this point
        self._wait_readable(offsets[-1], deadline)
        return offsets

    def _produce(self, value: bytes, cb: Callable[..., None], deadline: float) -> None:
        while True:
            try:
                return self._producer.produce(self._topic, value, partition=0, on_delivery=cb)
            except BufferError:  # local queue full: let deliveries drain it
                if time.monotonic() > deadline:
                    raise KafkaException(KafkaError(KafkaError._QUEUE_FULL)) from None
                self._producer.poll(0.05)

    def _commit(self) -> None:
        end = time.monotonic() + COMMIT_WAIT_S
        while True:
            try:
                left = max(0.1, min(self._wal.timeout, end - time.monotonic()))
                return self._producer.commit_transaction(left)
            except _KAFKA_ERRORS as e:
                err = _kafka_error(e)
                if err.fatal():
                    raise self._die(err, in_doubt=err.code() not in _FENCED) from e
                if err.txn_requires_abort():
                    raise self._failed(err) from e  # refused before EndTxn: not committed
                if not (err.retriable() and time.monotonic() < end):
                    raise self._die(err, in_doubt=True) from e
                # retriable: the commit goes on in the background; wait for it again

    def _failed(self, err: KafkaError | None) -> StorageError:
        """The transaction did not commit: the error to raise. Rolled back lazily."""
        if err is not None and err.fatal():
            return self._die(err)
        self._abort_pending = True
        exc = self._wal.error(err, "append", self.channel)
        if isinstance(exc, NotFoundError):
            return exc
        return UnavailableError(f"{exc.message}; the records were not appended (safe to retry)")

    def _finish_abort(self, deadline: float) -> None:
        """Roll back a failed transaction before the next one begins.

        librdkafka quirk: it sends EndTxn(abort) even when registering the partition with
        the transaction failed (broker restart mid-request); the coordinator answers
        INVALID_TXN_STATE, a *fatal* error. Flushing first lets the queued messages, and
        the registration retried with them, go through once the broker is back."""
        if not self._abort_pending:
            return
        try:
            if self._producer.flush(max(0.0, deadline - time.monotonic())):
                raise self._wal.error(None, _ROLLBACK, self.channel)
            self._producer.abort_transaction(max(0.1, deadline - time.monotonic()))
            self._abort_pending = False
        except _KAFKA_ERRORS as e:
            err = _kafka_error(e)
            if err.fatal():
                raise self._die(err) from e
            raise self._wal.error(err, _ROLLBACK, self.channel) from e

    def _wait_readable(self, last: int, deadline: float) -> None:
        """Commit markers are written after EndTxn returns: wait until the LSO passes."""
        while True:
            try:
                if self._wal.offset(self.channel, OffsetSpec.latest()) > last:
                    return
            except StorageError:
                return  # committed all the same; readers see it once the broker is back
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def _die(self, err: KafkaError, in_doubt: bool = False) -> StorageError:
        what, why = f"writer of WAL channel {self.channel!r}", err.str()
        if err.code() in _FENCED:
            self._dead = FencedError(
                f"{what} was fenced by a newer writer ({self._txn_id!r}): {why}"
            )
        else:
            doubt = "the last append's commit is in doubt, read the channel; " if in_doubt else ""
            self._dead = StorageError(
                f"{what} can no longer write ({why}): {doubt}open a new writer"
            )
        return self._dead

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._dead is None:
                    try:  # aborts a transaction left open by a failed append
                        self._producer.close()
                    except (*_KAFKA_ERRORS, RuntimeError) as e:
                        log.debug("closing writer of %s: %s", self.channel, e)
