"""The ``MetaStore`` Protocol (DESIGN §2) and the value types it speaks.

A meta store is a revisioned key/value store with etcd's semantics:

* every mutating call (put, delete, a successful transaction) bumps the store-wide
  ``revision`` by exactly one; each key keeps ``create_revision``, ``mod_revision`` and
  ``version`` (number of puts since creation);
* ``txn`` evaluates all ``Compare`` s atomically and applies either the ``success`` or the
  ``failure`` ops, as one revision;
* leases expire ``ttl`` seconds after the last keepalive and delete their keys;
* ``watch(prefix, start_revision)`` yields every change with revision ≥ start_revision in
  order, and keeps doing so across server restarts. When the history it needs was
  compacted, it yields one ``RESET`` event followed by a ``PUT`` for every current key
  (a full re-list), then goes on from there.

Keys are ``str`` (stored as UTF-8), values ``bytes``. Both are validated by
:func:`check_key` / :func:`check_value` before anything is sent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from gpuvec.errors import InvalidArgumentError, InvalidKeyError

MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20  # etcd's default request limit is 1.5 MiB; stay below it


def check_key(key: str, what: str = "key") -> bytes:
    """Validate a meta key and return its UTF-8 bytes; raise :class:`InvalidKeyError`."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"meta {what} must be str, got {type(key).__name__}: {key!r}")
    if key == "":
        raise InvalidKeyError(f"meta {what} must not be empty")
    raw = key.encode("utf-8")
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"meta {what} {key[:40]!r}... is {len(raw)} bytes; the limit is {MAX_KEY_BYTES}"
        )
    for i, ch in enumerate(key):
        if ord(ch) < 0x20 or ch == "\x7f":
            raise InvalidKeyError(
                f"meta {what} {key!r} contains control character {ch!r} at position {i}"
            )
    return raw


def check_prefix(prefix: str) -> bytes:
    """Like :func:`check_key` but the empty prefix (whole keyspace) is allowed."""
    if prefix == "":
        return b""
    return check_key(prefix, "prefix")


def check_value(key: str, value: bytes) -> bytes:
    """Validate a meta value (bytes, bounded size)."""
    if isinstance(value, str):
        raise InvalidArgumentError(f"meta value for {key!r} must be bytes, got str")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgumentError(
            f"meta value for {key!r} must be bytes, got {type(value).__name__}"
        )
    value = bytes(value)
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidArgumentError(
            f"meta value for {key!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}"
        )
    return value


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd range_end)."""
    if not prefix:
        return b"\0"
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as stored, with etcd's per-key revisions."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


# --- transactions ------------------------------------------------------------------------
CompareTarget = Literal["value", "version", "create_revision", "mod_revision", "lease"]
CompareOp = Literal["==", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """``target(key) op value``. A missing key has version/revisions/lease 0 and no value
    (a ``value`` comparison against a missing key is false, as in etcd)."""

    key: str
    target: CompareTarget
    op: CompareOp
    value: int | bytes


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


@dataclass(frozen=True, slots=True)
class DeletePrefix:
    prefix: str


@dataclass(frozen=True, slots=True)
class Get:
    key: str


Op = Put | Delete | DeletePrefix | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    """``succeeded`` tells which branch ran; ``responses[i]`` is the ``KeyValue | None`` of
    the i-th ``Get`` in that branch (in order); ``revision`` is the store revision after."""

    succeeded: bool
    revision: int
    responses: list[KeyValue | None] = field(default_factory=list)


# --- watch -------------------------------------------------------------------------------
class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"
    RESET = "reset"  # history compacted: the events that follow are a full re-list


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: bytes
    revision: int  # mod_revision of the change (for RESET: the re-list revision)


@runtime_checkable
class Watch(Protocol):
    """A live subscription. Iterating blocks for the next events; ``get`` bounds the wait."""

    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        """Events available within ``timeout`` seconds (possibly none)."""
        ...

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def cancel(self) -> None: ...

    @property
    def last_revision(self) -> int:
        """Revision of the last event handed out (0 before any)."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl: int


@runtime_checkable
class MetaStore(Protocol):
    """Meta storage (DESIGN §2). Implementations: SQLite (embedded) and etcd."""

    def get(self, key: str) -> KeyValue | None: ...

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Store ``value``; return the new revision."""
        ...

    def delete(self, key: str) -> bool:
        """Delete ``key``; True when it existed."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete all keys under ``prefix``; return how many."""
        ...

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under ``prefix`` sorted by key, and the revision they were read at."""
        ...

    def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult: ...

    def revision(self) -> int: ...

    def grant_lease(self, ttl: int) -> Lease: ...

    def keepalive(self, lease_id: int) -> int:
        """Refresh a lease; return its TTL. Raise ``LeaseExpiredError`` if it is gone."""
        ...

    def revoke_lease(self, lease_id: int) -> None: ...

    def lease_ttl(self, lease_id: int) -> int:
        """Remaining seconds, or -1 when the lease does not exist."""
        ...

    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        """Watch ``prefix`` from ``start_revision`` (default: current revision + 1)."""
        ...

    def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (watches from earlier revisions re-list)."""
        ...

    def close(self) -> None: ...
