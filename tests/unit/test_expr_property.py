"""Property tests of the filter language: random schemas (random nullability), random rows
with nulls, random well-typed filters rendered with random spellings; the vectorised mask
must equal the plain-Python reference in :mod:`gpuvec.testing.expr_reference`.

About 3,000 generated cases per run (see the ``max_examples`` of each test).
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuvec.expr import JsonCache, compile_filter
from gpuvec.rows import rows_to_table
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.testing import expr_reference as ref
from gpuvec.testing.expr_reference import (
    Ar,
    Bool,
    Cmp,
    Cols,
    Ctn,
    E,
    Ex,
    F,
    InL,
    J,
    Len,
    Lk,
    Log,
    NotP,
    Nul,
    Rng,
)

I64 = 2**63
FIELDS = {
    "i8": DataType.INT8,
    "i32": DataType.INT32,
    "i64": DataType.INT64,
    "f32": DataType.FLOAT,
    "f64": DataType.DOUBLE,
    "b": DataType.BOOL,
    "s": DataType.VARCHAR,
    "j": DataType.JSON,
    "ai": DataType.ARRAY,
    "ast": DataType.ARRAY,
    "af": DataType.ARRAY,
}
ELEMS = {"ai": DataType.INT64, "ast": DataType.VARCHAR, "af": DataType.FLOAT}
INTS = ("i8", "i32", "i64")
FLOATS = ("f32", "f64")
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

# -- data --------------------------------------------------------------------------------
SMALL_INTS = st.sampled_from([0, 1, 2, 3, 5, 10, -1])
TEXT = st.one_of(st.text(alphabet="ab", max_size=2), st.text(alphabet="ab%_\\\né", max_size=4))
INT_C = st.one_of(
    SMALL_INTS,
    SMALL_INTS,
    st.sampled_from([127, -128, 2**31 - 1, -(2**63), 2**63 - 1]),
    st.integers(-(2**63), 2**63 - 1),
)
FLOAT_C = st.one_of(
    st.sampled_from([0.0, 0.1, 1.0, 2.5, -1.5, 3.0, 1e30]),
    st.floats(-1e6, 1e6, allow_nan=False),
)
NUM_C = st.one_of(INT_C, FLOAT_C)
JSON_C = st.one_of(st.booleans(), NUM_C, st.sampled_from([0, 1, 2, 3]), st.text("ab1%", max_size=3))
JSON_LIST_C = st.lists(
    st.one_of(st.booleans(), st.sampled_from([0, 1, 2, 2.0, 2.5]), st.text("ab", max_size=2)),
    max_size=3,
)


@st.composite
def schemas(draw: st.DrawFn) -> CollectionSchema:
    s = CollectionSchema(enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    for name, dt in FIELDS.items():
        kw: dict[str, Any] = {"nullable": draw(st.booleans())}
        if dt == DataType.VARCHAR:
            kw["max_length"] = 16
        if dt == DataType.ARRAY:
            kw |= {"element_type": ELEMS[name], "max_capacity": 4, "max_length": 8}
        s.add_field(name, dt, **kw)
    return s


# Rows come from a seeded generator (hypothesis draws the seed): drawing ~100 values per
# table through strategies would cost most of the time budget. Pools overlap the filter
# constants so that filters match some rows and not others.
INT_POOL = [0, 1, 2, 3, 5, 10, -1]
FLOAT_POOL = [0.0, 0.1, 1.0, 2.5, -1.5, 3.0, 2.0, 0.5]
STR_POOL = ["", "a", "b", "ab", "ba", "aa", "a%", "%b", "a_b", "\\", "é", "a\nb", "é_"]
JSON_STRS = ["", "a", "b", "ab", "1", "a%"]


def rand_int(rng: random.Random, bits: int) -> int:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    r = rng.random()
    if r < 0.6:
        return rng.choice(INT_POOL)
    return rng.choice([lo, hi]) if r < 0.75 else rng.randint(lo, hi)


def rand_float(rng: random.Random, f32: bool) -> float:
    r = rng.random()
    if r < 0.7:
        return rng.choice(FLOAT_POOL)
    x = rng.choice([rng.uniform(-1e6, 1e6), 1e-30, -3e38, 2.0**53 + 2, 1e300])
    return float(np.float32(x)) if f32 and abs(x) < 3.4e38 else (x if not f32 else 1.5)


def rand_str(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(STR_POOL)
    return "".join(rng.choice("ab%_\\\né") for _ in range(rng.randint(0, 4)))


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 2 and r < 0.15:
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and r < 0.25:
        return {k: rand_json(rng, depth + 1) for k in rng.sample("ab0", rng.randint(0, 2))}
    return rng.choice(
        [
            None,
            True,
            False,
            rng.choice(INT_POOL),
            rng.choice(INT_POOL),
            rand_int(rng, 64),
            rng.choice(FLOAT_POOL),
            rng.choice(JSON_STRS),
            rng.choice(JSON_STRS),
        ]
    )


def rand_value(rng: random.Random, name: str) -> Any:
    if name in INTS:
        return rand_int(rng, {"i8": 8, "i32": 32, "i64": 64}[name])
    if name in FLOATS:
        return rand_float(rng, name == "f32")
    if name == "b":
        return rng.random() < 0.5
    if name == "s":
        return rand_str(rng)
    if name == "j":
        if rng.random() < 0.8:
            return {k: rand_json(rng) for k in rng.sample(["a", "b", "c", "0"], rng.randint(0, 3))}
        v = rand_json(rng)
        return json.dumps(v) if isinstance(v, str) or v is None else v  # a str is JSON text
    k = rng.randint(0, 4)
    if name == "ai":
        return [rand_int(rng, 64) for _ in range(k)]
    if name == "ast":
        return ["".join(rng.choice("ab%_") for _ in range(rng.randint(0, 2))) for _ in range(k)]
    return [rand_float(rng, True) for _ in range(k)]  # "af"


def make_table(schema: CollectionSchema, seed: int, max_rows: int = 10) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for i in range(rng.randint(3, max_rows)):
        row: dict[str, Any] = {"id": i, "vec": [0.0, 0.0]}
        for f in schema.fields[2:]:
            null = f.nullable and rng.random() < 0.25
            row[f.name] = None if null else rand_value(rng, f.name)
        for key in rng.sample(["d1", "d2"], rng.randint(0, 2)):
            v = rand_json(rng)
            row[key] = 0 if v is None else v
        rows.append(row)
    return rows_to_table(schema, rows)


def reference_rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()  # JSON stays text: the reference tells null cells from "null"


# -- filters -----------------------------------------------------------------------------
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
EQ_OPS = st.sampled_from(["==", "!="])
PATH = st.lists(st.sampled_from(["a", "b", "0", 0, 1]), min_size=1, max_size=2).map(tuple)
JSON_TARGET = st.one_of(
    st.builds(J, st.just("j"), PATH),
    st.builds(F, st.sampled_from(["d1", "d2"])),
    st.builds(J, st.sampled_from(["d1", "$meta"]), PATH),
    st.just(F("j")),
)
JSON_KEY = st.one_of(  # JSON targets with a non-empty path (for is null / exists)
    st.builds(J, st.just("j"), PATH),
    st.builds(J, st.sampled_from(["d1", "d2"]), st.just(())),
    st.builds(J, st.sampled_from(["d1", "$meta"]), PATH),
)
INT_ELEM = st.builds(E, st.sampled_from(["ai", "af"]), st.integers(0, 4))
ELEM = st.one_of(INT_ELEM, st.builds(E, st.just("ast"), st.integers(0, 4)))
NUM_FIELD = st.builds(F, st.sampled_from([*INTS, *FLOATS]))
SCALAR_TARGET = st.one_of(NUM_FIELD, st.builds(F, st.sampled_from(["b", "s"])))
TYPED_TARGET = st.one_of(SCALAR_TARGET, JSON_TARGET, ELEM)
ORDERED_TARGET = st.one_of(NUM_FIELD, st.just(F("s")), JSON_TARGET, ELEM)
ARITH_TARGET = st.one_of(
    NUM_FIELD, JSON_TARGET, INT_ELEM, st.builds(Len, st.one_of(st.just(F("ai")), JSON_TARGET))
)
ARRAY_FIELD = st.builds(F, st.sampled_from(["ai", "ast", "af"]))
CONST = {"int": INT_C, "float": NUM_C, "str": TEXT, "bool": st.booleans(), "json": JSON_C}
JSON_ITEM = st.one_of(JSON_C, JSON_LIST_C)
BOOLS = st.booleans()


def _kind(target: Any) -> str:
    if isinstance(target, E):
        return {"ai": "int", "ast": "str", "af": "float"}[target.name]
    if not (isinstance(target, F) and target.name in FIELDS) or target.name == "j":
        return "json"
    if target.name in INTS:
        return "int"
    if target.name in FLOATS:
        return "float"
    return "bool" if target.name == "b" else "str"


@st.composite
def cmp_leaf(draw: st.DrawFn) -> Any:
    t = draw(TYPED_TARGET)
    kind = _kind(t)
    if kind == "json" and draw(BOOLS):
        return Cmp(draw(EQ_OPS), t, draw(JSON_LIST_C))
    return Cmp(draw(OPS), t, draw(CONST[kind]), draw(BOOLS))


@st.composite
def range_leaf(draw: st.DrawFn) -> Any:
    t = draw(ORDERED_TARGET)
    kind = _kind(t)
    if kind == "json":  # numeric or string bounds
        kind = "str" if draw(BOOLS) else "float"
    a, b = sorted([draw(CONST[kind]), draw(CONST[kind])])
    op1, op2 = ("<=", "<=") if a == b else (draw(st.sampled_from(["<", "<="])), draw(OPS2))
    return Rng(a, op1, t, op2, b, draw(BOOLS))


OPS2 = st.sampled_from(["<", "<="])


@st.composite
def in_leaf(draw: st.DrawFn) -> Any:
    t = draw(TYPED_TARGET)
    kind = _kind(t)
    item = JSON_ITEM if kind == "json" else CONST[kind]
    return InL(t, tuple(draw(st.lists(item, max_size=4))), draw(BOOLS))


@st.composite
def contains_leaf(draw: st.DrawFn) -> Any:
    t = draw(st.one_of(ARRAY_FIELD, JSON_TARGET))
    kind = _kind(E(t.name, 0)) if isinstance(t, F) and t.name in ELEMS else "json"
    mode = draw(st.sampled_from(["", "_all", "_any"]))
    fn = draw(st.sampled_from(["array", "json", "ARRAY", "JSON"])) + "_contains" + mode
    fn = fn.upper() if fn[0].isupper() else fn
    if mode:
        value = draw(st.lists(CONST[kind], max_size=3))
    else:
        value = draw(JSON_ITEM if kind == "json" else CONST[kind])
    return Ctn(fn, t, value)


@st.composite
def arith_leaf(draw: st.DrawFn) -> Any:
    t = draw(ARITH_TARGET)
    kind = "int" if isinstance(t, Len) else _kind(t)
    op = draw(st.sampled_from(["+", "-", "*", "/"] + (["%"] if kind != "float" else [])))
    use_int = op == "%" or (kind == "int" and draw(BOOLS))
    const = draw(INT_C if use_int else NUM_C)
    if op in "/%" and const == 0:
        const = 3
    left = op in "+-*" and draw(BOOLS)
    result = "float" if kind == "float" or isinstance(const, float) else "int"
    return Cmp(draw(OPS), Ar(op, t, const, left), draw(CONST[result]))


LIKE_TARGET = st.one_of(
    st.just(F("s")), JSON_TARGET, st.builds(E, st.just("ast"), st.integers(0, 3))
)
PATTERN = st.text(alphabet="ab%_\\é\n", max_size=4)
NULL_TARGET = st.one_of(st.builds(F, st.sampled_from(list(FIELDS))), JSON_KEY)
LEN = st.builds(
    Len, st.one_of(st.just(F("ai")), JSON_TARGET), st.sampled_from(["array_length", "ARRAY_LENGTH"])
)
PAIRS = st.sampled_from(
    [("i8", "i64"), ("i32", "f32"), ("f64", "f32"), ("s", "s"), ("b", "b"), ("i64", "i64")]
)


@st.composite
def cols_leaf(draw: st.DrawFn) -> Any:
    a, b = draw(PAIRS)
    left: F | E = E("ai", draw(st.integers(0, 2))) if a in INTS and draw(BOOLS) else F(a)
    return Cols(draw(OPS), left, F(b))


MISC_LEAF = st.one_of(
    st.builds(Lk, LIKE_TARGET, PATTERN),
    st.builds(Nul, NULL_TARGET, BOOLS),
    st.builds(Ex, JSON_KEY),
    st.builds(Cmp, OPS, LEN, st.integers(-1, 4)),
    cols_leaf(),
    st.builds(Bool, BOOLS),
    contains_leaf(),
)
LEAF = st.one_of(cmp_leaf(), range_leaf(), in_leaf(), arith_leaf(), MISC_LEAF)
JSON_LEAF = st.one_of(
    st.builds(Cmp, OPS, JSON_TARGET, JSON_C),
    st.builds(InL, JSON_TARGET, st.lists(JSON_ITEM, max_size=4).map(tuple), BOOLS),
    contains_leaf(),
    st.builds(Nul, JSON_KEY, BOOLS),
    st.builds(Ex, JSON_KEY),
    st.builds(Lk, JSON_TARGET, PATTERN),
)


def filters(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def combine(ch: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        items = st.lists(ch, min_size=2, max_size=3).map(tuple)
        return st.one_of(st.builds(Log, st.sampled_from(["and", "or"]), items), st.builds(NotP, ch))

    return st.recursive(leaf, combine, max_leaves=6)


FILTERS, JSON_FILTERS = filters(LEAF), filters(JSON_LEAF)


def check(
    spec: Any, schema: CollectionSchema, table: pa.Table, seed: int, cache: JsonCache | None = None
) -> str:
    text = ref.render(spec, random.Random(seed))
    f = compile_filter(text, schema)
    assert f is not None, text
    got = f.evaluate(table, cache)
    want = ref.evaluate_rows(spec, reference_rows(table), schema)
    assert got.dtype == np.bool_ and got.shape == (table.num_rows,), text
    assert got.tolist() == want, f"{text}\nrows={reference_rows(table)}"
    return text


# -- tests -------------------------------------------------------------------------------
@settings(max_examples=1500, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_random_filters_match_reference(data: st.DataObject, seed: int) -> None:
    schema = data.draw(schemas())
    table = make_table(schema, seed)
    check(data.draw(FILTERS), schema, table, seed)


@settings(max_examples=700, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_json_filters_match_reference(data: st.DataObject, seed: int) -> None:
    schema = data.draw(schemas())
    table = make_table(schema, seed)
    check(data.draw(JSON_FILTERS), schema, table, seed)


@settings(max_examples=300, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_growing_table_with_one_cache(data: st.DataObject, seed: int) -> None:
    """A cache fed a growing table (and then an older, shorter snapshot) stays exact."""
    schema = data.draw(schemas())
    table = make_table(schema, seed, max_rows=12)
    specs = data.draw(st.lists(JSON_FILTERS, min_size=1, max_size=3))
    cut = data.draw(st.integers(0, table.num_rows))
    cache = JsonCache()
    for spec in specs:
        check(spec, schema, table.slice(0, cut), seed, cache)
        check(spec, schema, table, seed, cache)
        check(spec, schema, table.slice(0, cut), seed, cache)
    assert all(n == table.num_rows for n in cache.decoded_rows.values())


LITERAL = st.one_of(INT_C, FLOAT_C, st.text(max_size=6), st.booleans(), JSON_LIST_C)


@settings(max_examples=500, **SETTINGS)
@given(value=LITERAL, seed=st.integers(0, 2**32))
def test_literals_round_trip(value: Any, seed: int) -> None:
    """Any constant, rendered in any of its spellings, parses back to the same value."""
    schema = CollectionSchema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    text = ref.render(Cmp("==", J("$meta", ("k",)), value), random.Random(seed))
    f = compile_filter(text, schema)
    assert f is not None
    got = f.plan.value  # type: ignore[union-attr]
    assert type(got) is type(value) and got == value, text
