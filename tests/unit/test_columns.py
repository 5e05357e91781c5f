"""Column data → Arrow (gpuvec.columns): the same table and the same refusals as
rows_to_table for the same data given as rows, vectorised, with errors naming the source,
row, field and reason; and MilvusClient.insert/upsert taking column data."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from gpuvec import MilvusClient
from gpuvec.columns import column_type_problem, columns_to_table, is_column_data
from gpuvec.config import Config
from gpuvec.errors import DataError, InvalidArgumentError
from gpuvec.rows import rows_to_table
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, DataType, FieldSchema

DIM = 4
N = 6


def make_schema(*, dynamic: bool = True, auto_id: bool = False) -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=dynamic, auto_id=auto_id)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("name", DataType.VARCHAR, max_length=8)
    s.add_field("flag", DataType.BOOL, nullable=True)
    s.add_field("i8", DataType.INT8, nullable=True)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32, nullable=True)
    s.add_field("i64", DataType.INT64)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE, nullable=True)
    s.add_field("j", DataType.JSON, nullable=True)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT16, max_capacity=3, nullable=True)
    s.add_field("age", DataType.INT32, default_value=18)
    s.add_field("note", DataType.VARCHAR, max_length=16, default_value="none")
    s.validate("c")
    return s


S = make_schema()
PLAIN = make_schema(dynamic=False)
A = make_schema(auto_id=True)


def numpy_columns(n: int = N) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {
        "id": np.arange(n, dtype=np.int64),
        "vec": rng.standard_normal((n, DIM)).astype(np.float32),
        "name": np.array([f"né{i}" for i in range(n)]),
        "flag": np.arange(n) % 2 == 0,
        "i8": np.arange(n, dtype=np.int8) - 3,
        "i16": np.arange(n, dtype=np.int16) * 300,
        "i32": np.arange(n, dtype=np.int32),
        "i64": np.arange(n, dtype=np.int64) - 2**62,
        "f": np.linspace(-1, 1, n),
        "d": np.linspace(0, 1e300, n),
        "j": [{"k": i, "s": [1, "x"]} if i % 3 else None for i in range(n)],
        "nums": [[i, -i] if i % 2 else None for i in range(n)],
        "color": np.array(["red", "blue"] * (n // 2)),
        "size": np.arange(n) * 1.5,
    }


def as_rows(cols: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(next(iter(cols.values())))
    out = []
    for i in range(n):
        row = {}
        for k, v in cols.items():
            x = v[i]
            row[k] = x.tolist() if isinstance(x, np.ndarray | np.generic) else x
        out.append(row)
    return out


def assert_same(table: pa.Table, expected: pa.Table) -> None:
    assert table.schema == expected.schema
    for name in expected.column_names:
        assert table.column(name).equals(expected.column(name)), name


def refused(schema: CollectionSchema, data: Any, *needles: str, **kw: Any) -> str:
    with pytest.raises(DataError) as info:
        columns_to_table(schema, data, **kw)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# -- same table as rows_to_table -----------------------------------------------------------
def test_dict_of_numpy_equals_rows() -> None:
    cols = numpy_columns()
    expected = rows_to_table(S, as_rows(cols))
    assert_same(columns_to_table(S, cols), expected)
    assert expected.column("age").to_pylist() == [18] * N  # defaults of absent columns
    assert expected.column("note").to_pylist() == ["none"] * N
    assert json.loads(expected.column(DYNAMIC_FIELD_NAME)[1].as_py()) == {
        "color": "blue",
        "size": 1.5,
    }


def test_dict_of_lists_equals_rows() -> None:
    cols = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in numpy_columns().items()}
    assert_same(columns_to_table(S, cols), rows_to_table(S, as_rows(cols)))


def test_arrow_table_with_nulls_equals_rows() -> None:
    cols = numpy_columns()
    rows = as_rows(cols)
    rows[2]["i8"] = rows[4]["d"] = rows[1]["flag"] = None
    rows[3]["age"] = None  # a null in a defaulted field takes the default
    rows[0]["note"] = None
    for r in rows:  # JSON as text, as Parquet files hold it
        r["j"] = None if r["j"] is None else json.dumps(r["j"])
    table = pa.Table.from_pylist(rows)
    assert_same(columns_to_table(S, table), rows_to_table(S, rows))
    batch = table.to_batches()[0]
    assert_same(columns_to_table(S, batch), rows_to_table(S, rows))
    fixed = table.set_column(1, "vec", pa.array(list(cols["vec"]), pa.list_(pa.float32(), DIM)))
    assert_same(columns_to_table(S, fixed), rows_to_table(S, rows))
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    assert chunked.column("vec").num_chunks == 2
    assert_same(columns_to_table(S, chunked), rows_to_table(S, rows))


def test_dataframe_equals_rows() -> None:
    pd = pytest.importorskip("pandas", reason="pandas not installed: DataFrame input untested")
    cols = numpy_columns()
    df = pd.DataFrame({k: list(v) if k == "vec" else v for k, v in cols.items()})
    df["i32"] = pd.array([1, None, 3, 4, None, 6], dtype="Int32")  # pandas nullable ints
    df.loc[2, "d"] = np.nan  # pandas' missing value: null in a nullable field
    rows = as_rows(cols)
    for i, v in enumerate([1, None, 3, 4, None, 6]):
        rows[i]["i32"] = v
    rows[2]["d"] = None
    assert is_column_data(S, df)
    assert_same(columns_to_table(S, df), rows_to_table(S, rows))
    df.loc[1, "f"] = np.nan  # ...and refused in one that is not
    refused(S, df, "insert row 1, field 'f'", "None is not allowed")


def test_meta_column_from_bulk_files_is_merged() -> None:
    cols = numpy_columns(2)
    del cols["color"], cols["size"]
    cols[DYNAMIC_FIELD_NAME] = np.array(['{"a": 1, "b": [2]}', "{}"])
    cols["extra"] = [None, "x"]  # a null leaves the key out of that row
    metas = columns_to_table(S, cols).column(DYNAMIC_FIELD_NAME).to_pylist()
    assert metas == ['{"a":1,"b":[2]}', '{"extra":"x"}']
    cols[DYNAMIC_FIELD_NAME] = [{"a": 1}, "[1]"]
    refused(S, cols, "row 1, dynamic fields", "JSON object")


def test_auto_id_columns() -> None:
    cols = numpy_columns()
    pks = cols.pop("id")
    t = columns_to_table(A, cols, auto_ids=np.arange(100, 100 + N))
    assert t.column("id").to_pylist() == list(range(100, 100 + N))
    assert_same(t, rows_to_table(A, as_rows(cols), auto_ids=list(range(100, 100 + N))))
    assert "id" not in columns_to_table(A, cols).column_names
    refused(A, {**cols, "id": pks}, "insert data", "'id'", "auto_id primary key")
    t = columns_to_table(A, {**cols, "id": pks}, allow_insert_auto_id=True, auto_ids=pks + 50)
    assert t.column("id").to_pylist() == pks.tolist()
    refused(A, cols, "missing field 'id'", operation="upsert")
    assert columns_to_table(A, {**cols, "id": pks}, operation="upsert").num_rows == N
    with pytest.raises(InvalidArgumentError, match="auto_ids"):
        columns_to_table(A, cols, auto_ids=[1, 2])
    with pytest.raises(InvalidArgumentError, match="auto_id"):
        columns_to_table(S, numpy_columns(), auto_ids=np.arange(N))


def test_varchar_auto_ids() -> None:
    s = CollectionSchema(auto_id=True)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    t = columns_to_table(s, {"v": np.ones((2, 2))}, auto_ids=[7, 8])
    assert t.column("pk").to_pylist() == ["7", "8"]


def test_int_and_float64_vectors_become_float32() -> None:
    cols = numpy_columns()
    for vec in (np.arange(N * DIM).reshape(N, DIM), cols["vec"].astype(np.float64)):
        t = columns_to_table(S, {**cols, "vec": vec})
        got = np.asarray(t.column("vec").combine_chunks().flatten()).reshape(N, DIM)
        np.testing.assert_array_equal(got, vec.astype(np.float32))


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("i8", np.array([1, 2, 3, 200, 5, 6], dtype=np.int16), "out of range [-128, 127]"),
        ("i16", np.array([0, 0, 0, 2**40, 0, 0]), "out of range"),
        ("i64", np.array([0, 0, 0, 2**64 - 1, 0, 0], dtype=np.uint64), "out of range"),
        ("f", np.array([0, 0, 0, np.nan, 0, 0]), "NaN, infinite or out of range"),
        ("f", np.array([0, 0, 0, 1e39, 0, 0]), "FLOAT"),
        ("d", np.array([0, 0, 0, -np.inf, 0, 0]), "DOUBLE"),
        ("name", np.array(["a", "b", "c", "é" * 5, "e", "f"]), "10 bytes exceeds max_length 8"),
        ("name", ["a", "b", "c", 5, "e", "f"], "expects a string"),
        ("i32", [1, 2, 3, True, 5, 6], "bool"),
        ("j", [1, 2, 3, {"a": float("nan")}, 5, 6], "NaN"),
        ("nums", [[1], [2], [3], [1, 2, 3, 4], [5], [6]], "max_capacity 3"),
    ],
)
def test_bad_values_name_source_row_field(field: str, value: Any, needle: str) -> None:
    cols = {**numpy_columns(), field: value}
    msg = refused(S, cols, f"insert row 3, field '{field}'", needle)
    with pytest.raises(DataError) as rows_info:  # the same reason as the rows path
        rows_to_table(S, as_rows(cols))
    assert msg == str(rows_info.value)
    refused(S, cols, f"data.parquet row 1003, field '{field}'", row_offset=1000,
            source="data.parquet")  # fmt: skip


def test_bad_vectors_name_the_row() -> None:
    cols = numpy_columns()
    vec = cols["vec"].copy()
    vec[4, 2] = np.nan
    refused(S, {**cols, "vec": vec}, "upsert row 4, field 'vec'", "NaN", operation="upsert")
    vec = cols["vec"].astype(np.float64)
    vec[5, 0] = 1e300
    refused(S, {**cols, "vec": vec}, "row 5, field 'vec'", "float32")
    ragged = [list(v) for v in cols["vec"]]
    ragged[2] = [1.0, 2.0]
    refused(S, {**cols, "vec": ragged}, "row 2, field 'vec'", "dim 2")
    arrow = pa.array(ragged, pa.list_(pa.float32()))
    refused(S, {**cols, "vec": arrow}, "row 2, field 'vec'", "dim 2")
    with_null = pa.array([*ragged[:2], None, *ragged[3:]], pa.list_(pa.float32()))
    refused(S, {**cols, "vec": with_null}, "row 2, field 'vec'", "None")
    arrays = list(cols["vec"].astype(np.float64))  # a list of arrays (a pandas column)
    arrays[1] = np.array([0.0, np.inf, 0.0, 0.0])
    refused(S, {**cols, "vec": arrays}, "row 1, field 'vec'", "NaN or infinity")
    arrays[1] = np.zeros(DIM + 1)
    refused(S, {**cols, "vec": arrays}, "row 1, field 'vec'", "dim 5")


def test_arrow_null_in_required_field() -> None:
    cols = {**numpy_columns(), "i16": pa.array([1, 2, None, 4, 5, 6], pa.int16())}
    refused(S, cols, "insert row 2, field 'i16'", "None is not allowed")


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"vec": np.zeros((N, 3), np.float32)}, ["column 'vec'", "dim 3", "dim is 4"]),
        ({"vec": np.zeros(N, np.float32)}, ["column 'vec'", "2-D", "1-D float32"]),
        ({"i32": np.zeros(N)}, ["column 'i32'", "integers (INT32)", "float64"]),
        ({"flag": np.zeros(N, np.int8)}, ["column 'flag'", "bools", "int8"]),
        ({"name": pa.array(range(N))}, ["column 'name'", "strings", "int64"]),
        ({"i8": np.arange(N + 1)}, ["column 'i8'", f"{N + 1} rows", f"has {N}"]),
        ({"i8": 5}, ["column 'i8'", "expects an array"]),
    ],
)
def test_column_level_problems(change: dict[str, Any], needles: list[str]) -> None:
    refused(S, {**numpy_columns(), **change}, "insert data, column", *needles)


def test_unknown_and_missing_columns() -> None:
    cols = numpy_columns()
    refused(PLAIN, cols, "unexpected field 'color'", "dynamic field is not enabled")
    del cols["color"], cols["size"]
    refused(PLAIN, {**cols, DYNAMIC_FIELD_NAME: ["{}"] * N}, "'$meta'", "not enabled")
    del cols["name"]
    refused(PLAIN, cols, "a.npy", "missing field 'name'", source="a.npy")
    refused(PLAIN, {}, "empty")
    refused(PLAIN, {"id": np.array([], np.int64)}, "empty")
    refused(PLAIN, [1, 2], "dict of columns", "list")


def test_rejected_batch_leaves_input_untouched() -> None:
    cols = numpy_columns()
    cols["i8"] = np.array([1, 2, 3, 4, 5, 127], dtype=np.int64)
    cols["i8"][5] = 128
    snapshot = {k: np.copy(v) if isinstance(v, np.ndarray) else list(v) for k, v in cols.items()}
    with pytest.raises(DataError):
        columns_to_table(S, cols)
    for k, v in snapshot.items():
        assert np.array_equal(np.asarray(cols[k], dtype=object), np.asarray(v, dtype=object))


def test_is_column_data_rules() -> None:
    cols = numpy_columns()
    assert is_column_data(S, cols)
    assert is_column_data(S, {**cols, "vec": [list(v) for v in cols["vec"]]})
    assert is_column_data(S, pa.table({"id": [1]}))
    assert not is_column_data(S, {"id": 1, "vec": [1.0, 2.0, 3.0, 4.0]})  # one row
    assert not is_column_data(S, {"id": 1, "vec": np.zeros((2, DIM))})  # a row, bad vector
    assert not is_column_data(S, {"id": np.arange(2), "vec": np.zeros(DIM)})
    assert not is_column_data(S, [{"id": 1, "vec": [1.0] * DIM}])
    assert not is_column_data(S, {})


def test_column_type_problem() -> None:
    vec = FieldSchema("v", DataType.FLOAT_VECTOR, dim=4)
    assert column_type_problem(vec, np.dtype("float32"), 2) is None
    assert "2-D" in (column_type_problem(vec, np.dtype("float32"), 1) or "")
    assert column_type_problem(vec, pa.list_(pa.float32())) is None
    assert "Arrow type" in (column_type_problem(vec, pa.list_(pa.string())) or "")
    name = FieldSchema("s", DataType.VARCHAR, max_length=4)
    assert column_type_problem(name, np.dtype("<U3")) is None
    assert "strings" in (column_type_problem(name, np.dtype("S3")) or "")


def test_memmap_vectors_are_copied_once(tmp_path: Path) -> None:
    n, dim = 200_000, 32
    s = CollectionSchema([FieldSchema("id", DataType.INT64, is_primary=True),
                          FieldSchema("v", DataType.FLOAT_VECTOR, dim=dim)])  # fmt: skip
    path = tmp_path / "v.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    out[:] = np.arange(n, dtype=np.float32)[:, None]
    out.flush()
    del out
    vec = np.load(path, mmap_mode="r")
    ids = np.arange(n)
    tracemalloc.start()
    try:
        t = columns_to_table(s, {"id": ids, "v": vec})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"vectors {vec.nbytes >> 20} MiB, peak traced allocation {peak >> 20} MiB")
    assert peak < 1.5 * vec.nbytes + ids.nbytes  # one float32 copy (two would be 2x)
    got = np.asarray(t.column("v").combine_chunks().flatten()).reshape(n, dim)
    np.testing.assert_array_equal(got, vec)


# -- MilvusClient.insert / upsert with column data -------------------------------------------
@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = MilvusClient(
        str(tmp_path / "db"), config=Config(dashboard_address="", index_min_rows=1 << 30)
    )
    yield c
    c.close()


def make_collection(c: MilvusClient, name: str, *, auto_id: bool = False) -> None:
    schema = c.create_schema(auto_id=auto_id, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = c.prepare_index_params()
    index.add_index("vector", metric_type="L2", index_type="FLAT")
    c.create_collection(name, schema=schema, index_params=index)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def check_back(c: MilvusClient, name: str, ids: list[int], vec: np.ndarray) -> None:
    got = c.query(name, filter=f"id in {ids[:5]}", output_fields=["vector", "tag", "color"])
    got = sorted(got, key=lambda r: r["id"])
    assert [r["id"] for r in got] == sorted(ids[:5])
    pos = {k: i for i, k in enumerate(ids)}
    for r in got:
        np.testing.assert_allclose(r["vector"], vec[pos[r["id"]]], rtol=1e-6)
        assert r["tag"] == f"t{r['id']}" and r["color"] == "red"
    hits = c.search(name, data=[vec[3].tolist()], limit=1)
    assert hits[0][0]["id"] == ids[3] and hits[0][0]["distance"] < 1e-6


def test_client_inserts_dict_of_numpy_arrays(client: MilvusClient) -> None:
    make_collection(client, "np")
    vec, ids = vectors(50), np.arange(100, 150)
    tags = np.array([f"t{i}" for i in ids])
    res = client.insert("np", {"id": ids, "vector": vec, "tag": tags, "color": ["red"] * 50})
    assert res["insert_count"] == 50 and res["ids"] == ids.tolist() and res["timestamp"] > 0
    check_back(client, "np", ids.tolist(), vec)
    up = client.upsert("np", {"id": ids[:2], "vector": vec[:2] + 1, "tag": tags[:2],
                              "color": ["red"] * 2})  # fmt: skip
    assert up["upsert_count"] == 2 and up["ids"] == [100, 101]
    assert client.query("np", filter="", limit=100, output_fields=["count(*)"]) == [
        {"count(*)": 50}
    ]
    with pytest.raises(DataError, match="insert row 1, field 'tag'"):
        client.insert("np", {"id": ids[:2], "vector": vec[:2], "tag": ["ok", "x" * 20]})


def test_client_auto_id_columns(client: MilvusClient) -> None:
    make_collection(client, "auto", auto_id=True)
    vec = vectors(20, seed=1)
    res = client.insert("auto", {"vector": vec, "tag": [f"t{i}" for i in range(20)],
                                 "color": np.array(["red"] * 20)})  # fmt: skip
    assert res["insert_count"] == 20 and len(set(res["ids"])) == 20
    got = client.get("auto", ids=res["ids"][:3], output_fields=["tag"])
    assert sorted(r["tag"] for r in got) == ["t0", "t1", "t2"]


def test_client_inserts_dataframe(client: MilvusClient) -> None:
    pd = pytest.importorskip("pandas", reason="pandas not installed: DataFrame insert untested")
    make_collection(client, "df")
    vec, ids = vectors(30, seed=2), list(range(30))
    df = pd.DataFrame({"id": ids, "vector": list(vec), "tag": [f"t{i}" for i in ids],
                       "color": "red"})  # fmt: skip
    assert client.insert("df", df)["insert_count"] == 30
    check_back(client, "df", ids, vec)


def test_client_inserts_arrow_table(client: MilvusClient) -> None:
    make_collection(client, "arrow")
    vec, ids = vectors(40, seed=3), list(range(1000, 1040))
    table = pa.table({
        "id": pa.array(ids, pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), DIM),
        "tag": [f"t{i}" for i in ids],
        "color": ["red"] * 40,
    })  # fmt: skip
    assert client.insert("arrow", table)["ids"] == ids
    check_back(client, "arrow", ids, vec)


def test_client_inserts_memory_mapped_npy(client: MilvusClient, tmp_path: Path) -> None:
    make_collection(client, "mm")
    vec, ids = vectors(500, seed=4), np.arange(500)
    np.save(tmp_path / "vec.npy", vec)
    mm = np.load(tmp_path / "vec.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    res = client.insert("mm", {"id": ids, "vector": mm, "tag": [f"t{i}" for i in ids],
                               "color": ["red"] * 500})  # fmt: skip
    assert res["insert_count"] == 500
    check_back(client, "mm", ids.tolist(), vec)


def test_client_columnar_insert_has_no_row_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column data is validated column by column: no per-row conversion runs (the rows
    path, ``rows_to_table``, is never called), and the rows arrive as given. (How much
    faster that is: ``bench/import.py``'s insert rows / insert columns.)"""
    import gpuvec.client.facade as facade
    import gpuvec.columns as columns

    calls: list[int] = []

    def counted(real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return real(*args, **kwargs)

        return wrapper

    for module in (columns, facade):
        monkeypatch.setattr(module, "rows_to_table", counted(module.rows_to_table))
    n, dim = 20_000, 16
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address=""))
    try:
        s = c.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field("score", DataType.FLOAT)
        s.add_field("tag", DataType.VARCHAR, max_length=16)
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="FLAT", metric_type="L2")
        c.create_collection("cols", schema=s, index_params=idx)
        rng = np.random.default_rng(0)
        cols = {"id": np.arange(n), "vector": rng.random((n, dim), dtype=np.float32),
                "score": rng.random(n), "tag": np.array([f"t{i}" for i in range(n)])}  # fmt: skip
        assert c.insert("cols", cols)["insert_count"] == n
        assert calls == []
        got = c.get("cols", ids=[0, n - 1], output_fields=["tag", "vector"])
        assert [r["tag"] for r in got] == ["t0", f"t{n - 1}"]
        np.testing.assert_allclose(got[1]["vector"], cols["vector"][-1])
        c.insert("cols", [{"id": n, "vector": cols["vector"][0], "score": 1.0, "tag": "x"}])
        assert calls  # the row path is the one that was patched
    finally:
        c.close()
