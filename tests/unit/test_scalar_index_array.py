"""ARRAY field indexes (:mod:`gpuvec.index.scalar_array`): ``array_contains``,
``array_contains_any`` and ``array_contains_all`` through an INVERTED / BITMAP index equal
the scan on random arrays (ints, strings, booleans; null arrays, empty arrays, repeated
elements) and random literals (ints, integral and other floats, strings, booleans, ints
past the element type); the index is consulted; float arrays are scanned; the file round
trip keeps the postings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.expr import compile_filter
from gpuvec.expr.evaluate import Evaluator
from gpuvec.index.registry import dump, load_index
from gpuvec.index.scalar import ScalarIndex
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.testing.expr_reference import combine_atoms

N = 700


def schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("ai", DataType.ARRAY, element_type=DataType.INT16, max_capacity=6,
                nullable=True)  # fmt: skip
    s.add_field("as", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=6,
                max_length=4)  # fmt: skip
    s.add_field("ab", DataType.ARRAY, element_type=DataType.BOOL, max_capacity=3)
    s.add_field("af", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=3)
    return s


def table(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)

    def arrays(make: object, nulls: bool = False) -> pa.Array:
        out = []
        for _ in range(N):
            if nulls and rng.random() < 0.07:
                out.append(None)
            else:
                out.append([make() for _ in range(int(rng.integers(0, 6)))])  # type: ignore[operator]
        return out  # type: ignore[return-value]

    return pa.table({
        "id": np.arange(N),
        "ai": pa.array(arrays(lambda: int(rng.integers(-3, 40)), nulls=True), pa.list_(pa.int16())),
        "as": pa.array(arrays(lambda: f"w{int(rng.integers(0, 30))}"), pa.list_(pa.string())),
        "ab": pa.array(arrays(lambda: bool(rng.random() < 0.1)), pa.list_(pa.bool_())),
        "af": pa.array(arrays(lambda: float(rng.integers(0, 5)) / 2), pa.list_(pa.float32())),
    })  # fmt: skip


def indexes(t: pa.Table) -> dict[str, ScalarIndex]:
    sch = schema()
    return {name: ScalarIndex.build(kind, sch.field(name), t.column(name))
            for name, kind in (("ai", "INVERTED"), ("as", "BITMAP"), ("ab", "INVERTED"),
                               ("af", "INVERTED"))}  # fmt: skip


def literal(rng: np.random.Generator, field: str) -> str:
    """Mostly a literal of the field's element type (others the compiler refuses)."""
    if rng.random() < 0.1:  # any type: refused, or matching nothing
        return ['1', '1.5', '"w1"', 'true'][int(rng.integers(0, 4))]
    if field == "ai":
        pick = int(rng.integers(0, 4))
        if pick == 0:
            return f"{float(rng.integers(-2, 10)) / 2}"  # integral or not
        return str(70000) if pick == 1 and rng.random() < 0.3 else str(int(rng.integers(-4, 42)))
    if field == "as":
        return f'"w{int(rng.integers(0, 32))}"'
    if field == "ab":
        return str(bool(rng.random() < 0.5)).lower()
    return f"{float(rng.integers(0, 6)) / 2}"


def random_filters(rng: np.random.Generator, count: int) -> list[str]:
    def atom() -> str:
        field = ["ai", "as", "ab", "af"][int(rng.integers(0, 4))]
        mode = int(rng.integers(0, 3))
        if mode == 0:
            return f"array_contains({field}, {literal(rng, field)})"
        lits = ", ".join(literal(rng, field) for _ in range(int(rng.integers(1, 4))))
        name = "array_contains_any" if mode == 1 else "array_contains_all"
        return f"{name}({field}, [{lits}])"

    return combine_atoms(rng, atom, count, most=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_array_index_answers_equal_the_scan(seed: int) -> None:
    sch = schema()
    t = table(seed)
    ix = indexes(t)
    rng = np.random.default_rng(100 + seed)
    checked = 0
    for expr in random_filters(rng, 400):
        try:
            flt = compile_filter(expr, sch)
        except Exception:  # a literal of the wrong type for the field: refused by both
            continue
        assert flt is not None
        scan = Evaluator(t).mask(flt.plan)
        fast = Evaluator(t, indexes=ix).mask(flt.plan)  # type: ignore[arg-type]
        np.testing.assert_array_equal(fast, scan, err_msg=expr)
        checked += 1
    assert checked > 250


def test_the_array_index_is_consulted() -> None:
    sch = schema()
    t = table(3)
    ix = indexes(t)
    calls: list[str] = []

    class Spy:
        def __init__(self, inner: ScalarIndex) -> None:
            self.inner, self.ntotal = inner, inner.ntotal

        def lookup(self, op: str, value: object = None, **kw: object) -> object:
            got = self.inner.lookup(op, value, **kw)  # type: ignore[arg-type]
            how = "index" if got is not None else "scan"
            calls.append(f"{self.inner.field}:{kw.get('mode')}:{how}")
            return got

    spied = {k: Spy(v) for k, v in ix.items()}
    words = ix["as"]
    rare = words.values[int(np.argmin(np.diff(words.offsets)))]  # the word in fewest rows
    for expr in ("array_contains(ai, 7)", f'array_contains_any(as, ["{rare}", "w99"])',
                 "array_contains_all(ai, [1, 2])", "array_contains(af, 1.5)",
                 "array_contains(ab, false)"):  # fmt: skip
        Evaluator(t, indexes=spied).mask(compile_filter(expr, sch).plan)  # type: ignore[arg-type, union-attr]
    # selective: the index; a float array: scanned; false is in most arrays of ab: scanned
    assert calls == ["ai:one:index", "as:any:index", "ai:all:index", "af:one:scan",
                     "ab:one:scan"]  # fmt: skip
    assert ix["af"].describe()["note"].startswith("array field")


def test_file_round_trip_keeps_the_postings() -> None:
    t = table(4)
    for name, index in indexes(t).items():
        back = load_index(dump(index))
        assert isinstance(back, ScalarIndex) and back.value_kind == index.value_kind, name
        for attr in ("values", "offsets", "rows", "null_rows"):
            np.testing.assert_array_equal(getattr(back, attr), getattr(index, attr))
    got = indexes(t)["ai"]
    assert got.lookup("contains", values=[7], mode="one") is not None
