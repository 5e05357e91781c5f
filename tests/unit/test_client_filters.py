"""Filters through ``MilvusClient`` (search, query, delete): every construct of the filter
language against a plain-Python predicate over the same rows, exact pre-filtered search
(recall 1.0 at any selectivity), ``count(*)``, limit/offset, templates and errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import DataType

N, DIM = 240, 8
WORDS = ["abc", "abcd", "xabc", "zzz", "a_c", "a%c", 'q"uote', "it's", "mnop", "red"]


def make_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(N):
        row: dict[str, Any] = {
            "id": i,
            "vector": rng.standard_normal(DIM).astype(np.float32),
            "age": None if i % 11 == 0 else int(i % 40),
            "score": float(round(rng.random(), 3)),
            "name": WORDS[i % len(WORDS)] + ("yz" if i % 3 == 0 else ""),
            "flag": bool(i % 2),
            "meta": None
            if i % 13 == 0
            else {"a": i % 9, "b": {"c": "x" if i % 4 == 0 else "y"}, "arr": [i % 3, i % 5, 7]},
            "tags": [["red", "blue", "green"][i % 3]] + (["red"] if i % 7 == 0 else []),
            "nums": list(range(i % 5)),
        }
        if i % 2 == 0:
            row["color"] = ["red", "blue"][i % 4 // 2]
        if i % 3 == 0:
            row["rank"] = i % 6
        rows.append(row)
    return rows


ROWS = make_rows()


def schema() -> Any:
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("score", DataType.DOUBLE)
    s.add_field("name", DataType.VARCHAR, max_length=64)
    s.add_field("flag", DataType.BOOL)
    s.add_field("meta", DataType.JSON, nullable=True)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4,
                max_length=16)  # fmt: skip
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8)
    return s


def open_collection(c: MilvusClient, name: str, seal_half: bool = True) -> None:
    idx = c.prepare_index_params()
    idx.add_index("vector", index_type="FLAT", metric_type="L2")
    c.create_collection(name, schema=schema(), index_params=idx)
    c.insert(name, ROWS[: N // 2])
    if seal_half:
        c.flush(name)  # half sealed, half growing: both paths see the filter
    c.insert(name, ROWS[N // 2 :])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    c = MilvusClient(str(tmp_path_factory.mktemp("f") / "db"), config=Config(seal_idle_s=3600))
    open_collection(c, "c")
    yield c
    c.close()


def jget(r: dict, *path: Any) -> Any:
    v: Any = r.get("meta")
    for p in path:
        in_list = isinstance(p, int) and isinstance(v, list) and -len(v) <= p < len(v)
        in_dict = isinstance(p, str) and isinstance(v, dict) and p in v
        if not (in_list or in_dict):
            return None
        v = v[p]
    return v


def num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def like(pattern: str) -> Callable[[str], bool]:
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return lambda s: re.fullmatch(rx, s, re.S) is not None


A = "age"  # shorthand: rows whose age is null never match a predicate on age
CASES: list[tuple[str, Callable[[dict], bool]]] = [
    ("age > 30", lambda r: r[A] is not None and r[A] > 30),
    ("10 <= age < 25", lambda r: r[A] is not None and 10 <= r[A] < 25),
    ("1 > score >= 0.5", lambda r: 0.5 <= r["score"] < 1),
    ("age in [1, 2, 3]", lambda r: r[A] in (1, 2, 3)),
    ("age not in [1, 2, 3]", lambda r: r[A] is not None and r[A] not in (1, 2, 3)),
    ("name like 'abc%'", lambda r: r["name"].startswith("abc")),
    ("name like '%yz'", lambda r: r["name"].endswith("yz")),
    ("name like '%bc%'", lambda r: "bc" in r["name"]),
    ("name like 'a_c%'", lambda r: like("a_c%")(r["name"])),
    ("name LIKE 'x%' OR name like 'm%'", lambda r: r["name"][0] in "xm"),
    ('name == "q\\"uote"', lambda r: r["name"] == 'q"uote'),
    ("name == 'it\\'s'", lambda r: r["name"] == "it's"),
    ("age > 10 and score < 0.5 or flag == true",
     lambda r: (r[A] is not None and r[A] > 10 and r["score"] < 0.5) or r["flag"]),
    ("age > 10 && (score < 0.5 || flag == True)",
     lambda r: r[A] is not None and r[A] > 10 and (r["score"] < 0.5 or r["flag"])),
    ("not (score > 0.5)", lambda r: not r["score"] > 0.5),
    ("!(flag == true)", lambda r: not r["flag"]),
    ("flag == FALSE AND NOT (score < 0.2)", lambda r: not r["flag"] and r["score"] >= 0.2),
    ("age * 2 + 1 > 40", lambda r: r[A] is not None and r[A] * 2 + 1 > 40),
    ("age % 7 == 3", lambda r: r[A] is not None and r[A] % 7 == 3),
    ("-age < -30", lambda r: r[A] is not None and -r[A] < -30),
    ("score < 0.5 ** 2", lambda r: r["score"] < 0.25),  # ** on constants only (Milvus)
    ("age / 2 > 10", lambda r: r[A] is not None and r[A] // 2 > 10),
    ("score > 5e-1 and score <= 0.75", lambda r: 0.5 < r["score"] <= 0.75),
    ("age != 5", lambda r: r[A] is not None and r[A] != 5),
    ('meta["a"] is null', lambda r: jget(r, "a") is None),
    ("age == 0x1F or age == 0o17 or age == 0b101", lambda r: r[A] in (31, 15, 5)),
    ("age is null", lambda r: r[A] is None),
    ("age IS NOT NULL and age < 3", lambda r: r[A] is not None and r[A] < 3),
    ("meta is null", lambda r: r["meta"] is None),
    ('meta["a"] > 5', lambda r: num(jget(r, "a")) and jget(r, "a") > 5),
    ('meta["b"]["c"] == "x"', lambda r: jget(r, "b", "c") == "x"),
    ('meta["arr"][0] == 1', lambda r: jget(r, "arr", 0) == 1),
    ('exists meta["a"]', lambda r: jget(r, "a") is not None),
    ('json_contains(meta["arr"], 4)', lambda r: 4 in (jget(r, "arr") or [])),
    ('JSON_CONTAINS_ALL(meta["arr"], [1, 7])', lambda r: {1, 7} <= set(jget(r, "arr") or [])),
    ('json_contains_any(meta["arr"], [3, 4])', lambda r: bool({3, 4} & set(jget(r, "arr") or []))),
    ('array_contains(tags, "red")', lambda r: "red" in r["tags"]),
    ("array_contains_all(nums, [1, 2])", lambda r: {1, 2} <= set(r["nums"])),
    ("ARRAY_CONTAINS_ANY(nums, [3, 9])", lambda r: bool({3, 9} & set(r["nums"]))),
    ("array_length(nums) > 2", lambda r: len(r["nums"]) > 2),
    ("nums[0] == 0 and tags[0] == 'blue'",
     lambda r: bool(r["nums"]) and r["nums"][0] == 0 and r["tags"][0] == "blue"),
    ('color == "red"', lambda r: r.get("color") == "red"),
    ('$meta["rank"] >= 3', lambda r: r.get("rank") is not None and r["rank"] >= 3),
    ("id in [3, 5, 7, 400]", lambda r: r["id"] in (3, 5, 7)),
    ("id == 9", lambda r: r["id"] == 9),
]  # fmt: skip


def expected(pred: Callable[[dict], bool], rows: list[dict] = ROWS) -> list[int]:
    return sorted(r["id"] for r in rows if pred(r))


@pytest.mark.parametrize("expr,pred", CASES, ids=[c[0] for c in CASES])
def test_query_matches_reference(client: MilvusClient, expr: str, pred: Callable) -> None:
    got = client.query("c", filter=expr, output_fields=["id"])
    assert [r["id"] for r in got] == expected(pred)  # primary-key order
    count = client.query("c", filter=expr, output_fields=["count(*)"])
    assert count == [{"count(*)": len(expected(pred))}]


@pytest.mark.parametrize("expr,pred", CASES, ids=[c[0] for c in CASES])
def test_search_prefilter_is_exact(client: MilvusClient, expr: str, pred: Callable) -> None:
    q = np.random.default_rng(len(expr)).standard_normal((2, DIM)).astype(np.float32)
    res = client.search("c", data=q, filter=expr, limit=15, output_fields=["id"])
    ids = np.array(expected(pred), np.int64)
    base = np.stack([ROWS[i]["vector"] for i in ids]) if len(ids) else np.zeros((0, DIM))
    for qi, hits in enumerate(res):
        d = ((base - q[qi]) ** 2).sum(1)
        want = ids[np.argsort(d, kind="stable")[:15]].tolist()
        assert [h["id"] for h in hits] == want  # recall 1.0, whatever the selectivity


DELETE_CASES = CASES


@pytest.mark.parametrize("expr,pred", DELETE_CASES, ids=[c[0] for c in DELETE_CASES])
def test_delete_by_filter(tmp_path: Path, expr: str, pred: Callable) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(seal_idle_s=3600))
    try:
        open_collection(c, "d")
        gone = expected(pred)
        res = c.delete("d", filter=expr)
        assert res["delete_count"] == len(gone)
        left = [r["id"] for r in c.query("d", filter="id >= 0", output_fields=["id"])]
        assert left == sorted(set(range(N)) - set(gone))
        assert c.query("d", filter=expr, output_fields=["count(*)"]) == [{"count(*)": 0}]
    finally:
        c.close()


def test_limit_offset_and_templates(client: MilvusClient) -> None:
    allowed = expected(lambda r: r[A] is not None and r[A] > 20)
    got = client.query("c", filter="age > 20", limit=5, offset=3, output_fields=["age"])
    assert [r["id"] for r in got] == allowed[3:8]
    assert all(set(r) == {"id", "age"} for r in got)
    got = client.query("c", filter="", limit=4)
    assert [r["id"] for r in got] == [0, 1, 2, 3] and "vector" in got[0]
    assert client.query("c", output_fields=["count(*)"]) == [{"count(*)": N}]
    params = {"lo": 20, "names": ["abc", "zzz"]}
    got = client.query("c", filter="age > {lo} and name in {names}", filter_params=params,
                       output_fields=["id"])  # fmt: skip
    want = expected(lambda r: r[A] is not None and r[A] > 20 and r["name"] in ("abc", "zzz"))
    assert [r["id"] for r in got] == want
    res = client.search("c", data=[ROWS[0]["vector"]], filter="id in {ids}",
                        filter_params={"ids": [4, 8]}, limit=5)  # fmt: skip
    assert sorted(h["id"] for h in res[0]) == [4, 8]


def test_json_and_dynamic_output(client: MilvusClient) -> None:
    got = client.query("c", filter="id in [2, 3]", output_fields=["meta", "color", "rank"])
    by_id = {r["id"]: r for r in got}
    assert by_id[2]["meta"] == ROWS[2]["meta"] and by_id[2]["color"] == ROWS[2]["color"]
    assert "color" not in by_id[3] and by_id[3]["rank"] == 3
    assert json.loads(json.dumps(by_id[3]["meta"])) == ROWS[3]["meta"]


@pytest.mark.parametrize(
    "expr,fragment",
    [
        ("age >", "position"),
        ("agee > 3 and", "position"),
        ("name > 3", "name"),
        ("name + 1 > 2", "name"),
        ("vector > 1", "vector"),
        ("array_contains(age, 1)", "age"),
        ("age in [1, 'a']", "position"),
        ("json_contains(meta['arr'])", "json_contains"),
        ("(" * 5000 + "age > 1" + ")" * 5000, "deep"),
    ],
)
def test_bad_filters_name_the_problem(client: MilvusClient, expr: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        client.query("c", filter=expr, output_fields=["id"])
    assert fragment.lower() in str(e.value).lower()
    with pytest.raises(InvalidArgumentError):
        client.search("c", data=[ROWS[0]["vector"]], filter=expr, limit=3)
    with pytest.raises(InvalidArgumentError):
        client.delete("c", filter=expr)
    assert client.query("c", output_fields=["count(*)"]) == [{"count(*)": N}]  # nothing applied


def test_argument_errors(client: MilvusClient) -> None:
    with pytest.raises(InvalidArgumentError, match="not both"):
        client.query("c", filter="age > 1", ids=[1])
    with pytest.raises(InvalidArgumentError, match="not both"):
        client.delete("c", filter="age > 1", ids=[1])
    with pytest.raises(InvalidArgumentError, match="limit"):
        client.query("c", filter="")
    with pytest.raises(InvalidArgumentError, match="window"):
        client.query("c", filter="age > 1", limit=16000, offset=500)
    with pytest.raises(InvalidArgumentError, match="count"):
        client.query("c", filter="age > 1", output_fields=["count(*)", "age"])
