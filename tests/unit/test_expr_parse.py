"""Parsing and type checking of filters: literals, every construct, precedence, templates,
error messages (position + token + filter text), depth and length limits."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.expr import MAX_DEPTH, MAX_FILTER_BYTES, FilterError, compile_filter
from gpuvec.expr import plan as p
from gpuvec.expr.likes import compile_like
from gpuvec.expr.parser import parse
from gpuvec.schema import CollectionSchema, DataType


def make_schema(*, dynamic: bool = True) -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=dynamic)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("i8", DataType.INT8)
    s.add_field("score", DataType.DOUBLE)
    s.add_field("f", DataType.FLOAT)
    s.add_field("name", DataType.VARCHAR, max_length=32)
    s.add_field("flag", DataType.BOOL)
    s.add_field("meta", DataType.JSON, nullable=True)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    return s


SCHEMA = make_schema()
STRICT = make_schema(dynamic=False)


def plan_of(text: str, params: dict | None = None, schema: CollectionSchema = SCHEMA) -> p.Pred:
    f = compile_filter(text, schema, params)
    assert f is not None
    return f.plan


def value_of(literal: str) -> object:
    """The constant a literal parses to (compared with a JSON key, which takes any type)."""
    node = plan_of(f"meta['k'] == {literal}")
    assert isinstance(node, p.Cmp)
    return node.value


def error_of(text: str, params: dict | None = None, schema: CollectionSchema = SCHEMA) -> str:
    with pytest.raises(FilterError) as info:
        compile_filter(text, schema, params)
    return str(info.value)


# -- literals ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("42", 42),
        ("0", 0),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("0B11", 3),
        ("00", 0),
        ("-5", -5),
        ("+5", 5),
        ("- -5", 5),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("1.5E-2", 0.015),
        ("2.5e+1", 25.0),
        ("0x1.8p1", 3.0),
        ("-0.25", -0.25),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ('"abc"', "abc"),
        ("'abc'", "abc"),
        ('""', ""),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"a\\nb\\tc\\\\d"', "a\nb\tc\\d"),
        ('"\\x41\\u00e9\\U0001F600\\101"', "Aé😀A"),
        ('"a\\%b"', "a\\%b"),
        ("'\"'", '"'),
        ('"\'"', "'"),
        ('r"a\\b"', "a\\b"),
        ("R'a\\'b'", "a\\'b"),
        ('"漢字"', "漢字"),
        ("[1, 2, 3]", [1, 2, 3]),
        ("[]", []),
        ("[ ]", []),
        ("[1, 'a', true, 2.5,]", [1, "a", True, 2.5]),
        ("[[1, 2], [3]]", [[1, 2], [3]]),
        ("[1 + 1, -2, 2 * 3]", [2, -2, 6]),
    ],
)
def test_literals(literal: str, value: object) -> None:
    got = value_of(literal)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("age > 08", "invalid octal"),
        ("age > 12abc", "invalid number"),
        ("age > 1.2.3", "invalid number"),
        ("age > 0b2", "invalid number"),
        ('name == "abc', "unterminated string"),
        ("name == 'a\nb'", "unterminated string"),
        ('name == "\\x4"', "invalid \\x escape"),
        ('name == "\\ud800\\udc00"', "invalid"),
        ("age @ 1", "unexpected character '@'"),
        ("$foo > 1", "unexpected character '$'"),
        ("age = 1", "use '=='"),
        ("age > 9223372036854775808", "out of the int64 range"),
        ("age > -9223372036854775809", "out of the int64 range"),
        ("age & 1 == 1", "bitwise operators are not supported"),
        ("age | 1 == 1", "bitwise"),
        ("~age == 1", "bitwise"),
        ("age << 1 > 2", "shift"),
        ('name =~ "a.*"', "regular-expression"),
        ("age >", "expected an expression"),
        ("(age > 1", "expected ')'"),
        ("age > 1)", "unexpected ')'"),
        ("[1, 2", "expected ','"),
        ("age > 1 age < 2", "unexpected 'age'"),
        ("and age > 1", "unexpected keyword 'and'"),
        ("meta[] == 1", "subscript must be"),
        ('meta[""] == 1', "JSON key cannot be empty"),
        ("meta[-1] == 1", "subscript must be"),
        ("meta[1.5] == 1", "subscript must be"),
        ("age + 1 is null", "must follow a field name"),
        ("age is nul", "expected 'null'"),
        ("{} > 1", "template variable name"),
        ("age > {x", "expected '}'"),
    ],
)
def test_syntax_errors(text: str, reason: str) -> None:
    assert reason in error_of(text)


def test_error_names_position_token_and_filter() -> None:
    msg = error_of("age > 1 and nme == 'x'", schema=STRICT)
    assert msg.startswith('filter error at position 12 ("nme"): field "nme" does not exist')
    assert "age > 1 and nme == 'x'" in msg
    msg = error_of("score > 1 and age == 'x'")
    assert msg.startswith('filter error at position 14 ("age"): cannot compare INT64 field')
    assert "with a string" in msg
    with pytest.raises(FilterError) as info:
        compile_filter("age >>> 1", SCHEMA)
    err = info.value
    assert isinstance(err, InvalidArgumentError) and err.code == 1100
    assert err.pos == 4 and err.token == ">>" and err.expr == "age >>> 1"


def test_long_filter_text_is_shortened_in_messages() -> None:
    text = "age > 1 and " * 40 + "nope > 'x'"
    msg = error_of(text, schema=STRICT)
    assert '("nope")' in msg and "..." in msg and len(msg) < 400


# -- structure and precedence --------------------------------------------------------------
def test_or_binds_looser_than_and() -> None:
    node = plan_of("age > 1 or score > 2 and i8 > 3")
    assert isinstance(node, p.Or) and isinstance(node.items[1], p.And)
    node = plan_of("(age > 1 or score > 2) and i8 > 3")
    assert isinstance(node, p.And) and isinstance(node.items[0], p.Or)


@pytest.mark.parametrize(
    "text", ["a > 1 && b > 2 AND c > 3 and d > 4", "(a > 1 && b > 2) && c > 3 and d > 4"]
)
def test_and_chains_are_flat(text: str) -> None:
    node = plan_of(text)
    assert isinstance(node, p.And) and len(node.items) == 4


def test_spellings_of_logical_operators() -> None:
    for text in ("age > 1 || age < 0", "age > 1 OR age < 0", "age > 1 or age < 0"):
        assert isinstance(plan_of(text), p.Or)
    for text in ("not (age > 1)", "NOT (age > 1)", "!(age > 1)", "! (age > 1)"):
        node = plan_of(text)
        assert isinstance(node, p.Not) and isinstance(node.item, p.Cmp)


def test_not_binds_tighter_than_comparison_as_in_milvus() -> None:
    assert "write not (a == 1)" in error_of("not age == 1")
    assert "write not (a == 1)" in error_of("not flag == true")
    node = plan_of("not name like 'a%'")  # LIKE binds tighter than NOT
    assert isinstance(node, p.Not) and isinstance(node.item, p.Like)
    node = plan_of("not not (age > 1)")
    assert isinstance(node, p.Not) and isinstance(node.item, p.Not)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-2 ** 2", -4.0),
        ("2 ** 3 ** 2", 64.0),
        ("2 ** -1", 0.5),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("7 % -3", 1),
        ("7.0 / 2", 3.5),
        ("1 - 2 - 3", -4),
        ("2 * 3 % 4", 2),
        ("9223372036854775807 + 1", -(2**63)),
        ("-9223372036854775808 / -1", -(2**63)),
        ("0x10 + 0b1 + 0o1 + 01", 19),
    ],
)
def test_constant_arithmetic_folds_like_milvus(expr: str, value: object) -> None:
    got = value_of(expr)
    assert got == value and type(got) is type(value)


def test_constant_conditions_fold() -> None:
    for text, want in [
        ("1 < 2", True),
        ("2 ** 3 == 8", True),
        ("'a' < 'b'", True),
        ("true and false", False),
        ("not false", True),
        ("1 == 1.0", True),
    ]:
        f = compile_filter(text, SCHEMA)
        assert f is not None and f.is_always_true() is want and f.is_always_false() is not want
    assert "cannot compare a string with an integer" in error_of("'a' < 1")


@pytest.mark.parametrize(
    ("text", "lo", "lo_incl", "hi", "hi_incl"),
    [
        ("10 <= age < 25", 10, True, 25, False),
        ("10 < age <= 25", 10, False, 25, True),
        ("25 > age >= 10", 10, True, 25, False),
        ("1 > i8 >= 0", 0, True, 1, False),
        ("-1 < score < 2", -1.0, False, 2.0, False),
        ("'a' <= name < 'b'", "a", True, "b", False),
        ("1 <= meta['x'] <= 1", 1, True, 1, True),
        ("0 < nums[0] < 2 * 5", 0, False, 10, False),
    ],
)
def test_chained_ranges(text: str, lo: object, lo_incl: bool, hi: object, hi_incl: bool) -> None:
    node = plan_of(text)
    assert isinstance(node, p.Range)
    assert (node.lo, node.lo_incl, node.hi, node.hi_incl) == (lo, lo_incl, hi, hi_incl)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1 < age > 0", "both operators pointing the same way"),
        ("5 < age < 3", "lower bound is greater"),
        ("5 < age < 5", "lower bound is greater"),
        ("1 < age < score", "range bounds must be constants"),
        ("1 < age + 1 < 3", "middle of a range"),
        ("1 < age < 2 < 3", "exactly two operators"),
        ("1 < meta['a'] < 'z'", "same type"),
        ("1 < tags < 3", "cannot be compared as a whole"),
    ],
)
def test_bad_ranges(text: str, reason: str) -> None:
    assert reason in error_of(text)


def test_in_and_not_in() -> None:
    node = plan_of("age in [1, 2, 3]")
    assert isinstance(node, p.In) and node.values == (1, 2, 3)
    node = plan_of("score NOT IN [1, 2.5]")
    assert isinstance(node, p.Not) and node.item == p.In(node.item.operand, (1.0, 2.5))  # type: ignore[union-attr]
    assert "must be a list" in error_of("age in 3")
    assert "must be a field" in error_of("1 in [1]")
    assert "cannot compare INT64 field" in error_of("age in [1, 'x']")


def test_is_null_forms() -> None:
    for text in ("age is null", "age IS NULL", "age Is Null", "age  is \n null"):
        assert plan_of(text) == p.IsNull(p.Col("age", DataType.INT64, True), False)
    assert plan_of("age is not null") == p.IsNull(p.Col("age", DataType.INT64, True), True)
    path = p.JsonPath("meta", ("a",), True)
    assert plan_of("meta['a'] is null") == p.Not(p.Exists(path))  # as Milvus rewrites it
    assert plan_of("meta['a'] IS NOT NULL") == p.Exists(path)
    assert plan_of("meta is null") == p.IsNull(p.Col("meta", DataType.JSON, True), False)
    assert plan_of("color is null") == p.Not(p.Exists(p.JsonPath("$meta", ("color",), False)))
    assert "array elements" in error_of("nums[0] is null")


def test_exists() -> None:
    assert plan_of("exists meta['a']['b']") == p.Exists(p.JsonPath("meta", ("a", "b"), True))
    assert plan_of("EXISTS color") == p.Exists(p.JsonPath("$meta", ("color",), False))
    assert "needs a JSON key" in error_of("exists age")
    assert "needs a JSON key" in error_of("exists meta")


def test_json_paths_and_dynamic_keys() -> None:
    node = plan_of('meta["a"][0]["b"] == 1')
    assert isinstance(node, p.Cmp) and node.operand == p.JsonPath("meta", ("a", "0", "b"), True)
    node = plan_of("color == 'red'")
    assert isinstance(node, p.Cmp) and node.operand == p.JsonPath("$meta", ("color",), False)
    node = plan_of("color['x'][1] == 'red'")
    assert node.operand == p.JsonPath("$meta", ("color", "x", "1"), False)  # type: ignore[union-attr]
    node = plan_of("$meta['color'] == 'red'")
    assert node.operand == p.JsonPath("$meta", ("color",), False)  # type: ignore[union-attr]
    node = plan_of("nums[2] > 1")
    assert node.operand == p.Elem("nums", 2, DataType.INT64, False)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "mode", "values"),
    [
        ("array_contains(tags, 'red')", "one", ("red",)),
        ("ARRAY_CONTAINS(tags, 'red')", "one", ("red",)),
        ("Array_Contains(tags, 'red')", "one", ("red",)),
        ("json_contains(meta['a'], [1, 2])", "one", ([1, 2],)),
        ("JSON_CONTAINS_ALL(meta, [1, 'x'])", "all", (1, "x")),
        ("array_contains_any(nums, [1, 2])", "any", (1, 2)),
        ("json_contains_any(nums, [])", "any", ()),
        ("array_contains_all(color, [true])", "all", (True,)),
    ],
)
def test_contains_functions(text: str, mode: str, values: tuple) -> None:
    node = plan_of(text)
    assert isinstance(node, p.Contains) and node.mode == mode and node.values == values


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("array_contains(tags)", "expects 2 arguments, got 1"),
        ("array_contains(tags, 'a', 'b')", "expects 2 arguments, got 3"),
        ("array_length(tags, 1) > 1", "expects 1 argument, got 2"),
        ("array_contains(age, 1)", "needs an ARRAY field or a JSON value"),
        ("array_length(name) > 1", "needs an ARRAY field or a JSON value"),
        ("array_contains(nums, 'x')", "cannot compare INT64 element"),
        ("array_contains(nums, 1.5)", "does not cast floats"),
        ("array_contains(nums, [1])", "with a list"),
        ("array_contains_all(nums, 1)", "needs a list second argument"),
        ("array_contains(nums, age)", "needs a constant second argument"),
        ("text_match(name, 'x')", 'field "name" does not enable match'),
        ("random_sample(0.5)", "random_sample is not supported"),
        ("foo(age) > 1", "unknown function 'foo'"),
        ("array_length(nums)", "is not a condition by itself"),
    ],
)
def test_function_errors(text: str, reason: str) -> None:
    assert reason in error_of(text)


def test_array_length_is_an_operand() -> None:
    node = plan_of("ARRAY_LENGTH(nums) >= 2")
    assert node == p.Cmp(">=", p.Length(p.Col("nums", DataType.ARRAY, False, DataType.INT64)), 2)
    node = plan_of("array_length(meta['a']) + 1 == 3")
    assert isinstance(node, p.Cmp) and isinstance(node.operand, p.Arith)


def test_like_patterns_are_classified() -> None:
    cases = {
        "abc": ("equal", "abc"),
        "abc%": ("prefix", "abc"),
        "%abc": ("suffix", "abc"),
        "%abc%": ("contains", "abc"),
        "%": ("any", ""),
        "%%": ("any", ""),
        "": ("equal", ""),
        "a\\%b%": ("prefix", "a%b"),
        "a\\_%": ("prefix", "a_"),
        "a\\\\%": ("prefix", "a\\"),
        "a\\": ("equal", "a\\"),
        "a%%b%": ("general", ""),
        "a_c": ("general", ""),
    }
    for pattern, (kind, text) in cases.items():
        got = compile_like(pattern)
        assert (got.kind, got.text) == (kind, text), pattern
    assert compile_like("a_%\\%").arrow == "a_%\\%"
    assert compile_like("x\\\\_").arrow == "x\\\\_"


def test_like_needs_a_string_operand_and_pattern() -> None:
    assert "'like' only applies to VARCHAR and JSON" in error_of("age like 'a%'")
    assert "'like' only applies" in error_of("nums[0] like 'a%'")
    assert "LIKE pattern must be a string" in error_of("name like 1")
    assert isinstance(plan_of("tags[0] like 'a%'"), p.Like)
    assert isinstance(plan_of("meta['a'] LIKE 'a%'"), p.Like)


# -- type errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("age > 'x'", 'cannot compare INT64 field "age" with a string'),
        ("'x' < age", "cannot compare INT64 field"),
        ("name == 1", 'VARCHAR field "name" with an integer'),
        ("flag == 1", 'BOOL field "flag" with an integer'),
        ("age > 1.5", "does not cast floats"),
        ("score == 'a'", "DOUBLE field"),
        ("age == true", "with a bool"),
        ("age + 1 == 2.5", "does not cast floats"),
        ("meta['a'] < [1]", "only be compared with a list"),
        ("name + 'a' == 'b'", "numeric constant"),
        ("name + 1 == 2", "arithmetic is not supported on VARCHAR"),
        ("flag * 2 == 2", "arithmetic is not supported on BOOL"),
        ("tags + 1 == 2", "ARRAY"),
        ("age + score > 1", "arithmetic between two fields"),
        ("age ** 2 > 1", "'**' only applies to constants"),
        ("age / 0 > 1", "division by zero"),
        ("age % 0 == 1", "modulo by zero"),
        ("1 / 0 == 1", "division by zero"),
        ("age % 2.5 == 1", "modulo only applies to integers"),
        ("score % 2 == 1", "modulo only applies to integers"),
        ("5.5 % 2 == 1", "modulo only applies to integers"),
        ("2 / age > 1", "a field cannot be one"),
        ("vec == 1", 'vector field "vec" cannot be used'),
        ("age[0] == 1", "cannot be subscripted"),
        ("nums['a'] == 1", "exactly one integer index"),
        ("nums[0][1] == 1", "exactly one integer index"),
        ("tags == 1", "cannot be compared as a whole"),
        ("age > name", 'cannot compare INT64 field "age" with VARCHAR'),
        ("meta['a'] == age", "comparing a JSON value"),
        ("age + 1 > score", "can only be compared with a constant"),
        ("age", "is not a condition by itself"),
        ("flag", "write `x == true`"),
        ("1", "is not a condition"),
        ("age > 1 and score", "'and' can only combine conditions"),
        ("(age > 1) == true", "cannot be compared"),
        ("-name > 1", "needs a number"),
        ("-'a' == 1", "needs a number"),
        ("not age", "applies to a condition"),
        ("(age > 1) + 1 == 2", "cannot take a condition"),
    ],
)
def test_type_errors(text: str, reason: str) -> None:
    assert reason in error_of(text)


def test_unknown_fields_need_the_dynamic_field() -> None:
    assert 'field "color" does not exist' in error_of("color == 'red'", schema=STRICT)
    assert "$meta is not enabled" in error_of("$meta['a'] == 1", schema=STRICT)
    assert compile_filter("age > 1", STRICT) is not None


def test_int_literal_against_narrow_int_field_is_accepted() -> None:
    node = plan_of("i8 > 1000")  # constant outside INT8: the evaluator knows the answer
    assert node == p.Cmp(">", p.Col("i8", DataType.INT8, False), 1000)


def test_float_field_takes_int_constants_as_floats() -> None:
    node = plan_of("f == 1")
    assert isinstance(node, p.Cmp) and node.value == 1.0 and isinstance(node.value, float)


def test_unary_minus_on_a_field() -> None:
    node = plan_of("-age < -30")
    assert node == p.Cmp("<", p.Arith("-", p.Col("age", DataType.INT64, True), 0, True, "int"), -30)


# -- templates -----------------------------------------------------------------------------
def test_templates_are_values_not_text() -> None:
    node = plan_of("age > {a} and name in {names}", {"a": 5, "names": ["x", "y"]})
    assert isinstance(node, p.And)
    assert node.items[0] == p.Cmp(">", p.Col("age", DataType.INT64, True), 5)
    assert node.items[1] == p.In(p.Col("name", DataType.VARCHAR, False), ("x", "y"))
    # a template holding filter text stays a string value: no injection
    node = plan_of("name == {n}", {"n": "x' or 1 == 1 or name == 'y"})
    assert node == p.Cmp("==", p.Col("name", DataType.VARCHAR, False), "x' or 1 == 1 or name == 'y")
    node = plan_of("name == '{n}'", {"n": "zzz"})  # inside a string: not a placeholder
    assert isinstance(node, p.Cmp) and node.value == "{n}"
    node = plan_of("{lo} <= age < {hi} and meta['k'] == {lo}", {"lo": 1, "hi": 9})
    assert isinstance(node, p.And) and node.items[0] == p.Range(
        p.Col("age", DataType.INT64, True), 1, True, 9, False
    )


def test_template_value_types() -> None:
    params = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "arr": np.array([1, 2]),
        "nested": [[1, 2], (3,)],
        "t": (1, 2),
    }
    assert value_of_params("{i}", params) == 3
    assert value_of_params("{f}", params) == 0.5
    assert value_of_params("{b}", params) is True
    assert value_of_params("{arr}", params) == [1, 2]
    assert value_of_params("{nested}", params) == [[1, 2], [3]]
    assert value_of_params("{t}", params) == [1, 2]


def value_of_params(literal: str, params: dict) -> object:
    node = plan_of(f"meta['k'] == {literal}", params)
    assert isinstance(node, p.Cmp)
    return node.value


@pytest.mark.parametrize(
    ("text", "params", "reason"),
    [
        ("age > {x}", {}, "template variable {x} has no value"),
        ("age > {x}", None, "template variable {x} has no value"),
        ("age > {x}", {"x": None}, "got null"),
        ("age > {x}", {"x": {"a": 1}}, "got dict"),
        ("age > {x}", {"x": "s"}, "with a string"),
        ("age in {x}", {"x": 3}, "must be a list"),
        ("age > {x}", {"x": [1, {2}]}, "got set"),
    ],
)
def test_template_errors(text: str, params: dict | None, reason: str) -> None:
    assert reason in error_of(text, params)


def test_filter_params_must_be_a_mapping() -> None:
    assert "filter_params must be a dict" in error_of("age > 1", [1])  # type: ignore[arg-type]


# -- limits and empty filters --------------------------------------------------------------
def test_empty_filters_mean_no_filter() -> None:
    for text in (None, "", "   ", "\n\t"):
        assert compile_filter(text, SCHEMA) is None
    assert "must be a string" in error_of(5)  # type: ignore[arg-type]


def test_length_limit() -> None:
    ok = "age > 1" + " " * (MAX_FILTER_BYTES - 7)
    assert compile_filter(ok, SCHEMA) is not None
    assert f"the limit is {MAX_FILTER_BYTES}" in error_of(ok + " ")
    assert "bytes long" in error_of("name == '" + "é" * (MAX_FILTER_BYTES // 2) + "'")


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_DEPTH + 5) + "age > 1" + ")" * (MAX_DEPTH + 5),
        "not " * (MAX_DEPTH + 5) + "(age > 1)",
        "-" * (MAX_DEPTH + 5) + "1 < age",
        "age" + " + 1" * (MAX_DEPTH + 5) + " > 2",
        "meta['k'] == " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
        "array_contains(nums, " * 300 + "1" + ")" * 300,
        "(" * 30_000,
        "not " * 10_000 + "(age > 1)",
    ],
)
def test_depth_limit_errors_cleanly(text: str) -> None:
    with pytest.raises(FilterError, match="nested too deeply"):
        compile_filter(text, SCHEMA)


def test_depth_limit_with_a_deep_caller_stack() -> None:
    def nested(k: int) -> None:
        if k:
            return nested(k - 1)
        with pytest.raises(FilterError, match="nested too deeply"):
            compile_filter("(" * MAX_DEPTH + "age > 1" + ")" * MAX_DEPTH, SCHEMA)

    nested(sys.getrecursionlimit() - 250)


def test_deep_but_legal_and_wide_filters() -> None:
    deep = "(" * 150 + "age > 1" + ")" * 150
    assert isinstance(plan_of(deep), p.Cmp)
    wide = " or ".join(f"age == {i}" for i in range(3000))
    node = plan_of(wide)
    assert isinstance(node, p.Or) and len(node.items) == 3000
    big_in = "age in [" + ", ".join(map(str, range(6000))) + "]"
    assert len(plan_of(big_in).values) == 6000  # type: ignore[union-attr]


def test_long_flat_chains_are_linear_and_nesting_limits_hold() -> None:
    chain = " or ".join(f"i8 == {i % 100}" for i in range(5000))  # 59 KB: read in one loop
    node = plan_of(chain)
    assert isinstance(node, p.Or) and len(node.items) == 5000
    for text in [" and ".join(["(" * 30] * 300), "age > " + " 1 +" * 3000 + " 1",
                 "not " * (MAX_DEPTH - 3) + "(" * 10 + "age > 1" + ")" * 10]:  # fmt: skip
        assert "nested too deeply" in error_of(text)
    big = plan_of("age in {ids}", {"ids": list(range(200_000))})
    assert isinstance(big, p.In) and len(big.values) == 200_000


def test_int64_min_is_the_only_literal_that_needs_its_minus() -> None:
    assert value_of("-9223372036854775808") == -(2**63)
    assert value_of("-0x8000000000000000") == -(2**63)
    assert value_of("-(-9223372036854775808)") == -(2**63)  # Go int64 negation wraps
    assert "int64 range" in error_of("-9223372036854775808 ** 1 < age")  # '**' binds tighter
    assert "int64 range" in error_of("age > 9223372036854775808 - 1")
    assert value_of("9223372036854775807 + 1") == -(2**63)  # folding wraps, as Milvus's Go
    assert plan_of("meta[99999999999999999999] == 1") is not None  # a subscript: a JSON key


def test_filter_cache_keys_tell_large_arrays_apart() -> None:
    from gpuvec.proxy.filters import FilterCompiler, params_key

    a = np.arange(3000)
    b = a.copy()
    b[1500] = -7  # both arrays have the same abbreviated repr()
    c = FilterCompiler()
    fa = c.compile(1, SCHEMA, "id in {ids}", {"ids": a})
    fb = c.compile(1, SCHEMA, "id in {ids}", {"ids": b})
    assert fa is not None and fb is not None and fa.key != fb.key
    assert -7 in (fb.filter.pk_values() or []) and -7 not in (fa.filter.pk_values() or [])
    same = c.compile(1, SCHEMA, "age > {x}", {"x": 1})
    assert same is c.compile(1, SCHEMA, "age > {x}", {"x": 1})
    assert params_key({"x": 10**5000}) is None and params_key({"x": object()}) is None
    with pytest.raises(FilterError, match="int64 range"):  # uncacheable, still checked
        c.compile(1, SCHEMA, "age > {x}", {"x": 10**5000})


def test_parse_keeps_positions() -> None:
    tree = parse("age > 1 and  name == 'x'")
    assert (tree.pos, tree.end) == (0, 24)
    right = tree.items[1]  # type: ignore[attr-defined]
    assert (right.pos, right.end) == (13, 24)
    assert (right.left.pos, right.left.end) == (13, 17)


# -- Filter object -------------------------------------------------------------------------
def test_fields_and_pk_values() -> None:
    f = compile_filter("age > 1 and (color == 'x' or meta['a'] == 1 or nums[0] == 2)", SCHEMA)
    assert f is not None and f.fields == frozenset({"age", "$meta", "meta", "nums"})
    cases = {
        "id in [3, 1, 3]": [3, 1],
        "id == 7": [7],
        "7 == id": [7],
        "id in []": [],
        "id in {ids}": [5, 6],
        "id != 7": None,
        "id not in [1]": None,
        "age in [1]": None,
        "id in [1] and age > 1": None,
        "id > 1": None,
    }
    for text, want in cases.items():
        f = compile_filter(text, SCHEMA, {"ids": [5, 6]})
        assert f is not None and f.pk_values() == want, text
    s = CollectionSchema()
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=8)
    f = compile_filter("pk in ['a', 'b']", s)
    assert f is not None and f.pk_values() == ["a", "b"]
    assert 'VARCHAR field "pk" with an integer' in error_of("pk in [1]", schema=s)
    assert repr(f) == "Filter(\"pk in ['a', 'b']\")" and f.text == "pk in ['a', 'b']"
