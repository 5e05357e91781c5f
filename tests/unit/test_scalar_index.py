"""Scalar indexes (:mod:`gpuvec.index.scalar`): the filter engine's answers through an
index equal the scan's on random data and random filters (nulls, NaN, strings, bools,
every comparison, ``in``, ranges, ``not``/``and``/``or``); the index is really consulted;
Milvus's refusals; the index file round trip; and an embedded collection whose sealed
segments serve filters through their built scalar indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.errors import CorruptDataError, InvalidArgumentError
from gpuvec.expr import compile_filter
from gpuvec.expr.evaluate import Evaluator
from gpuvec.index.registry import dump, load_index
from gpuvec.index.scalar import ScalarIndex, check_field
from gpuvec.schema import CollectionSchema, DataType, FieldSchema
from gpuvec.testing.expr_reference import combine_atoms

N = 600


def schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("a", DataType.INT64, nullable=True)
    s.add_field("f", DataType.DOUBLE)
    s.add_field("g", DataType.FLOAT, nullable=True)
    s.add_field("s", DataType.VARCHAR, max_length=8, nullable=True)
    s.add_field("b", DataType.BOOL)
    s.add_field("j", DataType.JSON)
    s.add_field("arr", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    return s


def table(seed: int = 0, nan: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.integers(-5, 20, N)
    g = rng.random(N).astype(np.float32)
    if nan:
        g[rng.random(N) < 0.05] = np.nan
    return pa.table({
        "id": np.arange(N),
        "a": pa.array(a, mask=rng.random(N) < 0.1),
        "f": rng.integers(0, 8, N) / 2.0,
        "g": pa.array(g, pa.float32(), mask=rng.random(N) < 0.1),
        "s": pa.array([f"k{int(x)}" for x in rng.integers(0, 12, N)], mask=rng.random(N) < 0.1),
        "b": rng.random(N) < 0.3,
        "j": [f'{{"x": {i % 5}}}' for i in range(N)],
        "arr": [[i % 3, i % 4] for i in range(N)],
    })  # fmt: skip


def indexes(t: pa.Table, sch: CollectionSchema) -> dict[str, ScalarIndex]:
    kinds = {"id": "STL_SORT", "a": "STL_SORT", "f": "INVERTED", "g": "INVERTED",
             "s": "Trie", "b": "BITMAP", "arr": "INVERTED"}  # fmt: skip
    return {name: ScalarIndex.build(kind, sch.field(name), t.column(name))
            for name, kind in kinds.items()}  # fmt: skip


def random_filters(rng: np.random.Generator, count: int) -> list[str]:
    def atom() -> str:
        pick = int(rng.integers(0, 9))
        op = ["==", "!=", "<", "<=", ">", ">="][int(rng.integers(0, 6))]
        if pick == 0:
            return f"a {op} {int(rng.integers(-7, 22))}"
        if pick == 1:
            return f"f {op} {float(rng.integers(-1, 9)) / 2}"
        if pick == 2:
            return f"g {op} {rng.random():.3f}"
        if pick == 3:
            return f's {op} "k{int(rng.integers(0, 13))}"'
        if pick == 4:
            return f"b {op if op in ('==', '!=') else '=='} {str(bool(rng.random() < 0.5)).lower()}"
        if pick == 5:
            vals = ", ".join(str(int(x)) for x in rng.integers(-6, 21, 3))
            return f"a in [{vals}]"
        if pick == 6:
            vals = ", ".join(f'"k{int(x)}"' for x in rng.integers(0, 14, 3))
            return f"s in [{vals}]"
        if pick == 7:
            lo = int(rng.integers(-6, 20))
            return f"{lo} <= a < {lo + int(rng.integers(1, 8))}"
        return f"id {op} {int(rng.integers(0, N))}"

    return combine_atoms(rng, atom, count, most=4)


@pytest.mark.parametrize("nan", [False, True])
def test_index_answers_equal_the_scan(nan: bool) -> None:
    sch = schema()
    t = table(seed=3, nan=nan)
    ix = indexes(t, sch)
    rng = np.random.default_rng(11)
    for expr in random_filters(rng, 400):
        flt = compile_filter(expr, sch)
        assert flt is not None
        scan = Evaluator(t).mask(flt.plan)
        fast = Evaluator(t, indexes=ix).mask(flt.plan)
        np.testing.assert_array_equal(fast, scan, err_msg=expr)


def test_the_index_is_consulted_and_scans_when_it_cannot_answer() -> None:
    sch = schema()
    t = table(seed=1, nan=True)
    ix = indexes(t, sch)
    calls: list[str] = []

    class Spy:
        def __init__(self, inner: ScalarIndex) -> None:
            self.inner, self.ntotal = inner, inner.ntotal

        def lookup(self, op: str, value: object = None, **kw: object) -> object:
            got = self.inner.lookup(op, value, **kw)  # type: ignore[arg-type]
            calls.append(f"{self.inner.field}:{op}:{'index' if got is not None else 'scan'}")
            return got

    spied = {k: Spy(v) for k, v in ix.items()}
    exprs = ("a == 3", 's in ["k2"]', "g < 0.5", "b == true", "2 < a <= 3", "a != 3", "a > 3")
    for expr in exprs:
        flt = compile_filter(expr, sch)
        Evaluator(t, indexes=spied).mask(flt.plan)  # type: ignore[arg-type]
    # selective: the index; NaN in the column: scan; 30 % / 80 % of the rows: scan (setting
    # that many bits costs more); "!= 3" matches 96 %: the complement of "== 3" (4 %)
    assert calls == ["a:==:index", "s:in:index", "g:<:scan", "b:==:scan", "a:range:index",
                     "a:!=:index", "a:>:scan"]  # fmt: skip
    assert ix["g"].has_nan and ix["arr"].lookup("==", 1) is None  # NaN, ARRAY: scanned


def test_file_round_trip_and_corruption() -> None:
    sch = schema()
    t = table()
    for name, kind in (("a", "STL_SORT"), ("s", "INVERTED"), ("b", "BITMAP")):
        index = ScalarIndex.build(kind, sch.field(name), t.column(name))
        back = load_index(dump(index))
        assert isinstance(back, ScalarIndex) and back.describe() == index.describe()
        for attr in ("values", "offsets", "rows", "null_rows"):
            np.testing.assert_array_equal(getattr(back, attr), getattr(index, attr))
    blob = bytearray(dump(ScalarIndex.build("STL_SORT", sch.field("a"), t.column("a"))))
    blob[-40:] = b"\0" * 40
    with pytest.raises(CorruptDataError, match="scalar index payload"):
        load_index(bytes(blob))


def test_milvus_refusals() -> None:
    sch = schema()
    cases = [
        ("BITMAP", "f", "bitmap index are only supported on bool, int, string and array field"),
        ("BITMAP", "id", "create bitmap index on primary key not supported"),
        ("Trie", "a", "TRIE are only supported on varchar field"),
        ("STL_SORT", "b", "STL_SORT are only supported on numeric, varchar, timestamptz, date"),
        ("STL_SORT", "arr", "got Array"),
        ("INVERTED", "v", "vector field 'v'"),
        ("INVERTED", "j", "json index must specify cast type"),
    ]
    for itype, field, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            check_field(itype, sch.field(field), {})
    with pytest.raises(InvalidArgumentError, match="json_cast_type ARRAY_X is not supported"):
        check_field(
            "INVERTED", sch.field("j"), {"json_cast_type": "ARRAY_X", "json_path": "j['x']"}
        )
    with pytest.raises(InvalidArgumentError, match="json index must specify json path"):
        check_field("STL_SORT", sch.field("j"), {"json_cast_type": "DOUBLE"})
    check_field("BITMAP", sch.field("arr"), {})  # fits
    check_field("INVERTED", sch.field("j"), {"json_cast_type": "DOUBLE", "json_path": "j['x']"})
    assert FieldSchema  # the schema type the checks take


def test_embedded_segments_filter_through_their_scalar_indexes(tmp_path: Path) -> None:
    from gpuvec import MilvusClient
    from gpuvec.config import Config
    from gpuvec.index import scalar

    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address="", index_min_rows=50))
    try:
        s = c.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        s.add_field("a", DataType.INT64)
        idx = c.prepare_index_params()
        idx.add_index("v", index_type="FLAT", metric_type="L2")
        idx.add_index("a", index_type="STL_SORT")
        c.create_collection("c", schema=s, index_params=idx)
        c.insert("c", [{"id": i, "v": [i, 0.5], "a": i % 10} for i in range(300)])
        c.flush("c")
        c.wait_for_index("c", timeout=60)
        looked: list[str] = []
        real = scalar.ScalarIndex.lookup

        def spy(self: ScalarIndex, op: str, value: object = None, **kw: object) -> object:
            looked.append(op)
            return real(self, op, value, **kw)  # type: ignore[arg-type]

        scalar.ScalarIndex.lookup = spy  # type: ignore[method-assign]
        try:
            got = c.query("c", filter="a >= 7", output_fields=["count(*)"])
        finally:
            scalar.ScalarIndex.lookup = real  # type: ignore[method-assign]
        assert got[0]["count(*)"] == 90 and looked == [">="]
        desc = c.describe_index("c", "a")
        assert desc["state"] == "Finished" and desc["indexed_segments"] == 1
        assert desc["backend"] == "gpuvec sorted values + postings"
    finally:
        c.close()
