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
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from gpuvec.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from gpuvec.storage.meta.base import Compare, Delete, MetaStore, Put

__all__ = ["ROOT_USER", "AuthInterceptor", "Credentials", "parse_authorization"]

ROOT_USER = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"
_PREFIX = "auth/users/"
_ITERATIONS = 100_000
_CACHE_S = 60.0
MIN_PASSWORD, MAX_PASSWORD = 6, 256  # Milvus's limits


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


def _hash(password: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return digest.hex()


class Credentials:
    """Users and their password hashes in meta storage."""

    def __init__(self, meta: MetaStore, root_password: str = DEFAULT_ROOT_PASSWORD) -> None:
        self.meta = meta
        self._cache: dict[bytes, float] = {}
        self._lock = threading.Lock()
        if self.meta.get(_PREFIX + ROOT_USER) is None:
            with contextlib.suppress(AlreadyExistsError):  # another server created it first
                self.create(ROOT_USER, root_password)

    @staticmethod
    def _check_password(password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidArgumentError(
                f"password must be {MIN_PASSWORD}..{MAX_PASSWORD} characters, got {len(password)}"
            )

    def _record(self, password: str) -> bytes:
        salt = os.urandom(16)
        return json.dumps({"salt": salt.hex(), "hash": _hash(password, salt)}).encode()

    def create(self, user: str, password: str) -> None:
        if not user:
            raise InvalidArgumentError("username must not be empty")
        self._check_password(password)
        key = _PREFIX + user
        ok = self.meta.txn([Compare(key, "version", "==", 0)], [Put(key, self._record(password))])
        if not ok.succeeded:
            raise AlreadyExistsError(f"user {user!r} already exists")

    def verify(self, user: str, password: str) -> bool:
        kv = self.meta.get(_PREFIX + user)
        if kv is None:
            return False
        rec = json.loads(kv.value)
        return hmac.compare_digest(rec["hash"], _hash(password, bytes.fromhex(rec["salt"])))

    def update(self, user: str, old: str, new: str) -> None:
        if not self.verify(user, old):
            raise InvalidArgumentError(f"old password of user {user!r} is not correct")
        self._check_password(new)
        kv = self.meta.get(_PREFIX + user)
        assert kv is not None
        key = _PREFIX + user
        cmp = [Compare(key, "mod_revision", "==", kv.mod_revision)]
        if not self.meta.txn(cmp, [Put(key, self._record(new))]).succeeded:
            raise InvalidArgumentError(f"password update of {user!r} raced; retry")
        with self._lock:
            self._cache.clear()

    def delete(self, user: str) -> None:
        if user == ROOT_USER:
            raise InvalidArgumentError("the root user cannot be deleted")
        key = _PREFIX + user
        if not self.meta.txn([Compare(key, "version", ">", 0)], [Delete(key)]).succeeded:
            raise NotFoundError(f"user {user!r} does not exist")
        with self._lock:
            self._cache.clear()

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
            return False
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
        if self.credentials.check_header(header):
            return continuation(handler_call_details)
        return self._deny
