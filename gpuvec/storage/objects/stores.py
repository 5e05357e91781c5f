"""Opening the Zarr stores that hold sealed segments: a local directory or S3.

``open_store("/data/dir")`` gives a :class:`zarr.storage.LocalStore`;
``open_store("s3://bucket/prefix", endpoint_url=...)`` an :class:`zarr.storage.FsspecStore`
over s3fs with bounded connect/read timeouts and retries, so an unreachable endpoint fails
within seconds instead of hanging. Also the small synchronous helpers gpuvec uses to put and
get whole side files (Parquet, delta logs) next to Zarr arrays.
"""

from __future__ import annotations

import os
from typing import Any

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from gpuvec.errors import InvalidArgumentError, NotFoundError, UnavailableError


def open_store(
    uri: str | os.PathLike[str],
    *,
    read_only: bool = False,
    endpoint_url: str | None = None,
    timeout: float = 10.0,
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """A Zarr store for ``uri`` (a path, ``file://`` or ``s3://bucket/prefix``)."""
    uri = os.fspath(uri)
    if uri.startswith("s3://"):
        opts: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
            "skip_instance_cache": True,
        }
        if endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": endpoint_url}
        opts.update(storage_options or {})
        return FsspecStore.from_url(uri, storage_options=opts, read_only=read_only)
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidArgumentError(f"unsupported object store URI {uri!r}: use a path or s3://")
    path = uri.removeprefix("file://")
    if not read_only:
        os.makedirs(path, exist_ok=True)
    return LocalStore(path, read_only=read_only)


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # S3 support not installed
        pass
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


def describe(store: Store) -> str:
    """A short human name for a store, for error messages."""
    if isinstance(store, LocalStore):
        return f"file://{store.root}"
    if isinstance(store, FsspecStore):
        return f"{store.fs.protocol[0] if isinstance(store.fs.protocol, tuple) else store.fs.protocol}://{store.path}"
    return repr(store)


def _wrap(store: Store, key: str, e: Exception) -> Exception:
    if isinstance(e, FileNotFoundError | KeyError):
        return NotFoundError(f"object {key!r} not found in {describe(store)}")
    return UnavailableError(f"object store {describe(store)} failed on {key!r}: {e}")


def wrap_errors(store: Store, what: str) -> _Guard:
    """``with wrap_errors(store, "segment x"):`` turns transport failures into
    :class:`UnavailableError` naming the store and the object."""
    return _Guard(store, what)


class _Guard:
    def __init__(self, store: Store, what: str) -> None:
        self.store, self.what = store, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if (
            exc is not None
            and isinstance(exc, TRANSPORT_ERRORS)
            and not isinstance(exc, FileNotFoundError)
        ):
            raise _wrap(self.store, self.what, exc) from exc


def put_bytes(store: Store, key: str, data: bytes) -> None:
    try:
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))
    except TRANSPORT_ERRORS as e:
        raise _wrap(store, key, e) from e


def get_bytes(store: Store, key: str) -> bytes:
    try:
        buf = sync(store.get(key, prototype=default_buffer_prototype()))
    except TRANSPORT_ERRORS as e:
        raise _wrap(store, key, e) from e
    if buf is None:
        raise NotFoundError(f"object {key!r} not found in {describe(store)}")
    return buf.to_bytes()


def exists(store: Store, key: str) -> bool:
    try:
        return bool(sync(store.exists(key)))
    except TRANSPORT_ERRORS as e:
        raise _wrap(store, key, e) from e


def delete_prefix(store: Store, prefix: str) -> None:
    """Remove every object under ``prefix`` (garbage collection of replaced segments)."""
    try:
        sync(store.delete_dir(prefix.strip("/")))
    except TRANSPORT_ERRORS as e:
        raise _wrap(store, prefix, e) from e
