"""Bulk-import sources (gpuvec.pipelines.sources): every format round-trips through
plan_import + read_chunk + columns_to_table to the table rows_to_table gives for the same
rows; pymilvus LocalBulkWriter output is read; S3 through moto; every pre-check names the
file and the problem; a large NPY group is read chunk by chunk through memory maps."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gpuvec.pipelines.sources import Chunk, plan_import, read_chunk, source_bytes

from gpuvec.columns import columns_to_table
from gpuvec.errors import DataError, InvalidArgumentError
from gpuvec.rows import rows_to_table
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, DataType
from gpuvec.testing.s3 import make_bucket

DIM = 4


def make_schema(*, dynamic: bool = True, auto_id: bool = False) -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=dynamic, auto_id=auto_id)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("name", DataType.VARCHAR, max_length=16)
    s.add_field("score", DataType.FLOAT, nullable=True)
    s.add_field("count", DataType.INT32, default_value=7)
    s.add_field("flag", DataType.BOOL)
    s.add_field("j", DataType.JSON, nullable=True)
    s.validate("c")
    return s


S = make_schema()
PLAIN = make_schema(dynamic=False)


def columns(n: int, start: int = 0) -> dict[str, Any]:
    """Column data as files hold it: JSON and $meta as JSON text."""
    rng = np.random.default_rng(start)
    ids = np.arange(start, start + n, dtype=np.int64)
    return {
        "id": ids,
        "vec": rng.standard_normal((n, DIM)).astype(np.float32),
        "name": np.array([f"n{i}" for i in ids]),
        "score": (ids * 0.5).astype(np.float32),
        "flag": ids % 2 == 0,
        "j": np.array([json.dumps({"k": int(i), "l": [1, "x"]}) for i in ids]),
        DYNAMIC_FIELD_NAME: np.array([json.dumps({"color": "red", "size": int(i)}) for i in ids]),
    }


def rows_of(cols: dict[str, Any]) -> list[dict[str, Any]]:
    """The same data as pymilvus rows (dynamic keys inline)."""
    out = []
    for i in range(len(cols["id"])):
        row = {k: v[i].tolist() for k, v in cols.items() if k != DYNAMIC_FIELD_NAME}
        row.update(json.loads(str(cols[DYNAMIC_FIELD_NAME][i])))
        out.append(row)
    return out


def imported(schema: CollectionSchema, chunks: list[Chunk], **kw: Any) -> pa.Table:
    parts = [
        columns_to_table(schema, read_chunk(c, schema, **kw), row_offset=c.start, source=c.source)
        for c in chunks
    ]
    return pa.concat_tables(parts).combine_chunks()


def assert_same(got: pa.Table, expected: pa.Table, json_cols: tuple[str, ...] = ()) -> None:
    assert got.schema == expected.schema
    for name in expected.column_names:
        a, b = got.column(name), expected.column(name)
        if name in json_cols:  # the same JSON, whatever the spacing
            assert [None if x is None else json.loads(x) for x in a.to_pylist()] == [
                None if x is None else json.loads(x) for x in b.to_pylist()
            ], name
        else:
            assert a.equals(b), name


def write_parquet(path: Path, cols: dict[str, Any], row_group_size: int = 1000,
                  fixed: bool = False) -> None:  # fmt: skip
    vec_type = pa.list_(pa.float32(), DIM) if fixed else pa.list_(pa.float32())
    table = pa.table({k: pa.array(list(v), vec_type) if k == "vec" else v for k, v in cols.items()})
    pq.write_table(table, path, row_group_size=row_group_size)


def write_npy(directory: Path, cols: dict[str, Any]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for k, v in cols.items():
        np.save(directory / f"{k}.npy", v)
    return [str(directory / f"{k}.npy") for k in cols]


def json_rows(cols: dict[str, Any]) -> list[dict[str, Any]]:
    rows = rows_of(cols)
    for r in rows:
        r["j"] = json.loads(r["j"])
    return rows


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("fixed", [False, True])
def test_parquet_round_trip_by_row_groups(tmp_path: Path, fixed: bool) -> None:
    cols = columns(2500)
    write_parquet(tmp_path / "data.parquet", cols, row_group_size=500, fixed=fixed)
    chunks = plan_import(S, [str(tmp_path / "data.parquet")], chunk_rows=1000)
    assert [(c.start, c.stop) for c in chunks] == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert {c.kind for c in chunks} == {"parquet"} and chunks[0].files == (chunks[0].source,)
    part = read_chunk(chunks[1], S)
    assert isinstance(part, pa.Table) and part.num_rows == 1000
    assert part.column("id")[0].as_py() == 1000
    assert_same(imported(S, chunks), rows_to_table(S, rows_of(cols)))
    assert source_bytes(chunks) == pytest.approx(os.path.getsize(tmp_path / "data.parquet"), 0.01)


def test_parquet_directory_is_one_source_per_file(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    a, b = columns(300), columns(200, start=300)
    write_parquet(d / "10.parquet", b)  # natural order: 2 before 10
    write_parquet(d / "2.parquet", a)
    (d / "_SUCCESS").write_text("")
    chunks = plan_import(S, [str(d)], chunk_rows=10_000)
    assert [(Path(c.source).name, c.part, c.start, c.stop) for c in chunks] == [
        ("2.parquet", 0, 0, 300), ("10.parquet", 1, 0, 200)
    ]  # fmt: skip
    assert chunks[0].source == str(d / "2.parquet")
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    assert_same(imported(S, chunks), rows_to_table(S, rows_of(both)))


def test_npy_group_round_trip(tmp_path: Path) -> None:
    cols = columns(2500)
    files = write_npy(tmp_path / "batch", cols)
    for spec in ([str(tmp_path / "batch")], [files]):
        chunks = plan_import(S, spec, chunk_rows=1000)
        assert [(c.kind, c.start, c.stop) for c in chunks] == [
            ("npy", 0, 1000), ("npy", 1000, 2000), ("npy", 2000, 2500)
        ]  # fmt: skip
        assert chunks[0].source == str(tmp_path / "batch") and len(chunks[0].files) == len(cols)
        data = read_chunk(chunks[2], S)
        assert isinstance(data["vec"], np.memmap) and data["vec"].shape == (500, DIM)
        assert_same(imported(S, chunks), rows_to_table(S, rows_of(cols)))


def test_json_document_round_trip(tmp_path: Path) -> None:
    cols = columns(300)
    rows = json_rows(cols)
    (tmp_path / "doc.json").write_text(json.dumps({"rows": rows}, indent=2))
    (tmp_path / "list.json").write_text(json.dumps(rows))
    expected = rows_to_table(S, rows)
    for name in ("doc.json", "list.json"):
        chunks = plan_import(S, [str(tmp_path / name)], chunk_rows=100)
        assert [(c.kind, c.start, c.stop) for c in chunks] == [("json", 0, 300)]
        assert_same(imported(S, chunks), expected)


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json"])
def test_json_lines_round_trip_by_lines(tmp_path: Path, name: str) -> None:
    cols = columns(250)
    rows = json_rows(cols)
    for r in rows[::2]:  # pymilvus style: dynamic keys under $meta
        r[DYNAMIC_FIELD_NAME] = {"color": r.pop("color"), "size": r.pop("size")}
    text = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    (tmp_path / name).write_text(text)
    chunks = plan_import(S, [str(tmp_path / name)], chunk_rows=100)
    assert [(c.kind, c.start, c.stop) for c in chunks] == [
        ("jsonl", 0, 100), ("jsonl", 100, 200), ("jsonl", 200, 250)
    ]  # fmt: skip
    assert read_chunk(chunks[1], S)["id"][:2] == [100, 101]
    assert_same(imported(S, chunks), rows_to_table(S, json_rows(cols)))


def test_defaults_and_nullable_fields_may_be_absent(tmp_path: Path) -> None:
    cols = columns(10)
    del cols["score"], cols["j"]
    write_parquet(tmp_path / "p.parquet", cols)
    t = imported(S, plan_import(S, [str(tmp_path / "p.parquet")]))
    assert t.column("count").to_pylist() == [7] * 10 and t.column("score").null_count == 10


def test_auto_id_files_without_the_key(tmp_path: Path) -> None:
    schema = make_schema(auto_id=True)
    cols = columns(20)
    del cols["id"]
    write_npy(tmp_path / "g", cols)
    chunks = plan_import(schema, [str(tmp_path / "g")])
    data = read_chunk(chunks[0], schema)
    t = columns_to_table(schema, data, auto_ids=np.arange(500, 520), source=chunks[0].source)
    assert t.column("id").to_pylist() == list(range(500, 520))


def test_bad_value_names_file_and_row(tmp_path: Path) -> None:
    cols = columns(3000)
    cols["name"] = cols["name"].astype("<U32")
    cols["name"][2345] = "x" * 20
    write_parquet(tmp_path / "data.parquet", cols, row_group_size=1000)
    chunks = plan_import(S, [str(tmp_path / "data.parquet")], chunk_rows=1000)
    with pytest.raises(DataError, match=r"data\.parquet row 2345, field 'name'.*max_length 16"):
        imported(S, chunks)


# -- pymilvus LocalBulkWriter output ---------------------------------------------------------
@pytest.mark.parametrize("file_type", ["PARQUET", "JSON", "JSONL", "NUMPY"])
def test_local_bulk_writer_files(tmp_path: Path, file_type: str) -> None:
    try:
        from pymilvus import CollectionSchema as PmSchema
        from pymilvus import DataType as PmType
        from pymilvus import FieldSchema as PmField
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter
    except ImportError as e:
        pytest.skip(f"pymilvus bulk_writer unavailable ({e}): pip install 'pymilvus[bulk_writer]'")
    if not hasattr(BulkFileType, file_type):
        pytest.skip(f"this pymilvus has no BulkFileType.{file_type}")
    theirs = PmSchema([
        PmField("id", PmType.INT64, is_primary=True),
        PmField("vec", PmType.FLOAT_VECTOR, dim=DIM),
        PmField("name", PmType.VARCHAR, max_length=16),
        PmField("score", PmType.FLOAT),
        PmField("flag", PmType.BOOL),
        PmField("j", PmType.JSON),
    ], enable_dynamic_field=True)  # fmt: skip
    ours = CollectionSchema(enable_dynamic_field=True)
    ours.add_field("id", DataType.INT64, is_primary=True)
    ours.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    ours.add_field("name", DataType.VARCHAR, max_length=16)
    ours.add_field("score", DataType.FLOAT)
    ours.add_field("flag", DataType.BOOL)
    ours.add_field("j", DataType.JSON)
    rows = [
        {"id": i, "vec": [float(i), 0.5, -1.0, 2.0], "name": f"n{i}", "score": i / 4,
         "flag": i % 3 == 0, "j": {"k": i}, "color": "red", "size": i}
        for i in range(120)
    ]  # fmt: skip
    kind = getattr(BulkFileType, file_type)
    with LocalBulkWriter(theirs, local_path=str(tmp_path / "out"), file_type=kind,
                         chunk_size=4096) as writer:  # fmt: skip
        for r in rows:
            writer.append_row(r)
        writer.commit()
        batches, data_path = writer.batch_files, str(writer.data_path)
        assert len(batches) > 1  # several batches: several sources
        expected = rows_to_table(ours, rows)
        for spec in (batches, [data_path]):
            chunks = plan_import(ours, spec, chunk_rows=25)
            assert_same(imported(ours, chunks), expected, json_cols=("j",))


# -- S3 (moto) -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint(moto_s3: str) -> str:
    make_bucket(moto_s3, "imports")
    return moto_s3


@pytest.mark.s3
def test_s3_sources(tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    cols = columns(1200)
    local = tmp_path / "up"
    local.mkdir()
    write_parquet(local / "p.parquet", cols, 400)
    write_npy(local / "group", cols)
    fortran = local / "fgroup"
    write_npy(fortran, cols)
    np.save(fortran / "vec.npy", np.asfortranarray(cols["vec"]))
    (local / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in json_rows(cols)))
    fs = s3fs.S3FileSystem(anon=False, skip_instance_cache=True, **opts)
    fs.put(str(local) + "/", "imports/up/", recursive=True)
    expected = rows_to_table(S, rows_of(cols))
    for name in ("p.parquet", "group", "fgroup", "rows.jsonl"):
        chunks = plan_import(S, [f"s3://imports/up/{name}"], chunk_rows=500, storage_options=opts)
        assert len(chunks) == 3 and chunks[0].source == f"s3://imports/up/{name}"
        assert_same(imported(S, chunks, storage_options=opts), expected, json_cols=("j",))
    chunk = plan_import(S, ["s3://imports/up/group"], chunk_rows=500, storage_options=opts)[1]
    data = read_chunk(chunk, S, storage_options=opts)  # only the chunk's byte range
    assert data["vec"].shape == (500, DIM) and data["id"][0] == 500
    with pytest.raises(InvalidArgumentError, match=r"s3://imports/nothing.*no such file"):
        plan_import(S, ["s3://imports/nothing"], storage_options=opts)


# -- pre-checks: each names the file and the problem -----------------------------------------
def _refused(tmp_path: Path, files: Any, *needles: str, schema: CollectionSchema = S,
             error: type[Exception] = DataError) -> None:  # fmt: skip
    with pytest.raises(error) as info:
        plan_import(schema, files)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_request_errors(tmp_path: Path) -> None:
    bad = InvalidArgumentError
    _refused(tmp_path, [str(tmp_path / "nope.parquet")], "nope.parquet", "no such file", error=bad)
    (tmp_path / "data.csv").write_text("id\n1\n")
    _refused(tmp_path, [str(tmp_path / "data.csv")], "data.csv", "unknown import format",
             error=bad)  # fmt: skip
    (tmp_path / "empty").mkdir()
    _refused(tmp_path, [str(tmp_path / "empty")], "empty", "no .parquet", error=bad)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_parquet(mixed / "a.parquet", columns(3))
    (mixed / "b.json").write_text('{"rows": []}')
    _refused(tmp_path, [str(mixed)], "mixed", "mixes import formats", error=bad)
    p = str(mixed / "a.parquet")
    _refused(tmp_path, [[p, str(mixed / "b.json")]], "a.parquet", ".npy files of one group",
             error=bad)  # fmt: skip
    _refused(tmp_path, [p, p], "a.parquet", "named twice", error=bad)
    _refused(tmp_path, [], "non-empty", error=bad)
    with pytest.raises(InvalidArgumentError, match="chunk_rows"):
        plan_import(S, [p], chunk_rows=0)


def test_parquet_column_errors(tmp_path: Path) -> None:
    cols = columns(5)
    write_parquet(tmp_path / "dyn.parquet", cols)
    _refused(tmp_path, [str(tmp_path / "dyn.parquet")], "dyn.parquet", "'$meta'",
             "dynamic field is not enabled", schema=PLAIN)  # fmt: skip
    extra = {**{k: v for k, v in cols.items() if k != DYNAMIC_FIELD_NAME}, "color": cols["name"]}
    write_parquet(tmp_path / "extra.parquet", extra)
    _refused(tmp_path, [str(tmp_path / "extra.parquet")], "extra.parquet", "'color'",
             "dynamic field is not enabled", schema=PLAIN)  # fmt: skip
    write_parquet(tmp_path / "noname.parquet", {k: v for k, v in cols.items() if k != "name"})
    _refused(tmp_path, [str(tmp_path / "noname.parquet")], "noname.parquet",
             "missing field 'name'")  # fmt: skip
    _refused(tmp_path, [str(tmp_path / "dyn.parquet")], "dyn.parquet", "'id'",
             "auto_id primary key", schema=make_schema(auto_id=True))  # fmt: skip
    for fixed in (False, True):
        write_parquet(tmp_path / "dim.parquet", {**cols, "vec": cols["vec"][:, :3]}, fixed=False)
        if fixed:
            t = pq.read_table(tmp_path / "dim.parquet")
            vec = pa.array(list(cols["vec"][:, :3]), pa.list_(pa.float32(), 3))
            pq.write_table(t.set_column(1, "vec", vec), tmp_path / "dim.parquet")
        _refused(tmp_path, [str(tmp_path / "dim.parquet")], "dim.parquet", "column 'vec'",
                 "dim 3", "dim is 4")  # fmt: skip
    write_parquet(tmp_path / "type.parquet", {**cols, "count": cols["score"]})
    _refused(tmp_path, [str(tmp_path / "type.parquet")], "type.parquet", "column 'count'",
             "integers (INT32)", "float")  # fmt: skip
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    _refused(tmp_path, [str(tmp_path / "broken.parquet")], "broken.parquet", "not a readable")


def test_npy_group_errors(tmp_path: Path) -> None:
    cols = columns(5)

    def group(name: str, **change: Any) -> str:
        d = tmp_path / name
        write_npy(d, {k: v for k, v in {**cols, **change}.items() if v is not None})
        return str(d)

    _refused(tmp_path, [group("rows", score=np.zeros(4, np.float32))], "rows", ".npy has 5 rows",
             "but score.npy has 4")  # fmt: skip
    _refused(tmp_path, [group("kind", count=np.zeros(5))], "count.npy", "column 'count'",
             "integers", "float64")  # fmt: skip
    _refused(tmp_path, [group("obj", score=np.array([1.0, None] * 2 + [1.0], dtype=object))],
             "score.npy", "Python objects")  # fmt: skip
    _refused(tmp_path, [group("dim", vec=np.zeros((5, 3), np.float32))], "vec.npy", "dim 3",
             "dim is 4")  # fmt: skip
    _refused(tmp_path, [group("flat", vec=np.zeros(5, np.float32))], "vec.npy", "2-D")
    _refused(tmp_path, [group("noflag", flag=None)], "noflag", "missing field 'flag'")
    no_meta = {DYNAMIC_FIELD_NAME: None}
    _refused(tmp_path, [group("extra", color=cols["name"], **no_meta)], "extra", "'color'",
             "dynamic field is not enabled", schema=PLAIN)  # fmt: skip
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "id.npy").write_bytes(b"not numpy")
    _refused(tmp_path, [str(tmp_path / "junk")], "id.npy", "not a readable NumPy")


def test_json_errors(tmp_path: Path) -> None:
    rows = json_rows(columns(3))
    for r in rows:
        del r["color"], r["size"]
    rows[2]["shade"] = "blue"
    (tmp_path / "extra.json").write_text(json.dumps({"rows": rows}))
    _refused(tmp_path, [str(tmp_path / "extra.json")], "extra.json row 2", "'shade'",
             "dynamic field is not enabled", schema=PLAIN)  # fmt: skip
    del rows[1]["name"]
    (tmp_path / "missing.json").write_text(json.dumps({"rows": rows}))
    _refused(tmp_path, [str(tmp_path / "missing.json")], "missing.json row 1",
             "missing field 'name'")  # fmt: skip
    (tmp_path / "shape.json").write_text(json.dumps({"data": rows}))
    _refused(tmp_path, [str(tmp_path / "shape.json")], "shape.json", '"rows"')
    (tmp_path / "nan.json").write_text('{"rows": [{"id": NaN}]}')
    _refused(tmp_path, [str(tmp_path / "nan.json")], "nan.json", "NaN")
    (tmp_path / "lines.jsonl").write_text('{"id": 1}\n')
    _refused(tmp_path, [str(tmp_path / "lines.jsonl")], "lines.jsonl row 0", "missing field")


# -- a large NPY group, chunk by chunk ------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_million_row_npy_group_reads_only_its_slice(tmp_path: Path) -> None:
    n, dim = 1_000_000, 32
    schema = CollectionSchema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    d = tmp_path / "big"
    d.mkdir()
    ids = np.lib.format.open_memmap(d / "id.npy", mode="w+", dtype=np.int64, shape=(n,))
    vec = np.lib.format.open_memmap(d / "vec.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for a in range(0, n, 100_000):
        ids[a : a + 100_000] = np.arange(a, a + 100_000)
        vec[a : a + 100_000] = np.arange(a, a + 100_000, dtype=np.float32)[:, None]
    ids.flush()
    vec.flush()
    del ids, vec
    size = os.path.getsize(d / "vec.npy") + os.path.getsize(d / "id.npy")
    chunks = plan_import(schema, [str(d)], chunk_rows=100_000)
    assert [(c.start, c.stop) for c in chunks] == [(a, a + 100_000) for a in range(0, n, 100_000)]
    assert source_bytes(chunks) == n * (dim * 4 + 8)
    before = _rss()
    data = read_chunk(chunks[7], schema)
    assert all(isinstance(v, np.memmap) for v in data.values())
    assert data["id"][0] == 700_000 and data["vec"].shape == (100_000, dim)
    total = float(data["vec"].sum(dtype=np.float64))  # touches every page of the slice
    assert total == dim * float(np.arange(700_000, 800_000).sum())
    grown = _rss() - before
    print(f"file {size >> 20} MiB; resident memory grew {grown >> 20} MiB reading one chunk")
    assert grown < size // 4
    table = columns_to_table(schema, data, row_offset=chunks[7].start, source=chunks[7].source)
    assert table.column("id")[0].as_py() == 700_000
