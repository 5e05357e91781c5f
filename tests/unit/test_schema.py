"""Schema rules (Milvus's create-collection limits), persistence, describe and Arrow types."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from gpuvec.errors import FieldNotFoundError, InvalidArgumentError, SchemaError
from gpuvec.schema import (
    DYNAMIC_FIELD_NAME,
    CollectionSchema,
    DataType,
    FieldSchema,
    arrow_schema,
    arrow_type,
    validate_name,
)


def base(**kw: Any) -> CollectionSchema:
    s = CollectionSchema(**kw)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=8)
    return s


def with_field(name: str, dtype: DataType, **kw: Any) -> CollectionSchema:
    return base().add_field(name, dtype, **kw)


def rejects(schema: CollectionSchema, *needles: str) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        schema.validate()
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    return info.value


# -- DataType ------------------------------------------------------------------------------
def test_datatype_values_match_milvus() -> None:
    expected = {
        "NONE": 0, "BOOL": 1, "INT8": 2, "INT16": 3, "INT32": 4, "INT64": 5, "FLOAT": 10,
        "DOUBLE": 11, "STRING": 20, "VARCHAR": 21, "ARRAY": 22, "JSON": 23, "GEOMETRY": 24,
        "TEXT": 25, "TIMESTAMPTZ": 26, "BINARY_VECTOR": 100, "FLOAT_VECTOR": 101,
        "FLOAT16_VECTOR": 102, "BFLOAT16_VECTOR": 103, "SPARSE_FLOAT_VECTOR": 104,
        "INT8_VECTOR": 105, "STRUCT": 201, "UNKNOWN": 999,
    }  # fmt: skip
    assert {m.name: m.value for m in DataType} == expected


@pytest.mark.parametrize("raw", [DataType.VARCHAR, 21, "VARCHAR", "varchar", " VarChar "])
def test_datatype_parse_accepts_enum_int_and_name(raw: Any) -> None:
    assert DataType.parse(raw) is DataType.VARCHAR


@pytest.mark.parametrize("raw", [7, "NOPE", True, None, 1.5j])
def test_datatype_parse_rejects_unknown(raw: Any) -> None:
    with pytest.raises(SchemaError, match="unknown data type"):
        DataType.parse(raw)


def test_is_vector() -> None:
    assert DataType.FLOAT_VECTOR.is_vector and DataType.SPARSE_FLOAT_VECTOR.is_vector
    assert not DataType.INT64.is_vector and not DataType.STRUCT.is_vector


# -- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "_x", "A_1", "x" * 255, "collection_2"])
def test_valid_names(name: str) -> None:
    assert validate_name("collection", name) == name
    assert validate_name("field", name) == name


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "should not be empty"),
        (
            "1abc",
            "Invalid collection name: 1abc. the first character of a collection name "
            "must be an underscore or letter",
        ),
        (
            "a-b",
            "Invalid collection name: a-b. collection name can only contain numbers, "
            "letters and underscores",
        ),
        ("a b", "only contain"),
        ("é", "first character"),
        ("x" * 256, "must be less than 256 characters"),
        (5, "must be a string"),
    ],
)
def test_invalid_collection_names(name: Any, needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle) as info:
        validate_name("collection", name)
    assert not isinstance(info.value, SchemaError)


def test_partition_names_allow_leading_digit_and_dash_as_milvus() -> None:
    assert validate_name("partition", "2024-01") == "2024-01"
    with pytest.raises(InvalidArgumentError):
        validate_name("partition", "a b")


@pytest.mark.parametrize("name", ["$meta", "like", "and", "TRUE", "null", "NULL", "RowID"])
def test_field_names_reject_keywords(name: str) -> None:
    with pytest.raises(SchemaError):
        validate_name("field", name)


def test_validate_checks_collection_name() -> None:
    with pytest.raises(InvalidArgumentError, match="1bad"):
        base().validate("1bad")
    base().validate("good_name")


# -- construction --------------------------------------------------------------------------
def test_add_field_is_chainable_and_mirrors_pymilvus_params() -> None:
    s = CollectionSchema(description="d", enable_dynamic_field=True)
    out = s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=36)
    assert out is s
    s.add_field("v", DataType.FLOAT_VECTOR, dim="16")  # pymilvus sends type params as text
    s.add_field("t", DataType.ARRAY, element_type="INT64", max_capacity=5, nullable=True)
    s.validate("c")
    assert s.primary_field is not None and s.primary_field.name == "id"
    assert s.field("v").dim == 16 and s.field("v").params == {"dim": 16}
    assert s.field("t").element_type is DataType.INT64 and s.field("t").nullable
    assert s.field_names == ["id", "v", "t"] and len(s) == 3 and "t" in s
    assert [f.name for f in s.vector_fields] == ["v"]
    assert s.enable_dynamic_field and s.description == "d"


def test_inapplicable_type_params_are_ignored_like_pymilvus() -> None:
    f = FieldSchema("n", DataType.INT64, dim=3, max_length=4, max_capacity=2)
    assert f.params == {} and f.dim is None and f.max_length is None


def test_extra_params_are_kept() -> None:
    f = FieldSchema("t", DataType.VARCHAR, max_length=8, mmap_enabled=True)
    assert f.params == {"max_length": 8, "mmap_enabled": True}


def test_field_lookup_unknown_raises_field_not_found() -> None:
    with pytest.raises(FieldNotFoundError, match="nope"):
        base().field("nope")


def test_schema_auto_id_applies_to_primary_key() -> None:
    s = base(auto_id=True)
    assert s.auto_id and s.primary_field is not None and s.primary_field.auto_id
    s.auto_id = False
    assert not s.primary_field.auto_id


def test_primary_field_kwarg_marks_the_field() -> None:
    fields = [FieldSchema("k", DataType.INT64), FieldSchema("v", DataType.FLOAT_VECTOR, dim=4)]
    s = CollectionSchema(fields, primary_field="k", partition_key_field=None)
    assert s.primary_field is not None and s.primary_field.name == "k"
    assert fields[0].is_primary is False  # the schema copies its fields


def test_second_primary_key_is_refused_at_add_field() -> None:
    with pytest.raises(SchemaError, match="more than one primary key"):
        base().add_field("id2", DataType.INT64, is_primary=True)


def test_auto_id_on_non_primary_is_refused() -> None:
    with pytest.raises(SchemaError, match="auto_id"):
        FieldSchema("x", DataType.INT64, auto_id=True)


@pytest.mark.parametrize("flag", ["is_primary", "nullable", "auto_id", "is_partition_key"])
def test_flags_must_be_bool(flag: str) -> None:
    with pytest.raises(SchemaError, match=flag):
        FieldSchema("x", DataType.INT64, **{flag: "yes"})


@pytest.mark.parametrize("bad", [1.5, True, "abc", [8]])
def test_int_params_must_be_ints(bad: Any) -> None:
    with pytest.raises(SchemaError, match="dim"):
        FieldSchema("v", DataType.FLOAT_VECTOR, dim=bad)


def test_fields_must_be_field_schemas() -> None:
    with pytest.raises(SchemaError):
        CollectionSchema([{"name": "x"}])  # type: ignore[list-item]


# -- validation: primary key ---------------------------------------------------------------
def test_valid_schema_passes() -> None:
    base().validate("c")


def test_no_primary_key() -> None:
    s = CollectionSchema().add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    rejects(s, "primary key is not specified")


@pytest.mark.parametrize("dtype", [DataType.INT32, DataType.FLOAT, DataType.BOOL])
def test_primary_key_type(dtype: DataType) -> None:
    s = CollectionSchema().add_field("id", dtype, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    rejects(s, "'id'", "INT64 or VARCHAR", dtype.name)


def test_varchar_primary_key_needs_max_length() -> None:
    s = CollectionSchema().add_field("id", DataType.VARCHAR, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    rejects(s, "'id'", "max_length")


def test_auto_id_allowed_on_varchar_primary_key_as_in_milvus() -> None:
    s = CollectionSchema().add_field(
        "id", DataType.VARCHAR, is_primary=True, auto_id=True, max_length=64
    )
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=4).validate()
    assert s.auto_id


def test_primary_key_cannot_be_nullable_or_have_default() -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True, nullable=True)
    rejects(s.add_field("vec", DataType.FLOAT_VECTOR, dim=4), "'id'", "nullable")
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True, default_value=1)
    rejects(s.add_field("vec", DataType.FLOAT_VECTOR, dim=4), "'id'", "default_value")


def test_two_primary_keys_via_constructor() -> None:
    f1 = FieldSchema("a", DataType.INT64, is_primary=True)
    f2 = FieldSchema("b", DataType.INT64, is_primary=True)
    with pytest.raises(SchemaError, match="more than one primary key"):
        CollectionSchema([f1, f2])


# -- validation: vectors -------------------------------------------------------------------
def test_needs_a_vector_field() -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    rejects(s, "does not contain vector field")


@pytest.mark.parametrize("dim", [0, 1, -4, 32769])
def test_dim_out_of_range(dim: int) -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    rejects(s.add_field("v", DataType.FLOAT_VECTOR, dim=dim), "'v'", str(dim), "2 ~ 32768")


@pytest.mark.parametrize("dim", [2, 32768])
def test_dim_bounds_accepted(dim: int) -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=dim).validate()


def test_vector_needs_dim() -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    rejects(s.add_field("v", DataType.FLOAT_VECTOR), "'v'", "dim")


def test_sparse_vector_fields_take_no_dim_and_no_nulls() -> None:
    schema = with_field("sv", DataType.SPARSE_FLOAT_VECTOR, dim=16)  # dim: ignored
    schema.validate()
    assert schema.field("sv").dim is None and arrow_type(schema.field("sv")) == pa.binary()
    rejects(with_field("sv", DataType.SPARSE_FLOAT_VECTOR, nullable=True), "'sv'",
            "vector type not support null")  # fmt: skip
    rejects(with_field("g", DataType.GEOMETRY), "'g'", "GEOMETRY", "not supported yet")


@pytest.mark.parametrize(
    ("dtype", "dim", "arrow"),
    [
        (DataType.FLOAT16_VECTOR, 16, pa.list_(pa.float16(), 16)),
        (DataType.BFLOAT16_VECTOR, 16, pa.list_(pa.uint16(), 16)),  # bfloat16 bits
        (DataType.INT8_VECTOR, 16, pa.list_(pa.int8(), 16)),
        (DataType.BINARY_VECTOR, 64, pa.list_(pa.uint8(), 8)),  # packed: dim / 8 bytes
    ],
)
def test_other_vector_types(dtype: DataType, dim: int, arrow: pa.DataType) -> None:
    s = with_field("other", dtype, dim=dim)
    s.validate()
    assert arrow_type(s.field("other")) == arrow


def test_binary_dim_multiple_of_8() -> None:
    for dim in (12, 0, 8 * 32768 + 8):
        rejects(with_field("b", DataType.BINARY_VECTOR, dim=dim), "'b'", "multiple of 8")


def test_nullable_vector_not_supported_yet() -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    rejects(s.add_field("v", DataType.FLOAT_VECTOR, dim=4, nullable=True), "'v'", "nullable")


def test_vector_cannot_have_default() -> None:
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=4, default_value=1.0)
    rejects(s, "'v'", "default_value")


def test_at_most_four_vector_fields() -> None:
    s = base()
    for i in range(3):
        s.add_field(f"v{i}", DataType.FLOAT_VECTOR, dim=4)
    s.validate()
    rejects(s.add_field("v9", DataType.FLOAT_VECTOR, dim=4), "vector field", "4", "5")


# -- validation: scalars, arrays, limits ---------------------------------------------------
@pytest.mark.parametrize("length", [0, -1, 65536])
def test_varchar_max_length_range(length: int) -> None:
    rejects(with_field("t", DataType.VARCHAR, max_length=length), "'t'", str(length), "65535")


def test_varchar_max_length_bounds_accepted() -> None:
    with_field("a", DataType.VARCHAR, max_length=1).add_field(
        "b", DataType.VARCHAR, max_length=65535
    ).validate()


def test_string_type_is_refused_with_hint() -> None:
    rejects(with_field("s", DataType.STRING), "'s'", "VARCHAR")


@pytest.mark.parametrize("dtype", [DataType.TEXT, DataType.GEOMETRY, DataType.TIMESTAMPTZ])
def test_newer_scalar_types_not_supported_yet(dtype: DataType) -> None:
    rejects(with_field("x", dtype, max_length=10), "'x'", "not supported yet")


@pytest.mark.parametrize("dtype", [DataType.NONE, DataType.UNKNOWN])
def test_none_and_unknown_types_invalid(dtype: DataType) -> None:
    rejects(with_field("x", dtype), "'x'", "not valid")


def test_array_needs_element_type() -> None:
    rejects(with_field("a", DataType.ARRAY, max_capacity=4), "'a'", "element_type")


@pytest.mark.parametrize(
    "et", [DataType.ARRAY, DataType.JSON, DataType.FLOAT_VECTOR, DataType.STRING]
)
def test_array_element_type_must_be_scalar(et: DataType) -> None:
    rejects(with_field("a", DataType.ARRAY, element_type=et, max_capacity=4), "'a'", et.name)


@pytest.mark.parametrize("cap", [0, 4097, -3])
def test_array_capacity_range(cap: int) -> None:
    s = with_field("a", DataType.ARRAY, element_type=DataType.INT64, max_capacity=cap)
    rejects(s, "'a'", str(cap), "4096")


def test_array_needs_capacity() -> None:
    rejects(with_field("a", DataType.ARRAY, element_type=DataType.INT64), "'a'", "max_capacity")


def test_varchar_array_needs_max_length() -> None:
    s = with_field("a", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4)
    rejects(s, "'a'", "max_length")
    with_field(
        "a", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8
    ).validate()


def test_duplicate_field_names() -> None:
    rejects(with_field("vec", DataType.INT64), "duplicated", "'vec'")


@pytest.mark.parametrize("name", ["$meta", "1x", "a.b", "like"])
def test_invalid_field_names_in_schema(name: str) -> None:
    rejects(with_field(name, DataType.INT64), name)


def test_at_most_64_fields() -> None:
    s = base()
    for i in range(62):
        s.add_field(f"f{i}", DataType.INT64)
    s.validate()
    rejects(s.add_field("f62", DataType.INT64), "64", "65")


def test_explicit_dynamic_field_refused() -> None:
    rejects(with_field("d", DataType.JSON, is_dynamic=True), "'d'", "dynamic")


def test_partition_key_rules() -> None:
    with_field("p", DataType.VARCHAR, max_length=8, is_partition_key=True).validate()
    rejects(with_field("p", DataType.FLOAT, is_partition_key=True), "'p'", "partition key")
    rejects(with_field("p", DataType.INT64, is_partition_key=True, nullable=True), "nullable")
    s = with_field("p", DataType.INT64, is_partition_key=True)
    rejects(s.add_field("q", DataType.INT64, is_partition_key=True), "partition_key", "p", "q")
    s = CollectionSchema().add_field("id", DataType.INT64, is_primary=True, is_partition_key=True)
    rejects(s.add_field("v", DataType.FLOAT_VECTOR, dim=4), "'id'", "partition key")


def test_clustering_key_type() -> None:
    with_field("c", DataType.INT32, is_clustering_key=True).validate()
    rejects(with_field("c", DataType.JSON, is_clustering_key=True), "'c'", "clustering")


# -- default values ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "value", "kw"),
    [
        (DataType.BOOL, True, {}),
        (DataType.INT8, -128, {}),
        (DataType.INT16, 32767, {}),
        (DataType.INT32, 7, {}),
        (DataType.INT64, 2**63 - 1, {}),
        (DataType.FLOAT, 1, {}),
        (DataType.DOUBLE, 2.5, {}),
        (DataType.VARCHAR, "héllo", {"max_length": 6}),
    ],
)
def test_default_values_accepted(dtype: DataType, value: Any, kw: dict[str, Any]) -> None:
    s = with_field("d", dtype, default_value=value, nullable=True, **kw)
    s.validate()
    got = s.field("d").default_value
    assert got == value and type(got) is (float if dtype in (10, 11) else type(value))


@pytest.mark.parametrize(
    ("dtype", "value", "kw", "needle"),
    [
        (DataType.BOOL, 1, {}, "does not match"),
        (DataType.INT32, True, {}, "does not match"),
        (DataType.INT32, "x", {}, "does not match"),
        (DataType.INT32, 1.5, {}, "does not match"),
        (DataType.INT8, 300, {}, "out of range"),
        (DataType.INT16, -40000, {}, "out of range"),
        (DataType.FLOAT, "1", {}, "does not match"),
        (DataType.FLOAT, float("nan"), {}, "does not match"),
        (DataType.FLOAT, 1e39, {}, "out of range"),
        (DataType.VARCHAR, 5, {"max_length": 8}, "does not match"),
        (DataType.VARCHAR, "ééé", {"max_length": 5}, "max_length"),
        (DataType.JSON, {"a": 1}, {}, "does not support default_value"),
        (
            DataType.ARRAY,
            [1],
            {"element_type": DataType.INT64, "max_capacity": 3},
            "does not support default_value",
        ),
    ],
)
def test_default_values_refused(
    dtype: DataType, value: Any, kw: dict[str, Any], needle: str
) -> None:
    rejects(with_field("d", dtype, default_value=value, **kw), "'d'", needle)


def test_numpy_default_is_coerced() -> None:
    import numpy as np

    s = with_field("d", DataType.INT32, default_value=np.int64(4))
    s.validate()
    assert s.field("d").default_value == 4 and type(s.field("d").default_value) is int


# -- persistence and describe ---------------------------------------------------------------
def full_schema() -> CollectionSchema:
    s = CollectionSchema(description="all types", enable_dynamic_field=True, auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True, description="key")
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    s.add_field("vec2", DataType.FLOAT_VECTOR, dim=4, mmap_enabled=True)
    s.add_field("name", DataType.VARCHAR, max_length=32, nullable=True, default_value="n/a")
    s.add_field("flag", DataType.BOOL, default_value=False)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32, is_clustering_key=True)
    s.add_field("f", DataType.FLOAT, default_value=0.5)
    s.add_field("d", DataType.DOUBLE, nullable=True)
    s.add_field("j", DataType.JSON, nullable=True)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=3)
    s.add_field("part", DataType.INT64, is_partition_key=True)
    s.validate("everything")
    return s


def test_to_dict_is_json_and_round_trips() -> None:
    s = full_schema()
    text = json.dumps(s.to_dict())
    back = CollectionSchema.from_dict(json.loads(text))
    assert back == s
    assert back.to_dict() == s.to_dict()
    assert back.auto_id and back.enable_dynamic_field and back.description == "all types"
    assert back.field("tags").element_type is DataType.VARCHAR
    assert back.field("name").default_value == "n/a" and back.field("name").nullable
    assert back.field("vec2").params == {"dim": 4, "mmap_enabled": True}
    back.validate("everything")


def test_copy_is_independent() -> None:
    s = full_schema()
    c = s.copy()
    c.add_field("extra", DataType.INT64)
    assert "extra" not in s and c != s


def test_field_to_dict_shape() -> None:
    f = FieldSchema("id", DataType.VARCHAR, "d", is_primary=True, auto_id=True, max_length=9)
    assert f.to_dict() == {
        "name": "id",
        "description": "d",
        "type": 21,
        "params": {"max_length": 9},
        "is_primary": True,
        "auto_id": True,
    }
    assert FieldSchema.from_dict(f.to_dict()) == f


def test_describe_matches_pymilvus_shape() -> None:
    d = full_schema().describe()
    assert d["auto_id"] is True and d["enable_dynamic_field"] is True
    assert d["functions"] == [] and d["description"] == "all types"
    fields = {f["name"]: f for f in d["fields"]}
    assert DYNAMIC_FIELD_NAME not in fields
    assert fields["id"] == {
        "field_id": 100,
        "name": "id",
        "description": "key",
        "type": DataType.INT64,
        "params": {},
        "auto_id": True,
        "is_primary": True,
    }
    assert fields["vec"]["field_id"] == 101 and fields["vec"]["params"] == {"dim": 16}
    assert fields["tags"]["element_type"] is DataType.VARCHAR
    assert fields["tags"]["params"] == {"max_length": 8, "max_capacity": 4}
    assert fields["name"]["nullable"] is True and fields["name"]["default_value"] == "n/a"
    assert fields["part"]["is_partition_key"] is True
    assert fields["i32"]["is_clustering_key"] is True
    assert "nullable" not in fields["i8"] and "is_primary" not in fields["i8"]


# -- Arrow ---------------------------------------------------------------------------------
def test_arrow_schema_types() -> None:
    a = arrow_schema(full_schema())
    expect = {
        "id": pa.int64(),
        "vec": pa.list_(pa.float32(), 16),
        "vec2": pa.list_(pa.float32(), 4),
        "name": pa.string(),
        "flag": pa.bool_(),
        "i8": pa.int8(),
        "i16": pa.int16(),
        "i32": pa.int32(),
        "f": pa.float32(),
        "d": pa.float64(),
        "j": pa.string(),
        "tags": pa.list_(pa.string()),
        "nums": pa.list_(pa.float32()),
        "part": pa.int64(),
        DYNAMIC_FIELD_NAME: pa.string(),
    }
    assert a.names == list(expect)
    for name, typ in expect.items():
        assert a.field(name).type == typ, name
    assert pa.types.is_fixed_size_list(a.field("vec").type)


def test_arrow_schema_nullability() -> None:
    a = arrow_schema(full_schema())
    assert a.field("name").nullable and a.field("d").nullable and a.field("j").nullable
    for name in ("id", "vec", "flag", "i8", "tags", DYNAMIC_FIELD_NAME):
        assert not a.field(name).nullable, name


def test_arrow_schema_without_dynamic_and_pk() -> None:
    a = arrow_schema(base(), include_pk=False)
    assert a.names == ["vec"]
    assert arrow_schema(base()).names == ["id", "vec"]


def test_arrow_type_unmapped() -> None:
    with pytest.raises(SchemaError):
        arrow_type(FieldSchema("x", DataType.GEOMETRY))


# -- comparison with pymilvus (optional) ---------------------------------------------------
def test_datatype_and_schema_dict_agree_with_pymilvus() -> None:
    pymilvus = pytest.importorskip("pymilvus", reason="pymilvus not installed: no comparison")
    for m in pymilvus.DataType:
        if not m.name.startswith("_"):
            assert DataType[m.name].value == m.value, m.name
    theirs = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    theirs.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    theirs.add_field("v", pymilvus.DataType.FLOAT_VECTOR, dim=8)
    theirs.add_field("t", pymilvus.DataType.VARCHAR, max_length=10, nullable=True)
    ours = CollectionSchema(enable_dynamic_field=True)
    ours.add_field("id", pymilvus.DataType.INT64, is_primary=True)  # their enum works too
    ours.add_field("v", pymilvus.DataType.FLOAT_VECTOR, dim=8)
    ours.add_field("t", pymilvus.DataType.VARCHAR, max_length=10, nullable=True)
    td, od = theirs.to_dict(), ours.to_dict()
    assert td["enable_dynamic_field"] == od["enable_dynamic_field"]
    assert td["auto_id"] == od["auto_id"]
    for tf, of in zip(td["fields"], od["fields"], strict=True):
        assert (tf["name"], int(tf["type"]), tf.get("params", {})) == (
            of["name"],
            of["type"],
            of.get("params", {}),
        )
        assert bool(tf.get("is_primary")) == bool(of.get("is_primary"))
        assert bool(tf.get("nullable")) == bool(of.get("nullable"))
