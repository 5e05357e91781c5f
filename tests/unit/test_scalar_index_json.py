"""JSON path indexes (:mod:`gpuvec.index.scalar_json`): Milvus's path syntax; the filter
engine's answers through a path index equal the scan's on random documents mixing every
JSON kind at the path (ints, floats, strings, bools, nulls, lists, objects, missing keys,
null cells, ints past 2**53) and random filters; the index is consulted only for its own
path and a literal of its cast type; the file round trip; an embedded collection whose
sealed segments answer a JSON filter through the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.errors import InvalidArgumentError
from gpuvec.expr import compile_filter
from gpuvec.expr.evaluate import Evaluator
from gpuvec.index.registry import dump, load_index
from gpuvec.index.scalar import ScalarIndex, check_field
from gpuvec.index.scalar_json import parse_json_path
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.testing.expr_reference import combine_atoms

N = 800


def schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("j", DataType.JSON, nullable=True)
    return s


def value(rng: np.random.Generator, big: bool) -> object:
    pick = int(rng.integers(0, 10))
    if pick <= 2:
        return int(rng.integers(-5, 15))
    if pick == 3:
        return float(rng.integers(-10, 30)) / 2
    if pick == 4:
        return f"s{int(rng.integers(0, 9))}"
    if pick == 5:
        return bool(rng.random() < 0.5)
    if pick == 6:
        return None
    if pick == 7:
        return [int(rng.integers(0, 3))]
    if pick == 8 and big:
        return 2**60 + int(rng.integers(0, 3))
    return {"z": 1}


def table(seed: int, big: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    docs: list[str | None] = []
    for _ in range(N):
        r = rng.random()
        if r < 0.05:
            docs.append(None)  # a null cell
        elif r < 0.15:
            docs.append(json.dumps({"other": 1}))  # no path
        else:
            docs.append(json.dumps({"a": {"b": value(rng, big)}, "list": [value(rng, big)]}))
    return pa.table({"id": np.arange(N), "j": pa.array(docs, pa.string())})


def build(t: pa.Table, path: str, cast: str, itype: str = "INVERTED") -> ScalarIndex:
    params = {"json_path": path, "json_cast_type": cast}
    check_field(itype, schema().field("j"), params)
    return ScalarIndex.build(itype, schema().field("j"), t.column("j"), params)


def literal(rng: np.random.Generator) -> str:
    pick = int(rng.integers(0, 5))
    if pick == 0:
        return str(int(rng.integers(-7, 17)))
    if pick == 1:
        return str(float(rng.integers(-12, 32)) / 2)
    if pick == 2:
        return f'"s{int(rng.integers(0, 10))}"'
    if pick == 3:
        return str(bool(rng.random() < 0.5)).lower()
    return str(2**60 + int(rng.integers(0, 3)))


def random_filters(rng: np.random.Generator, target: str, count: int) -> list[str]:
    def atom() -> str:
        pick = int(rng.integers(0, 4))
        if pick == 0:
            op = ["==", "!=", "<", "<=", ">", ">="][int(rng.integers(0, 6))]
            return f"{target} {op} {literal(rng)}"
        if pick == 1:
            vals = ", ".join(literal(rng) for _ in range(int(rng.integers(1, 4))))
            return f"{target} in [{vals}]"
        if pick == 2:
            lo = int(rng.integers(-6, 14))
            return f"{lo} <= {target} < {lo + int(rng.integers(1, 6))}"
        return f"{target} not in [{literal(rng)}]"

    return combine_atoms(rng, atom, count, most=3)


def test_milvus_path_syntax() -> None:
    assert parse_json_path('j["a"]["b"]', "j") == ("a", "b")
    assert parse_json_path("j['a'][0]", "j") == ("a", "0")
    assert parse_json_path("j", "j") == ()
    assert parse_json_path('j["k\\"q"]', "j") == ('k"q',)
    for bad in ('x["a"]', 'j.a', 'j["a"', "jj['a']"):
        with pytest.raises(InvalidArgumentError, match="json_path"):
            parse_json_path(bad, "j")
    with pytest.raises(InvalidArgumentError, match="must start with the JSON field"):
        check_field("INVERTED", schema().field("j"), {"json_cast_type": "DOUBLE",
                                                       "json_path": 'other["a"]'})  # fmt: skip


@pytest.mark.parametrize(("cast", "big"), [("DOUBLE", False), ("DOUBLE", True),
                                           ("VARCHAR", False), ("BOOL", False)])  # fmt: skip
def test_path_index_answers_equal_the_scan(cast: str, big: bool) -> None:
    sch = schema()
    t = table(seed=5, big=big)
    ix = {"j": build(t, 'j["a"]["b"]', cast)}
    rng = np.random.default_rng(17)
    answered = 0
    for expr in random_filters(rng, 'j["a"]["b"]', 300):
        flt = compile_filter(expr, sch)
        assert flt is not None
        scan = Evaluator(t).mask(flt.plan)
        fast = Evaluator(t, indexes=ix).mask(flt.plan)  # type: ignore[arg-type]
        np.testing.assert_array_equal(fast, scan, err_msg=f"{cast}: {expr}")
        answered += 1
    assert answered == 300


def test_consulted_for_its_path_and_type_only() -> None:
    sch = schema()
    t = table(seed=2)
    index = build(t, 'j["a"]["b"]', "DOUBLE")
    calls: list[str] = []

    class Spy:
        path, ntotal = index.path, index.ntotal

        def lookup(self, op: str, value: object = None, **kw: object) -> object:
            got = index.lookup(op, value, **kw)  # type: ignore[arg-type]
            calls.append(f"{op}:{'index' if got is not None else 'scan'}")
            return got

    for expr in ('j["a"]["b"] == 3', 'j["a"]["b"] == "s1"', 'j["list"][0] == 3',
                 'j["a"]["b"] != 3', 'j["a"]["b"] in [1, 2]', '1 <= j["a"]["b"] < 3'):  # fmt: skip
        flt = compile_filter(expr, sch)
        Evaluator(t, indexes={"j": Spy()}).mask(flt.plan)  # type: ignore[arg-type, dict-item]
    # a string literal against a DOUBLE index: scanned; another path: never asked
    assert calls == ["==:index", "==:scan", "!=:index", "in:index", "range:index"]
    big = build(table(seed=2, big=True), 'j["a"]["b"]', "DOUBLE")
    assert big.big_ints and big.lookup("==", 3) is None and big.lookup("==", 3.0) is not None
    cast_fn = ScalarIndex.build("INVERTED", sch.field("j"), t.column("j"), {
        "json_path": 'j["a"]["b"]', "json_cast_type": "DOUBLE",
        "json_cast_function": "STRING_TO_DOUBLE"})  # fmt: skip
    assert cast_fn.path is None and cast_fn.lookup("==", 3) is None  # converts: scanned
    assert "scanned" in cast_fn.describe()["note"]


def test_file_round_trip() -> None:
    t = table(seed=4, big=True)
    for cast in ("DOUBLE", "VARCHAR", "BOOL"):
        index = build(t, "j['list'][0]", cast, "STL_SORT" if cast != "BOOL" else "BITMAP")
        back = load_index(dump(index))
        assert isinstance(back, ScalarIndex) and back.describe() == index.describe()
        assert back.path == ("list", "0") and back.big_ints == index.big_ints
        for attr in ("values", "offsets", "rows", "null_rows"):
            np.testing.assert_array_equal(getattr(back, attr), getattr(index, attr))
        assert len(back.values) > 0


def test_embedded_json_filter_through_the_path_index(tmp_path: Path) -> None:
    from gpuvec import MilvusClient
    from gpuvec.config import Config
    from gpuvec.index import scalar

    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address="", index_min_rows=50))
    try:
        s = c.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        s.add_field("meta", DataType.JSON)
        idx = c.prepare_index_params()
        idx.add_index("v", index_type="FLAT", metric_type="L2")
        params = {"json_path": 'meta["price"]', "json_cast_type": "double"}
        idx.add_index("meta", index_type="INVERTED", index_name="price_idx", params=params)
        c.create_collection("c", schema=s, index_params=idx)
        rows = [{"id": i, "v": [i, 0.5],
                 "meta": {"price": i % 50} if i % 7 else {"price": f"p{i}"}}
                for i in range(400)]  # fmt: skip
        c.insert("c", rows)
        c.flush("c")
        c.wait_for_index("c", timeout=60)
        looked: list[str] = []
        real = scalar.ScalarIndex.lookup

        def spy(self: ScalarIndex, op: str, value: object = None, **kw: object) -> object:
            got = real(self, op, value, **kw)  # type: ignore[arg-type]
            looked.append(f"{op}:{'index' if got is not None else 'scan'}")
            return got

        scalar.ScalarIndex.lookup = spy  # type: ignore[method-assign]
        try:
            got = c.query("c", filter='meta["price"] == 7', output_fields=["id"])
            strs = c.query("c", filter='meta["price"] == "p14"', output_fields=["id"])
        finally:
            scalar.ScalarIndex.lookup = real  # type: ignore[method-assign]
        want = sorted(r["id"] for r in rows if r["meta"]["price"] == 7)
        assert sorted(r["id"] for r in got) == want and len(want) > 0
        assert [r["id"] for r in strs] == [14]
        assert looked == ["==:index", "==:scan"]
        desc = c.describe_index("c", "price_idx")
        assert desc["state"] == "Finished" and desc["params"]["json_cast_type"] == "double"
    finally:
        c.close()
