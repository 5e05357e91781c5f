"""FLOAT16, BFLOAT16, INT8 and BINARY vector fields below the client (issue 18, item 2):
user values → storage matrices (:mod:`gpuvec.vector_input`) with messages naming the row
and field; rows, columns (2-D arrays, DataFrames, memory-mapped ``.npy``) and Parquet
files giving the same Arrow table; sealed segments keeping each storage dtype (bfloat16
too); query vectors; output values in pymilvus's shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gpuvec.pipelines.sources import plan_import, read_chunk
from zarr.storage import LocalStore

from gpuvec import vectors
from gpuvec.columns import columns_to_table
from gpuvec.errors import DataError, InvalidArgumentError
from gpuvec.proxy.params import query_vectors
from gpuvec.rows import rows_to_table, table_to_rows
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.storage.objects.segment import SegmentReader, segment_columns, write_segment

N, DIM, BITS = 50, 8, 32


def schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("h", DataType.FLOAT16_VECTOR, dim=DIM)
    s.add_field("bf", DataType.BFLOAT16_VECTOR, dim=DIM)
    s.add_field("i8", DataType.INT8_VECTOR, dim=DIM)
    s.add_field("b", DataType.BINARY_VECTOR, dim=BITS)
    s.validate("c")
    return s


S = schema()


def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "id": np.arange(N, dtype=np.int64),
        "h": rng.standard_normal((N, DIM)).astype(np.float16),
        "bf": rng.standard_normal((N, DIM)).astype(ml_dtypes.bfloat16),
        "i8": rng.integers(-128, 128, (N, DIM)).astype(np.int8),
        "b": rng.integers(0, 256, (N, BITS // 8)).astype(np.uint8),
    }


def rows_of(cols: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [{k: (int(v[i]) if k == "id" else v[i]) for k, v in cols.items()} for i in range(N)]


def test_rows_and_columns_give_the_same_table() -> None:
    cols = data()
    expected = rows_to_table(S, rows_of(cols))
    for name, t in (("h", pa.float16()), ("bf", pa.uint16()), ("i8", pa.int8()), ("b", pa.uint8())):
        assert expected.schema.field(name).type.value_type == t
    got = columns_to_table(S, cols)
    assert got.equals(expected)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": cols["id"], **{k: list(cols[k]) for k in ("h", "bf", "i8")},
                          "b": [r.tobytes() for r in cols["b"]]})  # fmt: skip
    assert columns_to_table(S, frame).equals(expected)
    # raw bytes per row, and float input converted to the field's type
    raw = [{**r, "h": r["h"].tobytes(), "i8": r["i8"].tolist(), "bf": r["bf"].astype(np.float32)}
           for r in rows_of(cols)]  # fmt: skip
    assert rows_to_table(S, raw).equals(expected)
    # the storage matrices come back unchanged
    for f in S.vector_fields:
        got_m = vectors.matrix(f.dtype, expected.column(f.name), f.dim)
        assert got_m.dtype == vectors.kind(f.dtype).storage
        assert np.array_equal(got_m.view(np.uint8), cols[f.name].view(np.uint8))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("h", np.array([1e6] * DIM), "NaN or infinity"),  # past float16's range
        ("h", [1.0] * (DIM - 1), "takes 8 values, got 7"),
        ("h", b"\x00" * 3, "takes 16 bytes, got 3"),
        ("bf", [float("nan")] * DIM, "NaN or infinity"),
        ("i8", [300] * DIM, "300 is out of range"),
        ("i8", [0.5] * DIM, "integers in \\[-128, 127\\]"),
        ("b", b"\x00", "takes 4 bytes, got 1"),
        ("b", [256, 0, 0, 0], "256 is out of range \\[0, 255\\]"),
        ("b", "abcd", "got str"),
    ],
)
def test_bad_vectors_name_the_row_and_field(field: str, value: Any, needle: str) -> None:
    rows = rows_of(data())[:3]
    rows[2] = {**rows[2], field: value}
    with pytest.raises(DataError, match=needle) as info:
        rows_to_table(S, rows)
    assert "row 2" in info.value.message and repr(field) in info.value.message


def test_npy_and_parquet_imports(tmp_path: Path) -> None:
    cols = data()
    expected = rows_to_table(S, rows_of(cols))
    npy = {k: v for k, v in cols.items() if k != "bf"}  # NumPy files have no bfloat16
    sub = CollectionSchema()
    for f in S.fields:
        if f.name != "bf":
            sub.add_field(f.name, f.dtype, is_primary=f.is_primary, dim=f.dim)
    (tmp_path / "g").mkdir()
    for k, v in npy.items():
        np.save(tmp_path / "g" / f"{k}.npy", v)
    chunks = plan_import(sub, [str(tmp_path / "g")], chunk_rows=20)
    parts = [columns_to_table(sub, read_chunk(c, sub), row_offset=c.start) for c in chunks]
    got = pa.concat_tables(parts).combine_chunks()
    assert got.equals(expected.drop_columns(["bf"]).combine_chunks())
    table = pa.table({
        "id": cols["id"],
        "h": vectors.column(DataType.FLOAT16_VECTOR, cols["h"]),
        "bf": vectors.column(DataType.BFLOAT16_VECTOR, cols["bf"]),
        "i8": vectors.column(DataType.INT8_VECTOR, cols["i8"]),
        "b": pa.array([r.tobytes() for r in cols["b"]], pa.binary()),  # bytes per row
    })  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    chunks = plan_import(S, [str(tmp_path / "t.parquet")], chunk_rows=1000)
    got = columns_to_table(S, read_chunk(chunks[0], S))
    assert got.equals(expected)
    bad = table.set_column(4, "b", pa.array([b"\x00"] * N, pa.binary()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    chunks = plan_import(S, [str(tmp_path / "bad.parquet")], chunk_rows=1000)
    with pytest.raises(DataError, match=r"row 0, field 'b'.*takes 4 bytes"):
        columns_to_table(S, read_chunk(chunks[0], S))


def test_sealed_segment_keeps_each_storage_dtype(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    table = rows_to_table(S, rows_of(data()))
    pks, vecs, _ = segment_columns(S, table)
    info = write_segment(store, "seg", pk=pks, ts=np.ones(N, np.uint64), vectors=vecs)
    assert info.vector_dtypes() == {"h": "float16", "bf": "bfloat16", "i8": "int8",
                                    "b": "uint8"}  # fmt: skip
    assert info.vector_fields()["b"] == BITS // 8  # stored width: bytes
    reader = SegmentReader(store, "seg")
    reader.verify()
    for name, mat in vecs.items():
        back = reader.vectors(name)
        assert back.dtype == mat.dtype and np.array_equal(back.view(np.uint8), mat.view(np.uint8))


def test_query_vectors_per_type() -> None:
    cols = data()
    h = query_vectors([cols["h"][0], cols["h"][1]], S.field("h"))
    assert h.dtype == np.float32 and np.array_equal(h, cols["h"][:2].astype(np.float32))
    assert query_vectors(cols["h"][0].tobytes(), S.field("h")).shape == (1, DIM)
    assert query_vectors([0.5] * DIM, S.field("bf")).shape == (1, DIM)  # one flat vector
    b = query_vectors([cols["b"][3].tobytes()], S.field("b"))
    assert b.dtype == np.uint8 and np.array_equal(b[0], cols["b"][3])
    assert query_vectors(cols["b"][:5], S.field("b")).shape == (5, BITS // 8)
    with pytest.raises(InvalidArgumentError, match=r"takes 4 bytes.*field 'b'"):
        query_vectors([b"\x00" * 5], S.field("b"))


def test_output_shapes_as_pymilvus_decodes_them() -> None:
    cols = data()
    table = rows_to_table(S, rows_of(cols))
    query = table_to_rows(table.slice(0, 2), S, ["h", "b"])
    assert query[0]["h"] == [cols["h"][0].tobytes()] and query[1]["b"] == [cols["b"][1].tobytes()]
    hits = table_to_rows(table.slice(0, 1), S, ["i8"], include_pk=False, wrap_bytes=False)
    assert hits == [{"i8": cols["i8"][0].tobytes()}]


def test_float16_segment_keeps_no_float32_copy_once_indexed(tmp_path: Path) -> None:
    """A sealed FLOAT16 segment converts to float32 for exact scans (kept while it has no
    index), and forgets that copy when an index with its own vectors attaches: the index
    gets the stored float16 rows for its gathers (exact fallback, refine)."""
    from gpuvec.index.registry import build_index, dump
    from gpuvec.query.node import QueryNode
    from gpuvec.query.segdata import SegmentData
    from gpuvec.storage.objects.stores import put_bytes

    rng = np.random.default_rng(4)
    mat = rng.standard_normal((3000, DIM)).astype(np.float16)
    seg = SegmentData(1, 0, {"v": DIM}, True, capacity=3000, vector_dtypes={"v": mat.dtype})
    seg.append(np.arange(3000), np.ones(3000, np.uint64), {"v": mat},
               pa.table({"id": np.arange(3000)}), take=True)  # fmt: skip
    seg.sealed = True
    q = mat[:5].astype(np.float32)
    exact = seg.search("v", q, 5, "L2", read_ts=2)
    assert exact.rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    copy = seg.nbytes()
    assert copy >= 3000 * DIM * (2 + 4)  # float16 rows + their float32 copy
    store = LocalStore(str(tmp_path))
    put_bytes(store, "ix", dump(build_index(mat.astype(np.float32), "L2", "HNSW")))
    QueryNode(store).attach_to(seg, "v", {"path": "ix", "index_id": "i1"})
    assert seg.nbytes() <= copy - 3000 * DIM * 4  # the float32 copy is gone
    got = seg.search("v", q, 5, "L2", read_ts=2)
    assert got.rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    keep = np.zeros(3000, bool)
    keep[[7, 11, 13]] = True  # a selective filter: the exact fallback gathers float16 rows
    few = seg.search("v", q[:1], 3, "L2", read_ts=2, extra_mask=keep)
    assert sorted(few.rows[0].tolist()) == [7, 11, 13]


@pytest.mark.parametrize("file_type", ["PARQUET", "JSON", "NUMPY"])
def test_local_bulk_writer_typed_vectors(tmp_path: Path, file_type: str) -> None:
    """pymilvus's LocalBulkWriter output with FLOAT16 / BFLOAT16 (raw bytes as uint8 in
    .npy and Parquet), INT8 and BINARY vectors reads back to the same table as the rows."""
    from pymilvus import DataType as PmType
    from pymilvus import MilvusClient as PmClient
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    theirs = PmClient.create_schema(auto_id=False)
    theirs.add_field("id", PmType.INT64, is_primary=True)
    theirs.add_field("h", PmType.FLOAT16_VECTOR, dim=DIM)
    theirs.add_field("bf", PmType.BFLOAT16_VECTOR, dim=DIM)
    theirs.add_field("i8", PmType.INT8_VECTOR, dim=DIM)
    theirs.add_field("b", PmType.BINARY_VECTOR, dim=BITS)
    theirs.verify()
    cols = data()
    rows = rows_of(cols)
    writer = LocalBulkWriter(schema=theirs, local_path=str(tmp_path / "out"),
                             file_type=getattr(BulkFileType, file_type))  # fmt: skip
    for r in rows:
        writer.append_row({**r, "b": r["b"].tobytes()})
    writer.commit()
    chunks = plan_import(S, writer.batch_files, chunk_rows=1000)
    got = pa.concat_tables([columns_to_table(S, read_chunk(c, S), row_offset=c.start)
                            for c in chunks]).combine_chunks()  # fmt: skip
    assert got.equals(rows_to_table(S, rows).combine_chunks())


@pytest.mark.parametrize("file_type", ["PARQUET", "JSON"])
def test_local_bulk_writer_sparse_vectors(tmp_path: Path, file_type: str) -> None:
    """pymilvus's LocalBulkWriter output with a SPARSE_FLOAT_VECTOR field (JSON text in
    Parquet, objects in JSON) reads back to the same cells as the rows; pymilvus itself
    refuses to write sparse rows to .npy."""
    from pymilvus import DataType as PmType
    from pymilvus import MilvusClient as PmClient
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    theirs = PmClient.create_schema(auto_id=False)
    theirs.add_field("id", PmType.INT64, is_primary=True)
    theirs.add_field("sv", PmType.SPARSE_FLOAT_VECTOR)
    ours = CollectionSchema()
    ours.add_field("id", DataType.INT64, is_primary=True)
    ours.add_field("sv", DataType.SPARSE_FLOAT_VECTOR)
    rng = np.random.default_rng(3)
    rows = [{"id": i, "sv": {int(d): float(np.float32(rng.random())) for d in
                             rng.choice(5000, int(rng.integers(1, 6)), replace=False)}}
            for i in range(40)]  # fmt: skip
    writer = LocalBulkWriter(schema=theirs, local_path=str(tmp_path / "out"),
                             file_type=getattr(BulkFileType, file_type))  # fmt: skip
    for r in rows:
        writer.append_row(r)
    writer.commit()
    chunks = plan_import(ours, writer.batch_files, chunk_rows=16)
    got = pa.concat_tables([columns_to_table(ours, read_chunk(c, ours), row_offset=c.start)
                            for c in chunks]).combine_chunks()  # fmt: skip
    assert got.equals(rows_to_table(ours, rows).combine_chunks())


def test_schema_inferred_from_typed_vector_files(tmp_path: Path) -> None:
    """``gpuvec import --create`` / ``gpuvec build-index --source``: a vector column's type
    follows its element type (float16, int8, uint8 = packed bits, else float)."""
    from gpuvec.pipelines.infer import infer_schema, vector_fields

    cols = data()
    (tmp_path / "g").mkdir()
    for k in ("id", "h", "i8", "b"):
        np.save(tmp_path / "g" / f"{k}.npy", cols[k])
    np.save(tmp_path / "g" / "f.npy", cols["h"].astype(np.float32))
    s = infer_schema(str(tmp_path / "g"))
    got = {f.name: (f.dtype, f.dim) for f in s.fields if f.is_vector}
    assert got == {"h": (DataType.FLOAT16_VECTOR, DIM), "i8": (DataType.INT8_VECTOR, DIM),
                   "b": (DataType.BINARY_VECTOR, BITS), "f": (DataType.FLOAT_VECTOR, DIM)}
    assert sorted(vector_fields(s)) == ["b", "f", "h", "i8"]
    table = pa.table({"id": cols["id"],
                      "h": vectors.column(DataType.FLOAT16_VECTOR, cols["h"]),
                      "b": vectors.column(DataType.BINARY_VECTOR, cols["b"])})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    got = {f.name: (f.dtype, f.dim) for f in infer_schema(str(tmp_path / "t.parquet")).fields
           if f.is_vector}  # fmt: skip
    assert got == {"h": (DataType.FLOAT16_VECTOR, DIM), "b": (DataType.BINARY_VECTOR, BITS)}
