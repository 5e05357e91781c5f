"""Rows → Arrow validation (every rule, whole-batch refusal), Arrow → rows, output fields,
primary-key lists, and an optional comparison with pymilvus + Milvus Lite."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.errors import DataError, FieldNotFoundError, InvalidArgumentError
from gpuvec.rows import (
    JSON_MAX_LENGTH,
    OutputFields,
    pks_from_ids,
    resolve_output_fields,
    rows_to_table,
    table_to_rows,
)
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema, DataType, arrow_schema

DIM = 4


def make_schema(*, dynamic: bool = False, auto_id: bool = False) -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=dynamic, auto_id=auto_id)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("name", DataType.VARCHAR, max_length=8)
    s.add_field("flag", DataType.BOOL, nullable=True)
    s.add_field("i8", DataType.INT8, nullable=True)
    s.add_field("i16", DataType.INT16, nullable=True)
    s.add_field("i32", DataType.INT32, nullable=True)
    s.add_field("i64", DataType.INT64, nullable=True)
    s.add_field("f", DataType.FLOAT, nullable=True)
    s.add_field("d", DataType.DOUBLE, nullable=True)
    s.add_field("j", DataType.JSON, nullable=True)
    tags = {"element_type": DataType.VARCHAR, "max_capacity": 3, "max_length": 4}
    s.add_field("tags", DataType.ARRAY, nullable=True, **tags)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT16, max_capacity=3, nullable=True)
    s.add_field("age", DataType.INT32, default_value=18)
    s.validate("c")
    return s


def row(i: int = 0, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": i, "vec": [0.5, 1.0, 1.5, float(i)], "name": f"n{i}"}
    out.update(kw)
    return out


def refused(schema: CollectionSchema, rows: Any, *needles: str, **kw: Any) -> str:
    with pytest.raises(DataError) as info:
        rows_to_table(schema, rows, **kw)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


S = make_schema()


# -- happy paths ---------------------------------------------------------------------------
def test_table_matches_arrow_schema_and_values() -> None:
    rows = [
        row(1, flag=True, i8=-128, i16=300, i32=2**31 - 1, i64=-(2**63), f=1.25, d=2.5,
            j={"a": [1, 2]}, tags=["x", "yz"], nums=[1, -2], age=30),
        row(2),
    ]  # fmt: skip
    t = rows_to_table(S, rows)
    assert t.schema == arrow_schema(S)
    first, second = t.to_pylist()
    assert first["vec"] == [0.5, 1.0, 1.5, 1.0]
    assert first["i16"] == 300 and first["i32"] == 2**31 - 1 and first["i64"] == -(2**63)
    assert first["j"] == '{"a":[1,2]}' and first["tags"] == ["x", "yz"] and first["nums"] == [1, -2]
    assert first["age"] == 30 and first["flag"] is True and first["f"] == 1.25
    assert second["flag"] is None and second["j"] is None and second["tags"] is None
    assert second["age"] == 18  # default_value fills a missing value


def test_single_dict_is_one_row() -> None:
    assert rows_to_table(S, row(3)).num_rows == 1


def test_numpy_inputs() -> None:
    vecs = np.random.default_rng(1).random((3, DIM), dtype=np.float32)
    rows = [
        row(i, vec=vecs[i], i8=np.int8(3), i64=np.int64(9), f=np.float64(0.5), flag=np.bool_(True),
            nums=np.array([1, 2], dtype=np.int16), j={"k": np.float32(2.0)})
        for i in range(3)
    ]  # fmt: skip
    t = rows_to_table(S, rows)
    got = np.array(t.column("vec").combine_chunks().flatten()).reshape(3, DIM)
    np.testing.assert_array_equal(got, vecs)
    assert t.column("nums").to_pylist()[0] == [1, 2] and t.column("j")[0].as_py() == '{"k":2.0}'


def test_float64_and_int_vectors_become_float32() -> None:
    rows = [row(0, vec=np.arange(DIM, dtype=np.float64)), row(1, vec=[1, 2, 3, 4])]
    t = rows_to_table(S, rows)
    assert t.schema.field("vec").type == pa.list_(pa.float32(), DIM)
    assert t.column("vec").to_pylist() == [[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]]


def test_int_into_float_field_is_accepted_like_pymilvus() -> None:
    t = rows_to_table(S, [row(0, f=3, d=4)])
    assert t.column("f")[0].as_py() == 3.0 and t.column("d")[0].as_py() == 4.0


def test_default_value_replaces_explicit_none() -> None:
    assert rows_to_table(S, [row(0, age=None)]).column("age")[0].as_py() == 18


def test_nullable_accepts_none_and_missing() -> None:
    t = rows_to_table(S, [row(0, i8=None), row(1)])
    assert t.column("i8").to_pylist() == [None, None]
    assert t.column("i8").null_count == 2


def test_json_values() -> None:
    vals = [{"a": 1}, [1, "x"], 5, 2.5, True, '{"already": "json"}', '"a string"']
    t = rows_to_table(S, [row(i, j=v) for i, v in enumerate(vals)])
    texts = t.column("j").to_pylist()
    assert [json.loads(x) for x in texts] == [
        {"a": 1}, [1, "x"], 5, 2.5, True, {"already": "json"}, "a string"
    ]  # fmt: skip


def test_varchar_max_length_counts_utf8_bytes() -> None:
    rows_to_table(S, [row(0, name="é" * 4)])  # 8 bytes: fits
    refused(S, [row(0, name="é" * 5)], "row 0", "'name'", "10 bytes", "max_length 8")


def test_array_of_varchar_element_length() -> None:
    refused(S, [row(0, tags=["ok", "toolong"])], "row 0", "'tags'", "element 1", "max_length 4")


def test_duplicate_primary_keys_in_a_batch_are_kept_as_in_milvus() -> None:
    assert rows_to_table(S, [row(1), row(1)]).column("id").to_pylist() == [1, 1]


# -- refusals ------------------------------------------------------------------------------
def test_empty_and_non_row_inputs() -> None:
    refused(S, [], "empty")
    refused(S, 5, "dict or a list")
    refused(S, [row(0), "x"], "row 1", "expected a dict", "str")


def test_unknown_operation() -> None:
    with pytest.raises(InvalidArgumentError):
        rows_to_table(S, [row(0)], operation="merge")


def test_unknown_key_without_dynamic_field() -> None:
    refused(S, [row(0), row(1, color="red")], "row 1", "'color'", "dynamic field")


def test_missing_required_field() -> None:
    r = row(2)
    del r["name"]
    refused(S, [row(0), row(1), r], "row 2", "'name'", "missing")
    r = row(0)
    del r["vec"]
    refused(S, [r], "row 0", "'vec'")


def test_none_for_required_field() -> None:
    refused(S, [row(0), row(1, name=None)], "row 1", "'name'", "None")


@pytest.mark.parametrize(
    ("field", "value", "type_name"),
    [
        ("i32", True, "bool"),
        ("i32", "5", "str"),
        ("i32", 5.0, "float"),
        ("i64", np.float32(1), "float32"),
        ("id", True, "bool"),
        ("id", "7", "str"),
        ("f", "1.5", "str"),
        ("f", True, "bool"),
        ("flag", 1, "int"),
        ("flag", "true", "str"),
        ("name", 5, "int"),
        ("name", b"bytes", "bytes"),
    ],
)
def test_wrong_scalar_types(field: str, value: Any, type_name: str) -> None:
    msg = refused(S, [row(0), row(1), row(2, **{field: value})], "row 2", f"'{field}'", type_name)
    assert "expects" in msg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("i8", 128),
        ("i8", -129),
        ("i16", 2**15),
        ("i32", 2**31),
        ("i32", -(2**31) - 1),
        ("i64", 2**63),
        ("id", -(2**63) - 1),
        ("nums", [1, 2**15]),
    ],
)
def test_integer_ranges(field: str, value: Any) -> None:
    refused(S, [row(0), row(1, **{field: value})], "row 1", f"'{field}'", "out of range")


@pytest.mark.parametrize(
    ("field", "value"), [("f", float("nan")), ("d", float("inf")), ("f", 1e39)]
)
def test_float_nan_inf_and_overflow(field: str, value: float) -> None:
    refused(S, [row(0, **{field: value})], "row 0", f"'{field}'")


@pytest.mark.parametrize(
    ("vec", "needle"),
    [
        ([1.0, 2.0, 3.0], "dim 3"),
        ([1.0] * 5, "dim 5"),
        ([], "dim 0"),
        ("abcd", "str"),
        (5.0, "float"),
        ({"a": 1}, "dict"),
        (None, "None"),
        ([1.0, float("nan"), 0.0, 0.0], "NaN"),
        ([1.0, float("-inf"), 0.0, 0.0], "NaN or infinity"),
        (np.array([1e300, 0, 0, 0]), "float32"),
        ([1.0, None, 0.0, 0.0], "NoneType"),
        (["a", "b", "c", "d"], "str"),
        ([1.0, "x", 0.0, 0.0], "must be numbers"),
        ([[1.0, 2.0], [3.0, 4.0]], "1-D"),
        (np.zeros((1, DIM)), "1-D"),
        (np.array(["a"] * DIM), "must be numbers"),
        ([True, False, True, False], "must be numbers"),
    ],
)
def test_bad_vectors(vec: Any, needle: str) -> None:
    refused(S, [row(0), row(1, vec=vec)], "row 1", "'vec'", needle)


def test_nan_vector_row_index_in_numpy_batch() -> None:
    vecs = np.ones((50, DIM), dtype=np.float32)
    vecs[37, 2] = np.nan
    refused(S, [row(i, vec=vecs[i]) for i in range(50)], "row 37", "'vec'", "NaN")


def test_ragged_vectors_name_the_row() -> None:
    rows = [row(i) for i in range(5)]
    rows[3]["vec"] = [1.0, 2.0]
    refused(S, rows, "row 3", "'vec'", "dim 2")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ([1, 2, 3, 4], "max_capacity 3"),
        ("abc", "expects a list"),
        (5, "expects a list"),
        ([1, "x"], "element 1"),
        ([1, None], "element 1"),
        ([1.5], "float"),
        (np.zeros((2, 2), dtype=np.int16), "expects a list"),
    ],
)
def test_bad_arrays(value: Any, needle: str) -> None:
    refused(S, [row(0), row(1, nums=value)], "row 1", "'nums'", needle)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({1, 2}, "set"),
        ({1: "a"}, "keys must be strings"),
        ({"a": float("nan")}, "NaN"),
        ({"a": object()}, "object"),
        ("not json", "not valid JSON"),
        ({"big": "x" * JSON_MAX_LENGTH}, str(JSON_MAX_LENGTH)),
    ],
)
def test_bad_json(value: Any, needle: str) -> None:
    refused(S, [row(0), row(1, j=value)], "row 1", "'j'", needle)


def test_invalid_utf8_string() -> None:
    refused(S, [row(0, name="\ud800")], "row 0", "'name'", "UTF-8")


def test_rejected_batch_has_no_partial_effect() -> None:
    rows = [row(0), row(1, i8=999)]
    snapshot = json.dumps(rows, default=str)
    with pytest.raises(DataError):
        rows_to_table(S, rows)
    assert json.dumps(rows, default=str) == snapshot  # input untouched, nothing returned


# -- auto_id and upsert --------------------------------------------------------------------
A = make_schema(auto_id=True)


def auto_row(i: int = 0) -> dict[str, Any]:
    r = row(i)
    del r["id"]
    return r


def test_auto_id_insert_leaves_out_pk_or_fills_given_ids() -> None:
    t = rows_to_table(A, [auto_row(0), auto_row(1)])
    assert "id" not in t.column_names and t.schema == arrow_schema(A, include_pk=False)
    t = rows_to_table(A, [auto_row(0), auto_row(1)], auto_ids=[10, 11])
    assert t.column("id").to_pylist() == [10, 11] and t.schema == arrow_schema(A)


def test_auto_id_with_wrong_number_of_ids() -> None:
    with pytest.raises(InvalidArgumentError, match="auto_ids"):
        rows_to_table(A, [auto_row(0)], auto_ids=[1, 2])
    with pytest.raises(InvalidArgumentError, match="auto_id"):
        rows_to_table(S, [row(0)], auto_ids=[1])


def test_auto_id_insert_refuses_supplied_pk() -> None:
    refused(A, [auto_row(0), row(1)], "row 1", "'id'", "auto_id")


def test_allow_insert_auto_id() -> None:
    t = rows_to_table(A, [row(5), row(6)], allow_insert_auto_id=True, auto_ids=[1, 2])
    assert t.column("id").to_pylist() == [5, 6]
    refused(A, [row(5), auto_row(6)], "row 0", "all rows", allow_insert_auto_id=True)


def test_upsert_with_auto_id_requires_pk() -> None:
    t = rows_to_table(A, [row(4)], operation="upsert")
    assert t.column("id").to_pylist() == [4]
    msg = refused(A, [auto_row(0)], "row 0", "'id'", "missing", operation="upsert")
    assert msg.startswith("upsert")


def test_varchar_auto_id_gets_string_ids() -> None:
    s = CollectionSchema(auto_id=True)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.validate()
    t = rows_to_table(s, [{"v": [1, 2]}], auto_ids=[42])
    assert t.column("pk").to_pylist() == ["42"]


# -- dynamic field -------------------------------------------------------------------------
D = make_schema(dynamic=True)


def test_dynamic_keys_go_to_meta() -> None:
    t = rows_to_table(D, [row(0, color="red", size=3, nested={"a": [1]}), row(1)])
    assert t.schema == arrow_schema(D)
    metas = t.column(DYNAMIC_FIELD_NAME).to_pylist()
    assert json.loads(metas[0]) == {"color": "red", "size": 3, "nested": {"a": [1]}}
    assert metas[1] == "{}"


def test_dynamic_values_must_be_json() -> None:
    refused(D, [row(0), row(1, extra={1, 2})], "row 1", "dynamic", "set")
    refused(D, [row(0, extra=float("nan"))], "row 0", "NaN")


def test_meta_key_and_non_string_keys_refused() -> None:
    refused(D, [row(0, **{DYNAMIC_FIELD_NAME: {"a": 1}})], "row 0", DYNAMIC_FIELD_NAME)
    r = row(0)
    r[7] = "x"  # type: ignore[index]
    refused(D, [r], "row 0", "7")


# -- table -> rows -------------------------------------------------------------------------
def round_trip_rows() -> list[dict[str, Any]]:
    return [
        row(1, flag=True, i8=1, f=0.1, d=0.1, j={"a": {"b": [1, None]}}, tags=["a"], nums=[3],
            color="red"),
        row(2, j=[1, 2], size=9),
    ]  # fmt: skip


def test_table_to_rows_round_trip_with_dynamic_flattening() -> None:
    t = rows_to_table(D, round_trip_rows())
    out = table_to_rows(t, D)
    assert out[0]["vec"] == [0.5, 1.0, 1.5, 1.0] and isinstance(out[0]["vec"][0], float)
    assert out[0]["j"] == {"a": {"b": [1, None]}} and out[0]["color"] == "red"
    assert out[0]["f"] == float(np.float32(0.1)) and out[0]["d"] == 0.1
    assert out[0]["tags"] == ["a"] and out[0]["nums"] == [3] and out[0]["age"] == 18
    assert out[1]["j"] == [1, 2] and out[1]["size"] == 9 and "color" not in out[1]
    assert out[1]["flag"] is None and DYNAMIC_FIELD_NAME not in out[1]
    assert list(out[0])[:3] == ["id", "vec", "name"]


def test_table_to_rows_output_fields() -> None:
    t = rows_to_table(D, round_trip_rows())
    assert table_to_rows(t, D, ["name"]) == [{"id": 1, "name": "n1"}, {"id": 2, "name": "n2"}]
    assert table_to_rows(t, D, ["color"]) == [{"id": 1, "color": "red"}, {"id": 2}]
    assert table_to_rows(t, D, [DYNAMIC_FIELD_NAME]) == [
        {"id": 1, "color": "red"},
        {"id": 2, "size": 9},
    ]
    assert table_to_rows(t, D, []) == [{"id": 1}, {"id": 2}]
    assert table_to_rows(t, D, ["name"], include_pk=False) == [{"name": "n1"}, {"name": "n2"}]
    full = table_to_rows(t, D, ["*"])
    assert full == table_to_rows(t, D)


def test_table_to_rows_unknown_field_without_dynamic() -> None:
    t = rows_to_table(S, [row(1)])
    with pytest.raises(FieldNotFoundError, match="nope"):
        table_to_rows(t, S, ["nope"])


def test_table_to_rows_missing_column() -> None:
    t = rows_to_table(S, [row(1)]).select(["id", "vec"])
    with pytest.raises(FieldNotFoundError, match="name"):
        table_to_rows(t, S, ["name"])
    assert table_to_rows(t, S) == [{"id": 1, "vec": [0.5, 1.0, 1.5, 1.0]}]


def test_table_to_rows_sliced_and_chunked_vectors() -> None:
    t = rows_to_table(S, [row(i) for i in range(6)])
    t = pa.concat_tables([t.slice(1, 2), t.slice(4, 2)])
    out = table_to_rows(t, S, ["vec"])
    assert [r["id"] for r in out] == [1, 2, 4, 5]
    assert [r["vec"][3] for r in out] == [1.0, 2.0, 4.0, 5.0]


# -- output fields -------------------------------------------------------------------------
def test_resolve_output_fields_rules() -> None:
    assert resolve_output_fields(S, None) == OutputFields(("id",))
    assert resolve_output_fields(S, ["name", " i8 "]).fields == ("id", "name", "i8")
    assert resolve_output_fields(S, ["*"]).fields == tuple(S.field_names)
    assert resolve_output_fields(S, ["*", "name"]).fields == tuple(S.field_names)
    spec = resolve_output_fields(D, ["name", "color", "color"])
    assert spec == OutputFields(("id", "name"), ("color",), False)
    assert spec.columns == ("id", "name", DYNAMIC_FIELD_NAME)
    assert resolve_output_fields(D, ["*"]).all_dynamic
    assert resolve_output_fields(D, ["color", DYNAMIC_FIELD_NAME]) == OutputFields(
        ("id",), (), True
    )
    assert resolve_output_fields(S, ["name"]).columns == ("id", "name")


@pytest.mark.parametrize("bad", ["name", [5], [""], 3])
def test_resolve_output_fields_bad_arguments(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        resolve_output_fields(S, bad)


def test_resolve_output_fields_unknown_names() -> None:
    with pytest.raises(FieldNotFoundError, match="color") as info:
        resolve_output_fields(S, ["name", "color"])
    assert info.value.code == 1700
    with pytest.raises(FieldNotFoundError, match=r"\$meta"):
        resolve_output_fields(S, [DYNAMIC_FIELD_NAME])


# -- primary keys --------------------------------------------------------------------------
def varchar_pk_schema() -> CollectionSchema:
    s = CollectionSchema().add_field("pk", DataType.VARCHAR, is_primary=True, max_length=8)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2).validate()
    return s


def test_pks_from_ids_int() -> None:
    assert pks_from_ids(S, 5) == [5]
    assert pks_from_ids(S, [1, np.int64(2), 3]) == [1, 2, 3]
    assert pks_from_ids(S, np.array([4, 5])) == [4, 5]
    assert pks_from_ids(S, range(2)) == [0, 1]
    assert pks_from_ids(S, []) == []
    assert all(type(x) is int for x in pks_from_ids(S, [np.int32(1)]))


def test_pks_from_ids_str() -> None:
    s = varchar_pk_schema()
    assert pks_from_ids(s, "a") == ["a"]
    assert pks_from_ids(s, ("a", "b")) == ["a", "b"]


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        ([1, "2"], "ids[1]"),
        ([1, 2, True], "ids[2]"),
        ([1.5], "ids[0]"),
        ([2**63], "out of range"),
        ({1, 2}, "set"),
        (None, "NoneType"),
    ],
)
def test_pks_from_ids_refusals(ids: Any, needle: str) -> None:
    with pytest.raises(DataError) as info:
        pks_from_ids(S, ids)
    assert needle in str(info.value)


def test_pks_from_ids_str_refusal_names_type() -> None:
    with pytest.raises(DataError, match=r"ids\[1\].*int.*VARCHAR"):
        pks_from_ids(varchar_pk_schema(), ["a", 1])


# -- comparison with pymilvus + Milvus Lite (optional) ---------------------------------------
def test_output_matches_milvus_lite(tmp_path: Any) -> None:
    pymilvus = pytest.importorskip("pymilvus", reason="pymilvus not installed: no comparison")
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed: no comparison")
    client = pymilvus.MilvusClient(str(tmp_path / "lite.db"))
    try:
        theirs = client.create_schema(enable_dynamic_field=True)
        theirs.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        theirs.add_field("vec", pymilvus.DataType.FLOAT_VECTOR, dim=DIM)
        theirs.add_field("name", pymilvus.DataType.VARCHAR, max_length=8, nullable=True)
        theirs.add_field("j", pymilvus.DataType.JSON, nullable=True)
        index = client.prepare_index_params()
        index.add_index("vec", metric_type="L2", index_type="FLAT")
        client.create_collection("cmp", schema=theirs, index_params=index)
        data = [
            {"id": 1, "vec": [0.1, 0.2, 0.3, 0.4], "name": "a", "j": {"k": 1}, "color": "red"},
            {"id": 2, "vec": [0.5, 0.6, 0.7, 0.8], "name": None, "j": None},
        ]
        client.insert("cmp", data)
        ours = CollectionSchema(enable_dynamic_field=True)
        ours.add_field("id", DataType.INT64, is_primary=True)
        ours.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        ours.add_field("name", DataType.VARCHAR, max_length=8, nullable=True)
        ours.add_field("j", DataType.JSON, nullable=True)
        t = rows_to_table(ours, data)
        for fields in (["*"], ["name", "color"], [DYNAMIC_FIELD_NAME]):
            lite = client.query("cmp", filter="id > 0", output_fields=fields)
            mine = table_to_rows(t, ours, fields)
            assert sorted(map(dict, lite), key=lambda r: r["id"]) == mine, fields
    finally:
        client.close()
