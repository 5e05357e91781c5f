"""The direct chunk I/O of :mod:`gpuvec.storage.objects.fastchunks` against zarr-python
itself: the files are byte-for-byte zarr's, zarr reads ours and we read zarr's (any row
range), a chunk zarr left out reads as 0, a damaged chunk is refused naming its file, and
other stores or layouts are left to zarr."""

from __future__ import annotations

from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec

from gpuvec.errors import CorruptDataError
from gpuvec.storage.objects.fastchunks import read_rows, write_chunks

CASES = [
    (np.random.default_rng(0).standard_normal((1000, 12)).astype(np.float32), 128),
    (np.arange(777, dtype=np.int64) * 7 - 3, 100),
    (np.arange(64, dtype=np.uint64) << np.uint64(40), 64),
]


def _zarr_write(root: Path, name: str, data: np.ndarray, rows: int, with_data: bool) -> zarr.Array:
    return zarr.create_array(
        zarr.storage.LocalStore(root), name=name, data=data if with_data else None,
        shape=None if with_data else data.shape, dtype=None if with_data else data.dtype,
        chunks=(rows, *data.shape[1:]), compressors=[Crc32cCodec()], filters=None, fill_value=0,
    )  # fmt: skip


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("c/**/*"))
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(("data", "rows"), CASES, ids=["f32x12", "i64", "u64-one-chunk"])
def test_same_bytes_as_zarr_and_readable_both_ways(tmp_path: Path, data: np.ndarray,
                                                   rows: int) -> None:  # fmt: skip
    theirs, ours = tmp_path / "zarr", tmp_path / "ours"
    _zarr_write(theirs, "a", data, rows, with_data=True)
    arr = _zarr_write(ours, "a", data, rows, with_data=False)
    whole = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<"))).view()
    whole.flags.writeable = False
    crc = write_chunks(zarr.storage.LocalStore(ours), "a", data, rows)
    assert crc == google_crc32c.value(whole)  # the checksum of the whole array, not a chunk
    assert _files(ours / "a") == _files(theirs / "a")
    np.testing.assert_array_equal(arr[:], data)  # zarr reads ours
    zarr_arr = zarr.open_array(zarr.storage.LocalStore(theirs), path="a", mode="r")
    n = len(data)
    for a, b in [
        (0, n),
        (0, 1),
        (rows - 1, rows + 1),
        (n - 3, n),
        (5, 5),
        (rows, min(n, 3 * rows)),
    ]:
        got = read_rows(zarr.storage.LocalStore(theirs), "a", zarr_arr, a, b)
        assert got is not None and got.dtype == data.dtype
        np.testing.assert_array_equal(got, data[a:b])


def test_missing_chunk_is_fill_and_damage_is_refused(tmp_path: Path) -> None:
    data = np.ones((300, 4), np.float32)
    data[100:200] = 0  # zarr leaves out the all-zero middle chunk
    arr = _zarr_write(tmp_path, "v", data, 100, with_data=True)
    store = zarr.storage.LocalStore(tmp_path)
    assert not (tmp_path / "v" / "c" / "1" / "0").exists()
    np.testing.assert_array_equal(read_rows(store, "v", arr, 0, 300), data)
    chunk = tmp_path / "v" / "c" / "2" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[17] ^= 0x40
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptDataError, match=r"v/c/2/0"):
        read_rows(store, "v", arr, 250, 260)
    np.testing.assert_array_equal(read_rows(store, "v", arr, 0, 150), data[:150])  # others fine
    chunk.write_bytes(bytes(raw[:-9]))  # truncated
    with pytest.raises(CorruptDataError, match="CRC32C"):
        read_rows(store, "v", arr, 200, 300)


def test_other_stores_and_layouts_are_left_to_zarr(tmp_path: Path) -> None:
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    memory = zarr.storage.MemoryStore()
    assert write_chunks(memory, "a", data, 4) is None
    arr = zarr.create_array(memory, name="a", data=data, chunks=(4, 4))  # zstd by default
    assert read_rows(memory, "a", arr, 0, 10) is None
    local = zarr.storage.LocalStore(tmp_path)
    compressed = zarr.create_array(local, name="z", data=data, chunks=(4, 4))
    assert read_rows(local, "z", compressed, 0, 10) is None
    split = zarr.create_array(local, name="s", data=data, chunks=(4, 2),
                              compressors=[Crc32cCodec()], filters=None, fill_value=0)  # fmt: skip
    assert read_rows(local, "s", split, 0, 10) is None  # chunked across columns
