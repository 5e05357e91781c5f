"""The in-process hand-off of just-written segments (:mod:`gpuvec.storage.objects.handoff`)
and the segment checksums: a loader takes exactly what was written, once, without reading
the files; entries expire and are bounded; segments with zlib CRC32 checksums (written
before CRC32C) still verify; an embedded import leaves nothing behind once served."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr

from gpuvec.errors import CorruptDataError, GpuvecError
from gpuvec.query.node import load_segment
from gpuvec.records import CollectionMeta
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.storage.objects import handoff
from gpuvec.storage.objects.segment import ATTR, SegmentReader, write_segment
from gpuvec.storage.objects.stores import open_store


def _schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("emb", DataType.FLOAT_VECTOR, dim=8)
    s.add_field("age", DataType.INT32)
    s.add_field("title", DataType.VARCHAR, max_length=32)
    return s


def _meta() -> CollectionMeta:
    return CollectionMeta(id=1, name="c", schema=_schema().to_dict(), num_shards=1,
                          consistency_level="Strong", partitions={"_default": 0},
                          created_ts=0)  # fmt: skip


def _parts(n: int = 300) -> dict:
    rng = np.random.default_rng(1)
    return dict(
        pk=np.arange(10, 10 + n, dtype=np.int64),
        ts=np.full(n, 7, np.uint64),
        vectors={"emb": rng.standard_normal((n, 8)).astype(np.float32)},
        scalars=pa.table(
            {
                "age": pa.array(rng.integers(0, 90, n), pa.int32()),
                "title": pa.array([f"t{i}" for i in range(n)]),
            }
        ),
        checkpoint={"c1_dml_0": 0},
        chunk_rows=64,
    )


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_array_equal(a.pks, b.pks)
    np.testing.assert_array_equal(a.vectors("emb"), b.vectors("emb"))
    assert a.table().equals(b.table())


def test_loader_takes_what_was_written_once_without_reading(tmp_path: Path) -> None:
    store = open_store(tmp_path / "objects")
    write_segment(store, "segs/a", **_parts())
    read = load_segment(store, "segs/a", 1, 0, _meta())  # no hand-off: read from the files
    write_segment(store, "segs/b", handoff=True, **_parts())
    assert handoff.held_bytes() > 0
    shutil.rmtree(tmp_path / "objects" / "segs" / "b" / "vectors")  # the files are not read
    taken = load_segment(store, "segs/b", 2, 0, _meta())
    _same(taken, read)
    assert handoff.held_bytes() == 0
    with pytest.raises(GpuvecError):  # taken once: a second load reads the (damaged) files
        load_segment(store, "segs/b", 2, 0, _meta())


def test_entries_expire_and_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "objects")
    now = [1000.0]
    monkeypatch.setattr(handoff, "_clock", lambda: now[0])
    write_segment(store, "segs/a", handoff=True, **_parts())
    now[0] += handoff.TTL_S / 2
    write_segment(store, "segs/b", handoff=True, **_parts())
    now[0] += handoff.TTL_S / 2 + 1  # a has expired, b has not
    assert handoff.take(store, "segs/a") is None
    assert handoff.take(store, "segs/b") is not None
    assert handoff.held_bytes() == 0
    one = _parts()
    size = handoff.Parts(one["pk"], one["ts"], one["vectors"], one["scalars"]).nbytes
    monkeypatch.setattr(handoff, "MAX_BYTES", size + size // 2)  # room for one entry
    write_segment(store, "segs/c", handoff=True, **_parts())
    write_segment(store, "segs/d", handoff=True, **_parts())
    assert handoff.take(store, "segs/c") is None  # the oldest went first
    assert handoff.take(store, "segs/d") is not None
    assert handoff.held_bytes() == 0


def test_crc32c_checksums_and_old_zlib_segments_verify(tmp_path: Path) -> None:
    store = open_store(tmp_path / "objects")
    p = _parts()
    info = write_segment(store, "segs/new", **p)
    assert info.checksum == "crc32c"
    SegmentReader(store, "segs/new").verify()
    # an old segment: zlib CRC32 checksums and no "checksum" attr
    write_segment(store, "segs/old", **p)
    group = zarr.open_group(store, path="segs/old", mode="r+")
    attrs = dict(group.attrs[ATTR])
    attrs.pop("checksum")
    r = SegmentReader(store, "segs/old")
    arrays = {"pk": r.pk(), "ts": r.ts(), "vectors/emb": r.vectors("emb"),
              "scalars/age": r.column("age").to_numpy()}  # fmt: skip
    assert set(arrays) | {"scalars.parquet"} == set(attrs["checksums"])
    sums = {name: zlib.crc32(np.ascontiguousarray(a)) for name, a in arrays.items()}
    side = tmp_path / "objects/segs/old/scalars.parquet"
    sums["scalars.parquet"] = zlib.crc32(side.read_bytes())
    attrs["checksums"] = sums
    group.update_attributes({ATTR: json.loads(json.dumps(attrs))})
    old = SegmentReader(store, "segs/old")
    assert old.info.checksum == "crc32"
    old.verify()
    attrs["checksums"] = {**sums, "ts": sums["ts"] ^ 1}  # a wrong one is still caught
    group.update_attributes({ATTR: attrs})
    with pytest.raises(CorruptDataError, match="'ts' fails its checksum"):
        SegmentReader(store, "segs/old").verify()


def test_a_missing_chunk_file_fails_the_whole_array_checksum(tmp_path: Path) -> None:
    store = open_store(tmp_path / "objects")
    write_segment(store, "segs/a", **_parts())
    (tmp_path / "objects/segs/a/vectors/emb/c/2/0").unlink()  # zarr would read zeros
    with pytest.raises(CorruptDataError, match="'vectors/emb' fails its checksum"):
        SegmentReader(store, "segs/a").verify()
