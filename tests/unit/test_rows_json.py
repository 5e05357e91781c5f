"""gpuvec.rows_json: one JSON value, bounded — depth, length, digits, NaN — with errors in
the caller's class naming where the value came from, whatever the input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpuvec.datatypes import DataType
from gpuvec.errors import DataError, InvalidArgumentError
from gpuvec.rows import rows_to_table
from gpuvec.rows_json import (
    JSON_MAX_DEPTH,
    JSON_MAX_LENGTH,
    json_text,
    json_too_deep,
    load_json,
    plain_json,
)
from gpuvec.schema import CollectionSchema, FieldSchema


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_is_counted_outside_strings_only() -> None:
    assert not json_too_deep(nested(JSON_MAX_DEPTH))
    assert json_too_deep(nested(JSON_MAX_DEPTH + 1))
    assert json_too_deep('{"a":' * 70 + "1" + "}" * 70)
    assert not json_too_deep('["' + "[" * 500 + '"]')  # brackets inside a string
    assert not json_too_deep('["\\"' + "[" * 500 + '"]')  # past an escaped quote
    assert not json_too_deep("[]" * 10_000)  # many, but shallow


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (nested(1000), "nested deeper than 64"),
        (nested(100_000)[:JSON_MAX_LENGTH], "nested deeper"),
        ("[" + "9" * 5000 + "]", "too many digits"),
        ('{"a": NaN}', "NaN"),
        ("[-Infinity]", "Infinity"),
        ('{"a": [1e400]}', "1e400 is not a finite"),
        ('{"a": ', "not valid JSON"),
        (b"\xff", "UTF-8"),
        ('"' + "x" * JSON_MAX_LENGTH + '"', f"exceeds {JSON_MAX_LENGTH} bytes"),
    ],
)
def test_load_json_refuses_hostile_text(text: str | bytes, needle: str) -> None:
    with pytest.raises(DataError, match=needle) as err:
        load_json(text, "field 'j'")
    assert "field 'j'" in str(err.value)


def test_load_json_takes_the_callers_error_class_and_parses_good_text() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        load_json(nested(65), "search params", error=InvalidArgumentError)
    assert not isinstance(err.value, DataError)
    assert load_json(nested(64), "x") is not None
    assert load_json(b'{"a": [1, 2.5, "\\u00fc"], "b": null}', "x") == {
        "a": [1, 2.5, "ü"],
        "b": None,
    }
    assert load_json("9" * 4300, "x") == int("9" * 4300)  # Python's own digit limit


def test_plain_json_bounds_depth_and_cycles() -> None:
    deep: Any = 1
    for _ in range(JSON_MAX_DEPTH):
        deep = [deep]
    assert plain_json(deep, "x") == deep
    with pytest.raises(DataError, match="nested deeper"):
        plain_json([deep], "x")
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(DataError, match="nested deeper"):
        plain_json(cycle, "x")
    assert plain_json({"a": np.int64(3), "b": np.arange(2)}, "x") == {"a": 3, "b": [0, 1]}


def test_json_text_of_hostile_values() -> None:
    def where(i: int) -> str:
        return f"row {i}"

    with pytest.raises(DataError, match="row 2: JSON number with too many digits"):
        json_text({"n": 10**5000}, where, 2)
    with pytest.raises(DataError, match="row 0: JSON value is nested deeper"):
        json_text(nested(2000), where, raw_str=True)
    assert json_text(" [1] ", where, raw_str=True) == " [1] "
    assert json_text(None, where) is None


def test_rows_to_table_refuses_deep_json_without_recursion_errors() -> None:
    schema = CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("vec", DataType.FLOAT_VECTOR, dim=2),
            FieldSchema("j", DataType.JSON),
        ],
        enable_dynamic_field=True,
    )
    deep: Any = 0
    for _ in range(5000):
        deep = {"a": deep}
    rows: list[dict[str, Any]] = [{"id": 1, "vec": [0.0, 1.0], "j": deep}]
    with pytest.raises(DataError, match=r"row 0, field 'j'.*nested deeper"):
        rows_to_table(schema, rows)
    rows = [{"id": 1, "vec": [0.0, 1.0], "j": nested(3000)}]
    with pytest.raises(DataError, match=r"row 0, field 'j'.*nested deeper"):
        rows_to_table(schema, rows)
    rows = [{"id": 1, "vec": [0.0, 1.0], "j": 1, "extra": deep}]
    with pytest.raises(DataError, match=r"row 0, dynamic fields.*nested deeper"):
        rows_to_table(schema, rows)
