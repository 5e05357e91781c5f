"""MVCC visibility: rows appear at their insert ts, vanish at their delete ts, and an
upsert (delete + insert at one ts) swaps old for new; checked against a direct rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuvec.query.visibility import Visibility


def test_reads_at_every_timestamp() -> None:
    v = Visibility(capacity=2)
    v.append(np.array([10, 10, 20], np.uint64))  # rows 0, 1 at ts 10; row 2 at 20
    assert v.delete_rows(np.array([0]), 15) == 1
    v.append(np.array([30], np.uint64))
    assert v.delete_rows(np.array([2, 3]), 30) == 1, "only rows inserted before 30 are hit"
    assert v.mask(5).tolist() == [False, False, False, False]
    assert v.mask(10).tolist() == [True, True, False, False]
    assert v.mask(15).tolist() == [False, True, False, False]
    assert v.mask(25).tolist() == [False, True, True, False]
    assert v.mask(30).tolist() == [False, True, False, True]
    assert v.mask(99).tolist() == [False, True, False, True]
    assert v.live_count() == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 50)), min_size=1, max_size=40),
    st.integers(0, 60),
)
def test_matches_the_rule(ops: list[tuple[bool, int]], read: int) -> None:
    """Random appends (one row each) and deletes of a random earlier row, in ts order."""
    v = Visibility(capacity=1)
    ins: list[int] = []
    dele: list[int] = []
    ts = 0
    for is_delete, step in ops:
        ts += step % 3
        if is_delete and ins:
            row = step % len(ins)
            v.delete_rows(np.array([row]), ts)
            if ins[row] < ts and dele[row] > ts:
                dele[row] = ts
        else:
            v.append(np.array([ts], np.uint64))
            ins.append(ts)
            dele.append(2**64 - 1)
    want = [i <= read and d > read for i, d in zip(ins, dele, strict=True)]
    assert v.mask(read).tolist() == want
