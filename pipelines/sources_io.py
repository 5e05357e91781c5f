"""Where import files live: a local path or a remote URI (``s3://bucket/key`` through
fsspec/s3fs, ``storage_options`` passed through), behind one small :class:`Location`.

A location keeps the name the user gave (errors and :class:`~.sources.Chunk` name files
that way) and offers only what the readers need: existence, listing, size, streaming,
byte ranges and downloads. Local files are read with the OS (so NumPy can memory-map
them); remote ones with the fsspec filesystem, with bounded timeouts on S3 unless the
caller sets its own ``config_kwargs``.

It also remembers, per file, the approximate bytes one row costs to read, measured when an
import is planned, for :func:`~.sources.source_bytes` (which gets no storage options).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import IO, Any

from gpuvec.errors import InvalidArgumentError

_S3_DEFAULTS = {
    "config_kwargs": {
        "connect_timeout": 10,
        "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
    },
}
_ROW_BYTES: dict[str, float] = {}  # file name -> bytes per row (for source_bytes)
_ROW_BYTES_MAX = 100_000  # forget everything past this many files


@dataclass(frozen=True)
class Location:
    """One file or directory: ``name`` as the user wrote it, ``path`` for the filesystem
    (``fs`` is None for local files)."""

    name: str
    path: str
    fs: Any = None

    @property
    def local(self) -> bool:
        return self.fs is None

    @property
    def basename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1] if self.fs else os.path.basename(self.path)

    def exists(self) -> bool:
        return os.path.exists(self.path) if self.local else bool(self.fs.exists(self.path))

    def isdir(self) -> bool:
        return os.path.isdir(self.path) if self.local else bool(self.fs.isdir(self.path))

    def children(self) -> list[Location]:
        """Entries of a directory, naturally sorted (``2`` before ``10``), hidden and
        bookkeeping names (``.x``, ``_SUCCESS``) left out."""
        if self.local:
            names = os.listdir(self.path)
            paths = [os.path.join(self.path, n) for n in names]
        else:
            paths = [p.rstrip("/") for p in self.fs.ls(self.path, detail=False, refresh=True)]
            paths = [p for p in paths if p != self.path.rstrip("/")]
            names = [p.rsplit("/", 1)[-1] for p in paths]
        base = self.name.rstrip("/")
        out = [
            Location(os.path.join(base, n) if self.local else f"{base}/{n}", p, self.fs)
            for n, p in zip(names, paths, strict=True)
            if not n.startswith((".", "_"))
        ]
        return sorted(out, key=lambda loc: natural_key(loc.basename))

    def size(self) -> int:
        return os.path.getsize(self.path) if self.local else int(self.fs.size(self.path))

    def open(self) -> IO[bytes]:
        return open(self.path, "rb") if self.local else self.fs.open(self.path, "rb")

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()

    def read_range(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` (one ranged GET on S3)."""
        if stop <= start:
            return b""
        if not self.local:
            return bytes(self.fs.cat_file(self.path, start=start, end=stop))
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(stop - start)

    def download(self, target: str) -> None:
        self.fs.get_file(self.path, target)


def open_location(name: str | os.PathLike[str], storage_options: dict | None = None) -> Location:
    """The location of a path or URI; InvalidArgumentError for an unusable one."""
    name = os.fspath(name)
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"import file names must be non-empty paths, got {name!r}")
    if "://" not in name or name.startswith("file://"):
        return Location(name, name.removeprefix("file://"))
    opts = dict(storage_options or {})
    if name.startswith(("s3://", "s3a://")):
        opts = {**_S3_DEFAULTS, **opts}
    try:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(name, **opts)
    except (ImportError, ValueError, TypeError) as e:
        raise InvalidArgumentError(f"{name}: cannot open this location ({e})") from None
    return Location(name, path, fs)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``2.parquet`` before ``10.parquet``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def remember_row_bytes(files: tuple[str, ...], per_row: float) -> None:
    """Record what one row of a source costs to read, spread over its files."""
    if len(_ROW_BYTES) > _ROW_BYTES_MAX:
        _ROW_BYTES.clear()
    for f in files:
        _ROW_BYTES[f] = per_row / max(1, len(files))


def row_bytes(file: str) -> float | None:
    """Bytes per row recorded for ``file`` when its import was planned, if known."""
    return _ROW_BYTES.get(file)
