"""text_match / phrase_match (:mod:`gpuvec.text.matching` and the filter engine): any /
at-least-m token matches and in-order phrases within a slop, against a plain-Python
reference over the same analyser's tokens; a segment's index extended by appended rows;
null texts; the filter language's refusals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gpuvec.expr import FilterError, compile_filter
from gpuvec.expr.evaluate import Evaluator
from gpuvec.expr.jsoncache import JsonCache
from gpuvec.schema import CollectionSchema, DataType
from gpuvec.text.analyzer import analyzer
from gpuvec.text.matching import TextIndex

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def schema() -> CollectionSchema:
    s = CollectionSchema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("t", DataType.VARCHAR, max_length=200, nullable=True, enable_analyzer=True,
                enable_match=True)  # fmt: skip
    s.add_field("plain", DataType.VARCHAR, max_length=20)
    return s


def texts(n: int, seed: int) -> list[str | None]:
    rng = np.random.default_rng(seed)
    out: list[str | None] = []
    for _ in range(n):
        out.append(None if rng.random() < 0.05 else
                   " ".join(rng.choice(WORDS, int(rng.integers(1, 8)))).title())  # fmt: skip
    return out


def ref_match(rows: list[str | None], query: str, m: int = 1) -> np.ndarray:
    an = analyzer(None)
    q = set(an.tokens(query))
    return np.array([t is not None and len(q & set(an.tokens(t))) >= m for t in rows])


def ref_phrase(rows: list[str | None], query: str, slop: int) -> np.ndarray:
    an = analyzer(None)
    q = an.tokens(query)
    out = []
    for t in rows:
        toks = an.tokens(t) if t else []
        ok = False
        for start in range(len(toks)):
            if toks[start] != q[0]:
                continue
            pos, gaps = start, 0
            for word in q[1:]:
                nxt = next((j for j in range(pos + 1, len(toks)) if toks[j] == word), None)
                if nxt is None:
                    gaps = slop + 1
                    break
                gaps += nxt - pos - 1
                pos = nxt
            if gaps <= slop:
                ok = True
                break
        out.append(ok)
    return np.array(out)


def test_filters_equal_the_reference_and_the_index_grows_with_the_segment() -> None:
    rows = texts(300, 1)
    sch = schema()
    cache = JsonCache()
    for n in (120, 300):  # a growing segment: the same cache, more rows
        table = pa.table({"t": pa.array(rows[:n], pa.string()),
                          "plain": pa.array(["x"] * n)})  # fmt: skip
        cases = {
            "text_match(t, 'alpha gamma')": ref_match(rows[:n], "alpha gamma"),
            "text_match(t, 'alpha gamma delta', 2)": ref_match(rows[:n], "alpha gamma delta", 2),
            "phrase_match(t, 'beta gamma')": ref_phrase(rows[:n], "beta gamma", 0),
            "phrase_match(t, 'beta delta', 2)": ref_phrase(rows[:n], "beta delta", 2),
            "not text_match(t, 'eta')": ~ref_match(rows[:n], "eta")
            & np.array([t is not None for t in rows[:n]]),
        }  # fmt: skip
        for expr, want in cases.items():
            got = Evaluator(table, cache).mask(compile_filter(expr, sch).plan)  # type: ignore[union-attr]
            np.testing.assert_array_equal(got, want, err_msg=expr)
            assert want.any(), expr
    index = cache.derived(("text", "t", "{}"), lambda: None)
    assert isinstance(index, TextIndex) and len(index) == 300


def test_refusals() -> None:
    sch = schema()
    for expr, message in (("text_match(plain, 'x')", "does not enable match"),
                          ("text_match(t)", "expects 2 or 3 arguments"),
                          ("text_match(t, 3)", "needs a string second argument"),
                          ("phrase_match(t, 'a b', -1)", "slop must be a non-negative"),
                          ("text_match(id, 'x')", "needs a VARCHAR field")):  # fmt: skip
        with pytest.raises(FilterError, match=message):
            compile_filter(expr, sch)
