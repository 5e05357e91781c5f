"""Sealed segments: immutable Zarr v3 groups, written once, checked when read (DESIGN §4).

Layout under ``<path>/`` (e.g. ``collections/<cid>/segments/<sid>/v<version>``)::

    zarr.json            group; its attrs below are written LAST: they commit the segment
    pk                   int64 [N]          (VARCHAR primary keys live in scalars.parquet)
    ts                   uint64 [N]         insert timestamps
    vectors/<field>      [N, width]         float32, float16, bfloat16 (as uint16 bits), int8
                                            or packed uint8 bits (:mod:`gpuvec.vectors`);
                                            chunks of ``chunk_rows`` (default 8192) rows, no
                                            compression, CRC32C per chunk; optionally packed
                                            into ``shard_rows``-row shards (fewer objects, but
                                            zarr-python reads shards at ~0.6× the speed)
    scalars/<field>      1-D numeric/bool columns without nulls
    scalars.parquet      every other column (strings, JSON, arrays, nullable values),
                         row groups of ``chunk_rows`` rows

Group attrs (``gpuvec.segment``): format, row_count, ts_min/max, pk_min/max, checkpoint
(the WAL positions the segment covers), fields (name, kind, dtype/dim), and a checksum of
every array's and side file's full contents: CRC32C (``checksum: "crc32c"``; hardware
accelerated, 3× zlib's CRC32), or zlib's CRC32 in segments written before that attr.
Readers refuse a segment whose attrs are missing or inconsistent, whose chunks fail their
CRC32C, or (``verify()``) whose contents do not match the recorded checksums — always with
:class:`~gpuvec.errors.CorruptDataError`.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import zarr
from zarr.abc.store import Store
from zarr.codecs import Crc32cCodec
from zarr.storage import LocalStore

from gpuvec import vectors as vk
from gpuvec.arrays import one_array
from gpuvec.errors import AlreadyExistsError, CorruptDataError, InvalidArgumentError, NotFoundError
from gpuvec.schema import CollectionSchema
from gpuvec.storage.objects.fastchunks import read_rows, write_chunks
from gpuvec.storage.objects.handoff import Parts, leave
from gpuvec.storage.objects.stores import describe, exists, get_bytes, put_bytes, wrap_errors

FORMAT = 1
ATTR = "gpuvec.segment"
PARQUET = "scalars.parquet"
_ZARR_SCALAR = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)


CHECKSUM = "crc32c"  # what new segments record; "crc32" (zlib) in older ones


def _crc(data: Any, algo: str = CHECKSUM) -> int:
    buf = np.ascontiguousarray(data).view() if isinstance(data, np.ndarray) else data
    if algo == "crc32":
        return zlib.crc32(buf)
    if isinstance(buf, np.ndarray):
        buf.flags.writeable = False  # google_crc32c takes read-only buffers only
    return google_crc32c.value(buf)


@dataclass(frozen=True)
class SegmentInfo:
    """The committed attrs of a sealed segment."""

    path: str
    row_count: int
    ts_min: int
    ts_max: int
    pk_min: Any
    pk_max: Any
    checkpoint: dict[str, Any]
    fields: list[dict[str, Any]]
    checksums: dict[str, int] = field(repr=False)
    chunk_rows: int = 8192
    checksum: str = "crc32"  # the algorithm of ``checksums``: "crc32c", or zlib's in old ones

    def vector_fields(self) -> dict[str, int]:
        """Vector field → the stored matrix's width (dim; dim / 8 bytes for binary)."""
        return {f["name"]: f["dim"] for f in self.fields if f["kind"] == "vector"}

    def vector_dtypes(self) -> dict[str, str]:
        """Vector field → its storage dtype name (float32, float16, bfloat16, int8, uint8)."""
        return {f["name"]: f["dtype"] for f in self.fields if f["kind"] == "vector"}


_VECTOR_DTYPES = tuple(k.storage for k in vk.KINDS.values())


def _check_rows(name: str, n: int, got: int) -> None:
    if got != n:
        raise InvalidArgumentError(f"segment column {name!r} has {got} rows, expected {n}")


def write_segment(
    store: Store,
    path: str,
    *,
    pk: np.ndarray | pa.Array,
    ts: np.ndarray,
    vectors: Mapping[str, np.ndarray],
    scalars: pa.Table | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    chunk_rows: int = 8192,
    shard_rows: int | None = None,
    handoff: bool = False,
) -> SegmentInfo:
    """Write a sealed segment once; refuse if ``path`` already holds one.

    Every column is validated before the first byte is written. ``handoff``: leave the
    columns for a loader in this process (:mod:`.handoff`); the caller must not change
    them afterwards."""
    path = path.strip("/")
    n = len(pk)
    if n == 0:
        raise InvalidArgumentError(f"segment {path!r}: a sealed segment needs at least one row")
    ts = np.asarray(ts, dtype=np.uint64)
    _check_rows("ts", n, len(ts))
    vecs = {name: np.asarray(v) for name, v in vectors.items()}
    for name, vec in vecs.items():
        if vec.ndim != 2 or vec.dtype not in _VECTOR_DTYPES:
            raise InvalidArgumentError(
                f"segment vector field {name!r} must be a [N, width] matrix of "
                f"{', '.join(map(str, _VECTOR_DTYPES))}, got {vec.dtype} {vec.shape}"
            )
        _check_rows(name, n, vec.shape[0])
    cols = {}
    for col_name, col in zip(scalars.column_names, scalars.columns, strict=True) if scalars else ():
        _check_rows(col_name, n, len(col))
        cols[col_name] = one_array(col)
    if isinstance(pk, np.ndarray) and pk.dtype.kind in "iu":
        pk_arr = None
    else:
        pk_arr = pk if isinstance(pk, pa.Array) else pa.array(pk, pa.string())
        if not pa.types.is_string(pk_arr.type) or pk_arr.null_count:
            raise InvalidArgumentError(f"segment {path!r}: pk must be int64 or non-null strings")
    if exists(store, f"{path}/zarr.json"):
        raise AlreadyExistsError(f"segment {path!r} already exists in {describe(store)}")
    with wrap_errors(store, path):
        info = _write(
            store, path, n, pk_arr, pk, ts, vecs, cols, checkpoint, chunk_rows, shard_rows
        )
    if handoff:
        key = pk_arr if pk_arr is not None else np.asarray(pk).astype(np.int64, copy=False)
        leave(store, path, Parts(pk=key, ts=ts, vectors=vecs, scalars=pa.table(cols)))
    return info


def _write(store, path, n, pk_arr, pk, ts, vecs, cols, checkpoint, chunk_rows, shard_rows):  # type: ignore[no-untyped-def]
    chunk = max(1, min(chunk_rows, n))
    shard: int | None = None
    if shard_rows:
        shard = chunk * max(1, min(shard_rows // chunk, -(-n // chunk)))
    scalar_chunk = max(chunk, min(n, 65536))
    fields: list[dict[str, Any]] = []
    sums: dict[str, int] = {}
    side: dict[str, pa.Array] = {}

    def put_array(name: str, data: np.ndarray, rows: int) -> None:
        chunks = (rows, *data.shape[1:])
        shards = None if shard is None or rows != chunk else (shard, *data.shape[1:])
        direct = shards is None and isinstance(store, LocalStore)  # see .fastchunks
        zarr.create_array(
            store,
            name=f"{path}/{name}",
            data=None if direct else data,
            shape=data.shape if direct else None,
            dtype=data.dtype if direct else None,
            chunks=chunks,
            shards=shards,
            compressors=[Crc32cCodec()],
            filters=None,
            fill_value=0,
        )
        whole = write_chunks(store, f"{path}/{name}", data, rows) if direct else None
        sums[name] = _crc(data) if whole is None else whole

    if pk_arr is None:
        pk_np = np.asarray(pk).astype(np.int64, copy=False)
        put_array("pk", pk_np, scalar_chunk)
        fields.append({"name": "pk", "kind": "pk", "dtype": "int64"})
        pk_min, pk_max = int(pk_np.min()), int(pk_np.max())
    else:
        side["pk"] = pk_arr
        fields.append({"name": "pk", "kind": "pk", "dtype": "string"})
        pk_min, pk_max = pa.compute.min(pk_arr).as_py(), pa.compute.max(pk_arr).as_py()
    put_array("ts", ts, scalar_chunk)
    for name, vec in vecs.items():
        stored = vec.view(np.uint16) if vec.dtype == vk.BFLOAT16 else vec  # zarr: no bf16
        put_array(f"vectors/{name}", stored, chunk)
        fields.append(
            {"name": name, "kind": "vector", "dtype": str(vec.dtype), "dim": int(vec.shape[1])}
        )
    for col_name, col in cols.items():
        if any(p(col.type) for p in _ZARR_SCALAR) and col.null_count == 0:
            put_array(f"scalars/{col_name}", col.to_numpy(zero_copy_only=False), scalar_chunk)
            where = "zarr"
        else:
            side[col_name] = col
            where = "parquet"
        fields.append({"name": col_name, "kind": "scalar", "dtype": str(col.type), "where": where})

    if side:
        buf = io.BytesIO()
        pq.write_table(pa.table(side), buf, row_group_size=chunk, compression="zstd")
        data = buf.getvalue()
        put_bytes(store, f"{path}/{PARQUET}", data)
        sums[PARQUET] = _crc(data)

    info = SegmentInfo(
        path=path,
        row_count=n,
        ts_min=int(ts.min()),
        ts_max=int(ts.max()),
        pk_min=pk_min,
        pk_max=pk_max,
        checkpoint=dict(checkpoint or {}),
        fields=fields,
        checksums=sums,
        chunk_rows=chunk,
        checksum=CHECKSUM,
    )
    attrs = {
        ATTR: {
            "format": FORMAT,
            **{
                k: getattr(info, k)
                for k in (
                    "row_count",
                    "ts_min",
                    "ts_max",
                    "pk_min",
                    "pk_max",
                    "checkpoint",
                    "fields",
                    "checksums",
                    "chunk_rows",
                    "checksum",
                )
            },
        }
    }
    # the commit point: parents were created implicitly with the arrays, without our attrs
    zarr.open_group(store, path=path, mode="r+").update_attributes(attrs)
    return info


class SegmentReader:
    """Reads a committed segment; validates its attrs and shapes on open."""

    def __init__(self, store: Store, path: str) -> None:
        self.store, self.path = store, path.strip("/")
        where = f"segment {self.path!r} in {describe(store)}"
        self._where = where
        try:
            with wrap_errors(store, self.path):
                group = zarr.open_group(store, path=self.path, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
            raise NotFoundError(f"{where} does not exist or was never committed") from None
        except ValueError as e:
            raise CorruptDataError(f"{where} has unreadable metadata: {e}") from e
        meta = group.attrs.get(ATTR)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CorruptDataError(
                f"{where} has no committed {ATTR!r} attrs of format {FORMAT} "
                "(an interrupted write, or not a gpuvec segment)"
            )
        try:
            self.info = SegmentInfo(
                path=self.path, **{k: v for k, v in meta.items() if k != "format"}
            )
        except TypeError as e:
            raise CorruptDataError(f"{where} attrs are incomplete: {e}") from e
        self._group = group
        self._arrays: dict[str, zarr.Array] = {}
        self._parquet: pa.Table | None = None
        for name in self.info.checksums:
            if name == PARQUET:
                continue
            arr = self._array(name)
            if arr.shape[0] != self.info.row_count:
                raise CorruptDataError(
                    f"{where}: array {name!r} has {arr.shape[0]} rows, "
                    f"attrs say {self.info.row_count}"
                )

    def _array(self, name: str) -> zarr.Array:
        arr = self._arrays.get(name)
        if arr is None:
            try:
                arr = self._arrays[name] = self._group[name]  # type: ignore[assignment]
            except KeyError:
                raise CorruptDataError(f"{self._where}: array {name!r} is missing") from None
        return arr

    def _rows(self, start: int, stop: int | None) -> slice:
        n = self.info.row_count
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise InvalidArgumentError(
                f"{self._where}: row range [{start}, {stop}) outside [0, {n})"
            )
        return slice(start, stop)

    def _read(self, name: str, rows: slice) -> np.ndarray:
        try:
            with wrap_errors(self.store, f"{self.path}/{name}"):
                arr = self._array(name)
                start, stop, _ = rows.indices(arr.shape[0])
                got = read_rows(self.store, f"{self.path}/{name}", arr, start, stop)
                return arr[rows] if got is None else got
        except (ValueError, RuntimeError) as e:
            raise CorruptDataError(f"{self._where}: array {name!r} failed its check: {e}") from e

    def vectors(
        self, field: str | None = None, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        fields = self.info.vector_fields()
        field = field or next(iter(fields))
        if field not in fields:
            raise InvalidArgumentError(f"{self._where} has no vector field {field!r}")
        got = self._read(f"vectors/{field}", self._rows(start, stop))
        if self.info.vector_dtypes().get(field) == "bfloat16":
            got = got.view(vk.BFLOAT16)
        return got

    def ts(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self._read("ts", self._rows(start, stop))

    def pk(self, start: int = 0, stop: int | None = None) -> np.ndarray | pa.Array:
        rows = self._rows(start, stop)
        if "pk" in self.info.checksums:
            return self._read("pk", rows)
        return one_array(self._side().column("pk").slice(rows.start, rows.stop - rows.start))

    def column(self, name: str, start: int = 0, stop: int | None = None) -> pa.Array:
        rows = self._rows(start, stop)
        spec = next(
            (f for f in self.info.fields if f["name"] == name and f["kind"] == "scalar"), None
        )
        if spec is None:
            raise InvalidArgumentError(f"{self._where} has no scalar field {name!r}")
        if spec["where"] == "zarr":
            return pa.array(self._read(f"scalars/{name}", rows))
        return one_array(self._side().column(name).slice(rows.start, rows.stop - rows.start))

    def table(
        self, start: int = 0, stop: int | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        names = columns or [f["name"] for f in self.info.fields if f["kind"] == "scalar"]
        return pa.table({name: self.column(name, start, stop) for name in names})

    def _side(self) -> pa.Table:
        if self._parquet is None:
            data = get_bytes(self.store, f"{self.path}/{PARQUET}")
            if _crc(data, self.info.checksum) != self.info.checksums.get(PARQUET):
                raise CorruptDataError(f"{self._where}: {PARQUET} fails its checksum")
            self._parquet = pq.read_table(io.BytesIO(data))
        return self._parquet

    def verify(self) -> None:
        """Read everything and compare against the recorded checksums."""
        for name, want in self.info.checksums.items():
            if name == PARQUET:
                self._parquet = None
                self._side()
            elif _crc(self._read(name, slice(None)), self.info.checksum) != want:
                raise CorruptDataError(f"{self._where}: array {name!r} fails its checksum")


def segment_columns(
    schema: CollectionSchema, table: pa.Table
) -> tuple[np.ndarray, dict[str, np.ndarray], pa.Table]:
    """Split a validated insert table into a segment's parts: (primary keys, each dense
    vector field as a ``[n, dim]`` array, the other columns kept for output fields — a
    SPARSE_FLOAT_VECTOR field among them: its cells are the rows, :mod:`gpuvec.sparse`)."""
    pk = schema.primary_field
    assert pk is not None
    col = one_array(table.column(pk.name))
    pks = col.to_numpy() if pa.types.is_integer(col.type) else np.array(col.to_pylist(), object)
    dense = [f for f in schema.vector_fields if f.dtype in vk.KINDS]
    vectors = {}
    for f in dense:
        vectors[f.name] = vk.matrix(f.dtype, one_array(table.column(f.name)), int(f.dim or 0))
    rows = table.drop_columns([f.name for f in dense])
    return pks, vectors, rows
