"""Authentication of the Milvus endpoint: users and passwords, as Milvus does it.

pymilvus sends ``authorization: base64("user:password")`` metadata on every call (a token
is sent the same way and must also be ``user:password``). With authentication on, every RPC
checks it and a missing or wrong one is rejected with gRPC ``UNAUTHENTICATED`` (pymilvus
raises at once, without retries). The default user is ``root`` with the password
``Milvus`` (Milvus's default) unless the server is started with another one.

Users live in meta storage under ``auth/users/<name>`` as salted PBKDF2-SHA256 hashes
(never the password), changed by compare-and-swap transactions; the credential RPCs
(CreateCredential, UpdateCredential, DeleteCredential, ListCredUsers) manage them.
Verified credentials are cached per authorization header for a short while so a search
does not pay a key derivation.

Passwords are compared exactly: the hash input is the password's UTF-8 bytes behind a
fixed prefix and their length (HMAC, and so PBKDF2, zero-pads short keys, so a raw
``"Milvus\x00"`` would hash like ``"Milvus"``), and digests are compared in constant time.
Records written before that scheme (no ``"v"``) still verify, refusing any password with
a control character, and are rewritten in the new scheme on their first success. A new
password is 6..256 characters without control characters, a new user name follows
Milvus's rule (a letter, then letters, digits, ``_``, ``-`` or ``.``; at most 32); a
malformed ``authorization`` header is just a failed check, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from gpuvec.errors import AlreadyExistsError, GpuvecError, InvalidArgumentError, NotFoundError
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Delete, MetaStore, Op, Put, TxnResult

__all__ = [
    "ROOT_USER",
    "AuthInterceptor",
    "Credentials",
    "check_password",
    "check_username",
    "parse_authorization",
]

ROOT_USER = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"
_PREFIX = K.USERS
_ITERATIONS = 100_000
_CACHE_S = 60.0
MIN_PASSWORD, MAX_PASSWORD = 6, 256  # Milvus's limits
MAX_USERNAME = 32  # Milvus's proxy.maxUsernameLength
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
_SCHEME = 2  # record version: PBKDF2 over a length-prefixed password
_DOMAIN = b"gpuvec-password-v2\x00"

log = logging.getLogger("gpuvec.server")


def parse_authorization(value: str | bytes | None) -> tuple[str, str] | None:
    """(user, password) from an ``authorization`` header value, None if malformed."""
    if not value:
        return None
    raw = value.encode() if isinstance(value, str) else value
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep and user else None


def _control_char(text: str) -> int | None:
    """Position of the first control character (Unicode category Cc) in text, or None."""
    return next((i for i, c in enumerate(text) if unicodedata.category(c) == "Cc"), None)


def check_username(user: str) -> None:
    """Milvus's rule for a new user name; InvalidArgumentError says what is wrong."""
    if not user:
        raise InvalidArgumentError("username must not be empty")
    if len(user) > MAX_USERNAME:
        raise InvalidArgumentError(
            f"username must be at most {MAX_USERNAME} characters, got {len(user)}"
        )
    if not _USERNAME.fullmatch(user):
        raise InvalidArgumentError(
            f"invalid username {user[:MAX_USERNAME]!r}: the first character must be a letter, "
            "the others letters, digits, underscores, dots or hyphens"
        )


def check_password(password: str) -> None:
    """Milvus's length rule plus no control characters; InvalidArgumentError says why."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgumentError(
            f"password must be {MIN_PASSWORD}..{MAX_PASSWORD} characters, got {len(password)}"
        )
    pos = _control_char(password)
    if pos is not None:
        raise InvalidArgumentError(
            f"password must not contain control characters: U+{ord(password[pos]):04X} at "
            f"position {pos}"
        )


def _hash(password: str, salt: bytes) -> bytes:
    """The scheme-2 digest: the password's bytes framed by a fixed prefix and their length,
    so no two passwords (a trailing NUL included) give the same PBKDF2 key."""
    raw = password.encode("utf-8", "surrogatepass")
    key = _DOMAIN + len(raw).to_bytes(4, "big") + raw
    return hashlib.pbkdf2_hmac("sha256", key, salt, _ITERATIONS)


def _legacy_hash(password: str, salt: bytes) -> bytes:
    """The digest of records written before scheme 2 (raw UTF-8 bytes as the key)."""
    return hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8", "surrogatepass"), salt, _ITERATIONS
    )


class Credentials:
    """Users and their password hashes in meta storage (reads from ``meta``, writes
    through ``txn``)."""

    def __init__(
        self,
        meta: MetaStore,
        root_password: str = DEFAULT_ROOT_PASSWORD,
        txn: Callable[[Sequence[Compare], Sequence[Op]], TxnResult] | None = None,
    ) -> None:
        """``txn``: the runtime's leader-guarded transaction (``MilvusClient.meta_guard()``):
        user writes then fail on a deposed leader instead of racing its successor; without
        it (tests, tools) writes go to ``meta`` directly."""
        self.meta = meta
        self.txn = txn or meta.txn
        self._cache: dict[bytes, float] = {}
        self._lock = threading.Lock()
        if self.meta.get(_PREFIX + ROOT_USER) is None:
            with contextlib.suppress(AlreadyExistsError):  # another server created it first
                self.create(ROOT_USER, root_password)

    @staticmethod
    def _record(password: str) -> bytes:
        salt = os.urandom(16)
        rec = {"v": _SCHEME, "salt": salt.hex(), "hash": _hash(password, salt).hex()}
        return json.dumps(rec).encode()

    def create(self, user: str, password: str) -> None:
        check_username(user)
        check_password(password)
        key = _PREFIX + user
        ok = self.txn([Compare(key, "version", "==", 0)], [Put(key, self._record(password))])
        if not ok.succeeded:
            raise AlreadyExistsError(f"user {user!r} already exists")

    def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is exactly ``user``'s. Never raises for odd input: a name
        meta storage cannot hold, a password of a length or with characters no stored
        password can have, is simply not correct."""
        if not user or len(user) > 1024 or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            return False
        if _control_char(password) is not None:
            return False  # never stored (and the legacy hash cannot tell "pw\x00" from "pw")
        try:
            kv = self.meta.get(_PREFIX + user)
        except GpuvecError:  # e.g. a name with bytes meta keys refuse
            return False
        if kv is None:
            return False
        rec = json.loads(kv.value)
        salt, stored = bytes.fromhex(rec["salt"]), bytes.fromhex(rec["hash"])
        if rec.get("v") == _SCHEME:
            return hmac.compare_digest(stored, _hash(password, salt))
        if not hmac.compare_digest(stored, _legacy_hash(password, salt)):
            return False
        self._upgrade(user, password, kv.mod_revision)
        return True

    def _upgrade(self, user: str, password: str, revision: int) -> None:
        """Rewrite a legacy record in the current scheme (lost races are harmless)."""
        key = _PREFIX + user
        cmp = [Compare(key, "mod_revision", "==", revision)]
        if self.txn(cmp, [Put(key, self._record(password))]).succeeded:
            log.info("password record of user %r upgraded to scheme %d", user, _SCHEME)

    def update(self, user: str, old: str, new: str) -> None:
        if not self.verify(user, old):
            raise InvalidArgumentError(f"old password of user {user!r} is not correct")
        check_password(new)
        key = _PREFIX + user
        kv = self.meta.get(key)
        if kv is None:  # deleted since it was verified
            raise NotFoundError(f"user {user!r} does not exist")
        cmp = [Compare(key, "mod_revision", "==", kv.mod_revision)]
        if not self.txn(cmp, [Put(key, self._record(new))]).succeeded:
            raise InvalidArgumentError(f"password update of {user!r} raced; retry")
        with self._lock:
            self._cache.clear()

    def delete(self, user: str) -> None:
        if not user or _control_char(user) is not None:
            raise InvalidArgumentError(f"invalid username {user[:MAX_USERNAME]!r}")
        if user == ROOT_USER:
            raise InvalidArgumentError("the root user cannot be deleted")
        key = _PREFIX + user
        if not self.txn([Compare(key, "version", ">", 0)], [Delete(key)]).succeeded:
            raise NotFoundError(f"user {user!r} does not exist")
        with self._lock:
            self._cache.clear()

    def record(self, user: str) -> str | None:
        """``user``'s stored password record (salted hash, JSON text), None when absent."""
        kv = self.meta.get(_PREFIX + user)
        return None if kv is None else kv.value.decode()

    def users(self) -> list[str]:
        kvs, _ = self.meta.range(_PREFIX)
        return sorted(kv.key[len(_PREFIX) :] for kv in kvs)

    def check_header(self, header: str | bytes | None) -> bool:
        """Whether an ``authorization`` header names a user with the right password."""
        if not header:
            return False
        raw = header.encode() if isinstance(header, str) else header
        now = time.monotonic()
        with self._lock:
            expiry = self._cache.get(raw)
            if expiry is not None and expiry > now:
                return True
        parsed = parse_authorization(raw)
        if parsed is None or not self.verify(*parsed):
            return False  # malformed, unknown user or wrong password alike
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[raw] = now + _CACHE_S
        return True


class AuthInterceptor(grpc.ServerInterceptor):
    """Rejects every call whose ``authorization`` metadata does not check out."""

    MESSAGE = "auth check failure, please check username and password are correct"

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, self.MESSAGE)

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        header = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                header = value
                break
        try:
            allowed = self.credentials.check_header(header)
        except Exception:  # last resort (e.g. a corrupt stored record): deny, never crash
            log.exception("authentication check failed")
            allowed = False
        if allowed:
            return continuation(handler_call_details)
        return self._deny
