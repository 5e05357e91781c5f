"""Contract suite for sealed-segment object storage on any Zarr store.

Subclass :class:`SegmentStoreContract` and provide a ``store`` fixture yielding an empty,
writable Zarr store (local directory, S3...).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from zarr.abc.store import Store
from zarr.core.sync import sync

from gpuvec.errors import AlreadyExistsError, CorruptDataError, InvalidArgumentError, NotFoundError
from gpuvec.storage.objects.segment import SegmentReader, write_segment
from gpuvec.storage.objects.stores import get_bytes, put_bytes

PATH = "collections/7/segments/42/v1"


def keys(store: Store, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in store.list_prefix(prefix)]

    return sorted(sync(collect()))


def sample(n: int = 1000, dim: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        pk=np.arange(100, 100 + n, dtype=np.int64),
        ts=np.arange(n, dtype=np.uint64) + (5 << 18),
        vectors={"emb": rng.standard_normal((n, dim)).astype(np.float32)},
        scalars=pa.table(
            {
                "age": pa.array(rng.integers(0, 90, n), pa.int32()),
                "score": pa.array(rng.random(n), pa.float64()),
                "ok": pa.array(rng.random(n) > 0.5),
                "title": pa.array([f"doc {i}" for i in range(n)]),
                "meta": pa.array([json.dumps({"i": i}) for i in range(n)]),
                "tags": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
                "maybe": pa.array([None if i % 7 == 0 else i for i in range(n)], pa.int64()),
            }
        ),
        checkpoint={"by-dml_0": 1234},
    )


class SegmentStoreContract:
    def test_roundtrip_and_attrs(self, store: Store) -> None:
        s = sample()
        info = write_segment(store, PATH, chunk_rows=128, **s)
        r = SegmentReader(store, PATH)
        assert r.info == info
        assert (r.info.row_count, r.info.pk_min, r.info.pk_max) == (1000, 100, 1099)
        assert (r.info.ts_min, r.info.ts_max) == (5 << 18, (5 << 18) + 999)
        assert r.info.checkpoint == {"by-dml_0": 1234}
        assert r.info.vector_fields() == {"emb": 16}
        np.testing.assert_array_equal(r.vectors("emb"), s["vectors"]["emb"])
        np.testing.assert_array_equal(r.pk(), s["pk"])
        np.testing.assert_array_equal(r.ts(), s["ts"])
        assert r.table().equals(s["scalars"])
        r.verify()

    def test_row_range_reads(self, store: Store) -> None:
        s = sample()
        write_segment(store, PATH, chunk_rows=128, **s)
        r = SegmentReader(store, PATH)
        np.testing.assert_array_equal(r.vectors(start=250, stop=700), s["vectors"]["emb"][250:700])
        np.testing.assert_array_equal(r.pk(999, 1000), s["pk"][999:])
        assert r.table(127, 130, ["title", "maybe"]).to_pylist() == [
            {"title": "doc 127", "maybe": 127},
            {"title": "doc 128", "maybe": 128},
            {"title": "doc 129", "maybe": 129},
        ]
        assert r.vectors(start=5, stop=5).shape == (0, 16)
        with pytest.raises(InvalidArgumentError, match=r"\[990, 1001\)"):
            r.vectors(start=990, stop=1001)

    def test_varchar_primary_key(self, store: Store) -> None:
        s = sample(50)
        s["pk"] = pa.array([f"id-{i:03d}" for i in range(50)])
        write_segment(store, PATH, **s)
        r = SegmentReader(store, PATH)
        assert (r.info.pk_min, r.info.pk_max) == ("id-000", "id-049")
        assert r.pk(3, 5).to_pylist() == ["id-003", "id-004"]

    def test_written_once(self, store: Store) -> None:
        write_segment(store, PATH, **sample(10))
        with pytest.raises(AlreadyExistsError, match="42/v1"):
            write_segment(store, PATH, **sample(10))

    def test_missing_segment(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="segments/9"):
            SegmentReader(store, "collections/7/segments/9/v1")

    def test_corrupt_vector_chunk_is_refused(self, store: Store) -> None:
        write_segment(store, PATH, chunk_rows=128, **sample())
        chunk = [k for k in keys(store, f"{PATH}/vectors/emb/") if "/c/" in k][3]
        data = bytearray(get_bytes(store, chunk))
        data[100] ^= 0x55
        put_bytes(store, chunk, bytes(data))
        r = SegmentReader(store, PATH)
        with pytest.raises(CorruptDataError, match="emb"):
            r.vectors()
        with pytest.raises(CorruptDataError):
            r.verify()

    def test_corrupt_side_file_is_refused(self, store: Store) -> None:
        write_segment(store, PATH, **sample())
        key = f"{PATH}/scalars.parquet"
        data = bytearray(get_bytes(store, key))
        data[len(data) // 2] ^= 0xFF
        put_bytes(store, key, bytes(data))
        r = SegmentReader(store, PATH)
        with pytest.raises(CorruptDataError, match=r"scalars\.parquet"):
            r.column("title")

    def test_inconsistent_attrs_are_refused(self, store: Store) -> None:
        write_segment(store, PATH, **sample(10))
        meta = json.loads(get_bytes(store, f"{PATH}/zarr.json"))
        meta["attributes"]["gpuvec.segment"]["row_count"] = 11
        put_bytes(store, f"{PATH}/zarr.json", json.dumps(meta).encode())
        with pytest.raises(CorruptDataError, match="attrs say 11"):
            SegmentReader(store, PATH)

    def test_uncommitted_segment_is_refused(self, store: Store) -> None:
        write_segment(store, PATH, **sample(10))
        meta = json.loads(get_bytes(store, f"{PATH}/zarr.json"))
        del meta["attributes"]["gpuvec.segment"]
        put_bytes(store, f"{PATH}/zarr.json", json.dumps(meta).encode())
        with pytest.raises(CorruptDataError, match="interrupted write"):
            SegmentReader(store, PATH)

    def test_bad_input_writes_nothing(self, store: Store) -> None:
        s = sample(10)
        with pytest.raises(InvalidArgumentError, match=r"'emb'.*float32"):
            write_segment(store, PATH, **{**s, "vectors": {"emb": np.zeros((10, 4))}})
        with pytest.raises(InvalidArgumentError, match="'emb' has 9 rows"):
            write_segment(store, PATH, **{**s, "vectors": {"emb": np.zeros((9, 4), np.float32)}})
        with pytest.raises(InvalidArgumentError, match="at least one row"):
            write_segment(store, PATH, **sample(0))
        with pytest.raises(NotFoundError):
            SegmentReader(store, PATH)
