"""Shared pieces of the Kafka WAL's writer and reader: client configuration and logging,
error classification, and position checks (see :mod:`gpuvec.storage.wal.kafka`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from gpuvec.errors import CompactedError, InvalidArgumentError

log = logging.getLogger("gpuvec.storage.wal.kafka")

COMMIT_WAIT_S = 60.0  # = transaction.timeout.ms: how long a commit in doubt is retried
_OVERHEAD = 64 << 10  # batch and request framing allowed above max_record_bytes
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._\-]{0,40}$")
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
_NOT_FOUND = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
_DOWN = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}
_DOWN |= {KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError.REQUEST_TIMED_OUT}
_ROLLBACK = "rollback of an earlier failed append (nothing appended; safe to retry)"
_KAFKA_ERRORS = (KafkaException, SystemError)  # SystemError: see _kafka_error


class _ClientLog:
    """librdkafka's log goes to ``log``; connection failures (retried, and raised as
    UnavailableError where they matter) are demoted from ERROR to INFO."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        quiet = args[:1] in (("FAIL",), ("ERROR",))
        log.log(min(level, logging.INFO) if quiet else level, fmt, *args)


_COMMON: dict[str, Any] = {
    "reconnect.backoff.ms": 50,  # reconnect quickly after a broker restart
    "reconnect.backoff.max.ms": 1000,
    "retry.backoff.ms": 50,
    "logger": _ClientLog(),
}


def _kafka_error(exc: BaseException) -> KafkaError:
    """The KafkaError behind ``exc``, else re-raise it. confluent-kafka quirk: a fatal error
    raised while delivery callbacks run surfaces as ``SystemError`` caused by it."""
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
            return e.args[0]
        e = e.__cause__ or e.__context__
    raise exc


def _check_position(position: int) -> None:
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise InvalidArgumentError(f"WAL position must be an int >= 0, got {position!r}")


def _compacted(channel: str, position: int, low: int) -> CompactedError:
    return CompactedError(
        f"position {position} of WAL channel {channel!r} was truncated; "
        f"the first readable position is {low}"
    )
