"""Evaluation of filters over Arrow tables: every construct with hand-checked answers,
Milvus's null and NOT semantics, JSON paths, dynamic keys, arrays, LIKE with special
characters, chained ranges, arithmetic, templates, the JSON cache, and a table of the
example expressions from the Milvus documentation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.errors import FieldNotFoundError
from gpuvec.expr import FilterError, JsonCache, compile_filter
from gpuvec.expr import jsoncache as jc
from gpuvec.rows import rows_to_table
from gpuvec.schema import CollectionSchema, DataType

I64_MAX = 2**63 - 1


def make_schema() -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("i8", DataType.INT8)
    s.add_field("score", DataType.DOUBLE, nullable=True)
    s.add_field("f", DataType.FLOAT)
    s.add_field("name", DataType.VARCHAR, max_length=32, nullable=True)
    s.add_field("flag", DataType.BOOL, nullable=True)
    s.add_field("meta", DataType.JSON, nullable=True)
    s.add_field(
        "tags",
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=4,
        max_length=8,
        nullable=True,
    )
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    return s


SCHEMA = make_schema()
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "age": 10,
        "i8": -5,
        "score": 1.5,
        "f": 0.1,
        "name": "abc",
        "flag": True,
        "meta": {"a": 1, "b": {"c": "x"}, "arr": [1, 2, 3], "s": "hello"},
        "tags": ["red", "blue"],
        "nums": [1, 2, 3],
        "color": "red",
        "rank": 3,
    },
    {
        "id": 2,
        "age": None,
        "i8": 127,
        "score": 5.0,
        "f": 1.0,
        "name": None,
        "flag": None,
        "meta": None,
        "tags": None,
        "nums": [],
        "color": "blue",
    },
    {
        "id": 3,
        "age": 30,
        "i8": 0,
        "score": -2.0,
        "f": 2.5,
        "name": "a%c",
        "flag": False,
        "meta": {"a": "1", "arr": [], "e": None},
        "tags": [],
        "nums": [5],
        "rank": 7.5,
    },
    {
        "id": 4,
        "age": 20,
        "i8": -128,
        "score": 0.0,
        "f": -1.0,
        "name": "a_c",
        "flag": True,
        "meta": {"a": 2.0, "arr": [[1, 2], 3], "b": {"c": None}},
        "tags": ["blue"],
        "nums": [2, 2],
    },
    {
        "id": 5,
        "age": -7,
        "i8": 7,
        "score": 100.0,
        "f": 3.0,
        "name": "x\\y\nz",
        "flag": False,
        "meta": {"a": True, "b": []},
        "tags": ["red"],
        "nums": [7, 8, 9, 10],
        "color": "red",
    },
    {
        "id": 6,
        "age": I64_MAX,
        "i8": 1,
        "score": 2.5,
        "f": 0.5,
        "name": "é_ü",
        "flag": True,
        "meta": "[1, 2]",
        "tags": ["x"],
        "nums": [0],
        "rank": "high",
    },
]
for _row in ROWS:
    _row["vec"] = [0.0, 0.0]
TABLE = rows_to_table(SCHEMA, ROWS)


def ids(text: str, params: dict | None = None, table: pa.Table = TABLE, **kw: Any) -> set[int]:
    f = compile_filter(text, SCHEMA, params)
    assert f is not None
    mask = f.evaluate(table, **kw)
    assert mask.dtype == np.bool_ and mask.shape == (table.num_rows,)
    return set(np.asarray(table.column("id"))[mask].tolist())


ALL = {1, 2, 3, 4, 5, 6}
CASES = {
    # comparisons, nulls excluded
    "age > 15": {3, 4, 6},
    "age != 10": {3, 4, 5, 6},
    "age == 9223372036854775807": {6},
    "15 < age": {3, 4, 6},
    "age >= -7": {1, 3, 4, 5, 6},
    "i8 < -100": {4},
    "i8 > 200": set(),
    "i8 < 200": ALL,
    "i8 != 1000": ALL,
    "i8 == -129": set(),
    "i8 >= -128": ALL,
    "f == 0.1": {1},
    "f > 0.1": {2, 3, 5, 6},
    "f == 1": {2},
    "score >= 0": {1, 2, 4, 5, 6},
    "score == -2": {3},
    "score < 0.5": {3, 4},
    "name == 'abc'": {1},
    "name != 'abc'": {3, 4, 5, 6},
    "name > 'a'": {1, 3, 4, 5, 6},
    "name < 'b'": {1, 3, 4},
    "flag == true": {1, 4, 6},
    "flag != true": {3, 5},
    "flag < true": {3, 5},
    # ranges
    "10 <= age < 25": {1, 4},
    "25 > age >= 10": {1, 4},
    "-10 < age <= 10": {1, 5},
    "0.0 <= f <= 0.5": {1, 6},
    "'a' < name < 'b'": {1, 3, 4},
    "-1 < i8 < 1": {3},
    # in
    "age in [10, 30, 99]": {1, 3},
    "age not in [10, 30]": {4, 5, 6},
    "age in []": set(),
    "age not in []": {1, 3, 4, 5, 6},
    "i8 in [127, 1000, -5]": {1, 2},
    "f in [0.1, 3]": {1, 5},
    "name in ['abc', 'zzz', 'é_ü']": {1, 6},
    "flag in [false]": {3, 5},
    # null checks
    "age is null": {2},
    "age is not null": {1, 3, 4, 5, 6},
    "name IS NULL": {2},
    "i8 is null": set(),
    "i8 is not null": ALL,
    "tags is null": {2},
    "meta is not null": {1, 3, 4, 5, 6},
    "flag == false or flag is null": {2, 3, 5},
    "not (age is null)": {1, 3, 4, 5, 6},
    # LIKE with special characters
    "name like 'a%'": {1, 3, 4},
    "name like 'a\\\\%c'": {3},
    "name like 'a\\%c'": {3},
    "name like 'a_c'": {1, 3, 4},
    "name like 'a\\\\_c'": {4},
    "name like '%c'": {1, 3, 4},
    "name like '%\\\\\\\\%'": {5},
    "name like 'x%z'": {5},
    "name like 'x_y_z'": {5},
    "name like '_\\\\_ü'": {6},
    "name like '%'": {1, 3, 4, 5, 6},
    "name like 'abc'": {1},
    "name like '%b%'": {1},
    "name like ''": set(),
    "name LIKE '%\\n%'": {5},
    "not (name like 'a%')": {5, 6},
    "name like 'é%'": {6},
    "name like '___'": {1, 3, 4, 6},
    # arithmetic: int64 wraps, / and % truncate toward zero, a float constant makes doubles
    "age + 5 == 15": {1},
    "age - 1 > 25": {3, 6},
    "age + 1 < 0": {5, 6},
    "age * 2 == 20": {1},
    "age / 3 == -2": {5},
    "age % 3 == -1": {5},
    "age % 3 == 1": {1, 6},
    "100 - age == 90": {1},
    "age / 2.0 == 5.0": {1},
    "age / 4.0 == -1.75": {5},
    "score * 2 > 4": {2, 5, 6},
    "-age < -25": {3, 6},
    "f + 0.5 == 1.0": {6},
    "i8 * 2 == 254": {2},
    "2 * i8 == -256": {4},
    "age * 0 == 0": {1, 3, 4, 5, 6},
    "score - 0.5 == 1": {1},
    "age + 1.5 > 29": {3, 6},
    # JSON paths: other types match nothing, except !=
    "meta['a'] == 1": {1},
    "meta['a'] == 2": {4},
    "meta['a'] == 2.0": {4},
    "meta['a'] != 1": {3, 4, 5, 6},
    "meta['a'] > 0": {1, 4},
    "meta['a'] == '1'": {3},
    "meta['a'] == true": {5},
    "meta['a'] < true": set(),
    "meta['b']['c'] == 'x'": {1},
    'meta["b"]["c"] != \'x\'': {3, 4, 5, 6},
    "meta['arr'][0] == 1": {1},
    "meta[0] == 1": {6},
    "meta['arr'][1] == 3": {4},
    "meta['arr'] == [1, 2, 3]": {1},
    "meta['arr'] == [1.0, 2, 3]": {1},
    "meta['arr'] != [1, 2, 3]": {3, 4, 5, 6},
    "meta['arr'][0] == [1, 2]": {4},
    "meta == [1, 2]": {6},
    "meta['a'] in [1, '1', true]": {1, 3, 5},
    "meta['a'] not in [1]": {3, 4, 5, 6},
    "0 < meta['a'] < 3": {1, 4},
    "'a' <= meta['s'] <= 'z'": {1},
    "meta['a'] + 1 == 2": {1},
    "meta['a'] * 2 == 4": {4},
    "meta['a'] % 2 == 1": {1},
    "meta['s'] like 'he%'": {1},
    "meta['a'] like '%'": {3},
    "meta['zz'] == 1": set(),
    "meta['zz'] != 1": {1, 3, 4, 5, 6},
    # exists / is null on JSON keys (null, [] and {} do not exist, as in Milvus)
    "exists meta['b']": {1},
    "exists meta['e']": set(),
    "exists meta['arr']": {1, 4},
    "exists meta['a']": {1, 3, 4, 5},
    "meta['b']['c'] is null": {2, 3, 4, 5, 6},
    "meta['a'] is not null": {1, 3, 4, 5},
    "not exists meta['b']": {2, 3, 4, 5, 6},
    # JSON containment
    "json_contains(meta['arr'], 2)": {1},
    "json_contains(meta['arr'], [1, 2])": {4},
    "json_contains(meta['arr'], 2.0)": {1},
    "json_contains_all(meta['arr'], [1, 3])": {1},
    "json_contains_any(meta['arr'], [3, 9])": {1, 4},
    "json_contains_all(meta['arr'], [])": {1, 3, 4},
    "json_contains_any(meta['arr'], [])": set(),
    "json_contains(meta, 1)": {6},
    "array_contains(meta['arr'], 3)": {1, 4},
    "array_length(meta['arr']) == 0": {3},
    "array_length(meta['arr']) >= 2": {1, 4},
    "array_length(meta) == 2": {6},
    # dynamic keys ($meta)
    "color == 'red'": {1, 5},
    "color != 'red'": {2, 3, 4, 6},
    "rank > 5": {3},
    "rank == 'high'": {6},
    "$meta['color'] == 'blue'": {2},
    "color is null": {3, 4, 6},
    "exists color": {1, 2, 5},
    "color like 'r%'": {1, 5},
    "rank in [3, 'high']": {1, 6},
    "rank + 1 == 4": {1},
    # ARRAY fields
    "array_contains(tags, 'red')": {1, 5},
    "ARRAY_CONTAINS(tags, 'red')": {1, 5},
    "Array_Contains(tags, 'red')": {1, 5},
    "array_contains_all(nums, [2, 1])": {1},
    "array_contains_any(nums, [0, 5, 99])": {3, 6},
    "array_contains_all(nums, [])": ALL,
    "array_contains_any(tags, [])": set(),
    "not array_contains(tags, 'red')": {3, 4, 6},
    "array_contains_all(nums, [2, 2])": {1, 4},
    "array_length(nums) == 0": {2},
    "array_length(tags) == 0": {3},
    "array_length(nums) >= 3": {1, 5},
    "array_length(nums) + 1 == 2": {3, 6},
    "nums[0] == 2": {4},
    "nums[3] == 10": {5},
    "nums[9] == 1": set(),
    "nums[0] != 1": {3, 4, 5, 6},
    "tags[0] like 'b%'": {4},
    "tags[0] in ['red', 'x']": {1, 5, 6},
    "nums[1] + 1 == 3": {1, 4},
    "1 <= nums[0] < 3": {1, 4},
    "tags[1] == 'blue'": {1},
    "nums[99999999999999999999] == 1": set(),
    "meta[99999999999999999999] == 1": set(),
    "meta['arr'][99999999999999999999] != 1": {1, 3, 4, 5, 6},
    # two fields
    "age > i8": {1, 3, 4, 6},
    "score < f": {3},
    "not (age > i8)": {5},
    "nums[0] < age": {1, 3, 4, 6},
    "f <= score": {1, 2, 4, 5, 6},
    "name == name": {1, 3, 4, 5, 6},
    "flag == flag": {1, 3, 4, 5, 6},
    # NOT and null: Milvus's (res, valid) bitmaps; and/or valid = either valid
    "not (age > 15)": {1, 5},
    "not (age > 15 and score > 0)": {1, 2, 3, 4, 5},
    "not (age > 15 or score > 100)": {1, 2, 5},
    "not (age > 15) and not (score > 100)": {1, 5},
    "not (not (age > 15))": {3, 4, 6},
    "not (age in [10])": {3, 4, 5, 6},
    "not (name like 'a%')  or name is null": {2, 5, 6},
    "not (nums[0] == 2)": {1, 2, 3, 5, 6},
    # constants
    "true": ALL,
    "false": set(),
    "1 < 2": ALL,
    "age > 15 and true": {3, 4, 6},
    "age > 15 or false": {3, 4, 6},
    "not (age > 15 and true)": {1, 2, 5},
}


@pytest.mark.parametrize(("text", "want"), CASES.items())
def test_filter_results(text: str, want: set[int]) -> None:
    assert ids(text) == want


def test_templates() -> None:
    assert ids("age > {a} and name in {names}", {"a": 5, "names": ["abc", "a_c"]}) == {1, 4}
    assert ids("{lo} <= age < {hi}", {"lo": 10, "hi": 25}) == {1, 4}
    assert ids("array_contains(tags, {t})", {"t": "red"}) == {1, 5}
    assert ids("meta['a'] == {v}", {"v": True}) == {5}
    assert ids("age > {a}", {"a": np.int64(15)}) == {3, 4, 6}
    assert ids("name == '{x}'", {"x": "abc"}) == set()


def test_not_over_null_rows() -> None:
    """NOT never turns a null row into a match: the row has no value to negate."""
    for text in (
        "not (age > 0)",
        "not (age < 0)",
        "not (age in [1])",
        "not (name like '%')",
        "not (score != 1)",
        "not (tags[0] == 'a')",
        "not (meta['a'] == 1)",
    ):
        assert 2 not in ids(text), text
    assert 2 in ids("not exists meta['a']")  # exists is always valid, as in Milvus


def test_multi_chunk_and_sliced_tables() -> None:
    chunked = pa.concat_tables([TABLE.slice(0, 2), TABLE.slice(2, 1), TABLE.slice(3)])
    assert chunked.column("age").num_chunks == 3
    sliced = TABLE.slice(2, 3)
    for text, want in CASES.items():
        assert ids(text, table=chunked) == want, text
        assert ids(text, table=sliced) == want & {3, 4, 5}, text


def test_empty_table() -> None:
    empty = TABLE.slice(0, 0)
    for text in ("age > 1", "meta['a'] == 1", "array_contains(nums, 1)", "color == 'x'", "true"):
        assert ids(text, table=empty) == set()


def test_missing_columns() -> None:
    f = compile_filter("i8 > 1", SCHEMA)
    assert f is not None
    with pytest.raises(FieldNotFoundError, match='column "i8"'):  # a required field: a bug
        f.evaluate(TABLE.drop_columns(["i8"]))
    # a nullable field missing from rows written before add_collection_field: all null
    f = compile_filter("age > 1 or age is null", SCHEMA)
    assert f is not None and f.evaluate(TABLE.drop_columns(["age"])).all()
    f = compile_filter("age > 1", SCHEMA)
    assert f is not None and not f.evaluate(TABLE.drop_columns(["age"])).any()
    f = compile_filter("color == 'red' or color is null", SCHEMA)  # no $meta: no dynamic keys
    assert f is not None and f.evaluate(TABLE.drop_columns(["$meta"])).all()


def test_only_needed_columns_are_read() -> None:
    f = compile_filter("age > 15 and meta['a'] == 1", SCHEMA)
    assert f is not None and f.fields == {"age", "meta"}
    narrow = TABLE.select(["age", "meta"])
    assert f.evaluate(narrow).tolist() == [False] * 6


def test_json_cache_decodes_each_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real = jc.decode_json_column

    def counting(arr: pa.Array) -> Any:
        decoded.append(len(arr))
        return real(arr)

    monkeypatch.setattr(jc, "decode_json_column", counting)
    cache = JsonCache()
    head = TABLE.slice(0, 3)
    assert ids("meta['a'] == 1", table=head, cache=cache) == {1}
    assert ids("meta['b']['c'] == 'x' or meta['a'] == 1", table=head, cache=cache) == {1}
    assert decoded == [3]
    assert ids("meta['a'] == 2", cache=cache) == {4}  # the table grew: only the tail
    assert decoded == [3, 3]
    assert ids("meta['a'] == 1 or json_contains(meta['arr'], 3)", table=head, cache=cache) == {1}
    assert ids("json_contains(meta['arr'], 3)", cache=cache) == {1, 4}
    assert ids("color == 'red'", cache=cache) == {1, 5}
    assert decoded == [3, 3, 6] and cache.decoded_rows == {"meta": 6, "$meta": 6}
    cache.clear()
    assert cache.decoded_rows == {}


def test_json_cache_extends_lazy_parts() -> None:
    cache = JsonCache()
    col = TABLE.column("meta").combine_chunks()
    head, _ = cache.values("meta", col.slice(0, 2), ("arr",))
    head.elements(), head.canon(), head.exists()
    full, valid = cache.values("meta", col, ("arr",))
    assert valid is not None and valid.tolist() == [True, False, True, True, True, True]
    offsets, elems = full.elements()
    assert offsets.tolist() == [0, 3, 3, 3, 5, 5, 5] and elems.raw == [1, 2, 3, [1, 2], 3]
    assert full.canon().to_pylist() == ["[1,2,3]", None, "[]", "[[1,2],3]", None, None]
    older, _ = cache.values("meta", col.slice(0, 4), ("arr",))
    assert older.elements()[0].tolist() == [0, 3, 3, 3, 5] and len(older.elements()[1]) == 5


def test_json_cache_keeps_a_bounded_number_of_paths() -> None:
    cache = JsonCache()
    col = TABLE.column("meta").combine_chunks()
    for i in range(jc.MAX_CACHED_PATHS + 20):
        cache.values("meta", col, (f"k{i}",))
    assert len(cache._paths) == jc.MAX_CACHED_PATHS
    assert ("meta", ("k0",)) not in cache._paths and ("meta", ("k147",)) in cache._paths


def test_json_values_types() -> None:
    jv = jc.JsonValues([1, 1.5, "s", True, None, jc.MISSING, [1], {"a": None}, 2**70, [None]])
    assert jv.kind.tolist() == [
        jc.K_INT,
        jc.K_FLOAT,
        jc.K_STR,
        jc.K_BOOL,
        jc.K_NULL,
        jc.K_MISSING,
        jc.K_LIST,
        jc.K_OBJ,
        jc.K_FLOAT,
        jc.K_LIST,
    ]
    assert jv.floats[8] == float(2**70) and jv.ints[0] == 1 and jv.bools[3]
    assert jv.exists().tolist() == [True, True, True, True, False, False, True, False, True, False]
    assert (
        jc.canonical({"b": [1.0, True], "a": 2**64}) == '{"a":1.8446744073709552e+19,"b":[1,true]}'
    )
    assert jc.walk({"a": [{"b": 1}]}, ("a", "0", "b")) == 1
    assert jc.walk({"a": [1]}, ("a", "01")) is jc.MISSING
    assert jc.walk({"a": [1]}, ("a", "²")) is jc.MISSING
    assert jc.walk([1, 2], ("1",)) == 2 and jc.walk({"0": "x"}, ("0",)) == "x"


def test_float32_semantics() -> None:
    """FLOAT fields compare with the constant cast to float32, as Milvus does."""
    assert ids("f == 0.1") == {1}
    assert ids("f in [0.1]") == {1}
    assert ids("0.09999999 < f < 0.1000001") == {1}
    assert ids("f == 0.10000000149011612") == {1}  # the float32 value itself


# -- Milvus documentation examples --------------------------------------------------------
def docs_schema() -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("status", DataType.VARCHAR, max_length=16)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("price", DataType.DOUBLE)
    s.add_field("rating", DataType.INT64)
    s.add_field("discount", DataType.INT64)
    s.add_field("color", DataType.VARCHAR, max_length=16)
    s.add_field("name", DataType.VARCHAR, max_length=32)
    s.add_field("product", DataType.JSON)
    s.add_field(
        "history_temperatures", DataType.ARRAY, element_type=DataType.INT64, max_capacity=16
    )
    return s


def docs_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    colors = ["red", "green", "blue", "pink_8682", "yellow"]
    names = ["Product A", "Product B", "ProductXYZ", "SampleXYZ", "Super Product", "Gadget"]
    tags = [["electronics", "sale", "new"], ["sale"], ["new", "clearance"], []]
    rows = []
    for i in range(60):
        rows.append(
            {
                "id": i,
                "vec": [0.0, 0.0],
                "status": ["active", "inactive"][i % 2],
                "age": None if i % 7 == 0 else int(rng.integers(18, 60)),
                "price": float([80, 150, 600, 1200, 1900][i % 5] + i),
                "rating": int(i % 6),
                "discount": int(rng.integers(0, 30)),
                "color": colors[i % 5],
                "name": names[i % 6],
                "product": {
                    "model": ["JSN-087", "JSN-100"][i % 2],
                    "price": int(rng.integers(1000, 2500)),
                    "tags": tags[i % 4],
                },
                "history_temperatures": [
                    int(x) for x in rng.integers(18, 30, size=12 if i % 3 else 5)
                ],
                "city": ["北京", "上海", "深圳"][i % 3],
            }
        )
    return rows


DOCS: list[tuple[str, Any]] = [
    ('status == "active"', lambda r: r["status"] == "active"),
    ('status != "inactive"', lambda r: r["status"] != "inactive"),
    ("age > 30", lambda r: r["age"] is not None and r["age"] > 30),
    ("price < 100", lambda r: r["price"] < 100),
    ("rating >= 4", lambda r: r["rating"] >= 4),
    ("discount <= 10", lambda r: r["discount"] <= 10),
    ('color in ["red", "green", "blue"]', lambda r: r["color"] in ("red", "green", "blue")),
    ('name LIKE "Prod%"', lambda r: r["name"].startswith("Prod")),
    ('name LIKE "%XYZ"', lambda r: r["name"].endswith("XYZ")),
    ('name LIKE "%Pro%"', lambda r: "Pro" in r["name"]),
    ('color like "pink%"', lambda r: r["color"].startswith("pink")),
    (
        'product["model"] == "JSN-087" and product["price"] < 1850',
        lambda r: r["product"]["model"] == "JSN-087" and r["product"]["price"] < 1850,
    ),
    (
        "history_temperatures[10] > 23",
        lambda r: len(r["history_temperatures"]) > 10 and r["history_temperatures"][10] > 23,
    ),
    ('json_contains(product["tags"], "sale")', lambda r: "sale" in r["product"]["tags"]),
    (
        'json_contains_all(product["tags"], ["electronics", "sale", "new"])',
        lambda r: {"electronics", "sale", "new"} <= set(r["product"]["tags"]),
    ),
    (
        'json_contains_any(product["tags"], ["electronics", "new", "clearance"])',
        lambda r: bool({"electronics", "new", "clearance"} & set(r["product"]["tags"])),
    ),
    ("ARRAY_CONTAINS(history_temperatures, 23)", lambda r: 23 in r["history_temperatures"]),
    (
        "ARRAY_CONTAINS_ALL(history_temperatures, [23, 24])",
        lambda r: {23, 24} <= set(r["history_temperatures"]),
    ),
    (
        "ARRAY_CONTAINS_ANY(history_temperatures, [23, 24])",
        lambda r: bool({23, 24} & set(r["history_temperatures"])),
    ),
    ("ARRAY_LENGTH(history_temperatures) < 10", lambda r: len(r["history_temperatures"]) < 10),
    ("age IS NULL", lambda r: r["age"] is None),
    ("age IS NOT NULL", lambda r: r["age"] is not None),
    ("age > 18 AND age < 30", lambda r: r["age"] is not None and 18 < r["age"] < 30),
    ("18 < age < 30", lambda r: r["age"] is not None and 18 < r["age"] < 30),
    ('price > 500 || color == "red"', lambda r: r["price"] > 500 or r["color"] == "red"),
    ('NOT (color == "red")', lambda r: r["color"] != "red"),
    ('city == "北京"', lambda r: r["city"] == "北京"),
    ("price * 0.9 < 100", lambda r: r["price"] * 0.9 < 100),
    ("rating % 2 == 0", lambda r: r["rating"] % 2 == 0),
]


@pytest.mark.parametrize(("text", "predicate"), DOCS)
def test_milvus_documented_examples(text: str, predicate: Any) -> None:
    schema = docs_schema()
    rows = docs_rows()
    table = rows_to_table(schema, rows)
    f = compile_filter(text, schema)
    assert f is not None
    want = [bool(predicate(r)) for r in rows]
    assert any(want) and not all(want), text  # informative data
    assert f.evaluate(table).tolist() == want


def test_documented_template_example() -> None:
    schema = docs_schema()
    rows = docs_rows()
    f = compile_filter(
        "age > {age} AND city in {city}", schema, {"age": 25, "city": ["北京", "上海"]}
    )
    assert f is not None
    want = [r["age"] is not None and r["age"] > 25 and r["city"] in ("北京", "上海") for r in rows]
    assert f.evaluate(rows_to_table(schema, rows)).tolist() == want


def test_evaluate_errors_are_clean() -> None:
    with pytest.raises(FilterError, match="division by zero"):
        compile_filter("age / 0 == 1", SCHEMA)
    with pytest.raises(FilterError, match="modulo by zero"):
        compile_filter("meta['a'] % (2 - 2) == 1", SCHEMA)
