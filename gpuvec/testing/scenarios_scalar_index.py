"""End-to-end scalar-index scenarios, runtime-independent (issue 18, item 5): INVERTED,
STL_SORT, Trie, BITMAP and AUTOINDEX on scalar fields — created with the collection and
afterwards, listed and described as Milvus describes them, refused on fields they do not
fit with Milvus's messages, dropped and re-created; JSON path indexes (``json_path`` +
``json_cast_type``) and ARRAY indexes (``array_contains*``); filters over indexed fields
return exactly what a brute-force evaluation of the rows gives.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestScalarIndexScenarios(ScalarIndexScenarios):
        pass
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuvec.testing.scenarios_support import DIM, raises_milvus_error

N_ROWS = 400


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)


def _rows(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    return [{"id": i, "vector": vecs[i].tolist(), "age": None if i % 11 == 0 else int(i % 37),
             "score": float(i % 13) / 4, "name": f"n{i % 9}", "ok": i % 3 == 0}
            for i in range(n)]  # fmt: skip


def _ids(milvus: Any, name: str, expr: str) -> set[int]:
    return {r["id"] for r in milvus.query(name, filter=expr, output_fields=["id"], limit=16384)}


class ScalarIndexScenarios:
    def _collection(self, milvus: Any, name: str) -> list[dict[str, Any]]:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("vector", _dtype("FLOAT_VECTOR"), dim=DIM)
        schema.add_field("age", _dtype("INT64"), nullable=True)
        schema.add_field("score", _dtype("DOUBLE"))
        schema.add_field("name", _dtype("VARCHAR"), max_length=16)
        schema.add_field("ok", _dtype("BOOL"))
        index = milvus.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        index.add_index("age", index_type="STL_SORT")
        index.add_index("name", index_type="INVERTED", index_name="name_inv")
        index.add_index("ok")  # AUTOINDEX
        milvus.create_collection(name, schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        data = _rows(N_ROWS)
        milvus.insert(name, data)
        milvus.flush(name)
        return data

    def test_scalar_indexes_are_created_described_and_filter_exactly(self, milvus: Any) -> None:
        data = self._collection(milvus, "sx")
        idx = milvus.prepare_index_params()
        idx.add_index("score", index_type="INVERTED")
        milvus.create_index("sx", idx)
        assert sorted(milvus.list_indexes("sx")) == ["age", "name_inv", "ok", "score", "vector"]
        desc = milvus.describe_index("sx", "age")
        assert desc["index_type"] == "STL_SORT" and desc["field_name"] == "age"
        assert milvus.describe_index("sx", "name_inv")["index_type"] == "INVERTED"
        assert milvus.describe_index("sx", "ok")["index_type"] == "AUTOINDEX"
        by_id = {r["id"]: r for r in data}

        def want(pred: Any) -> set[int]:
            return {i for i, r in by_id.items() if pred(r)}

        cases = {
            "age >= 10 and age < 14": want(lambda r: r["age"] is not None and 10 <= r["age"] < 14),
            "age != 5": want(lambda r: r["age"] is not None and r["age"] != 5),
            "age in [1, 2, 36, 99]": want(lambda r: r["age"] in (1, 2, 36)),
            'name == "n3" or name in ["n4"]': want(lambda r: r["name"] in ("n3", "n4")),
            'name > "n6"': want(lambda r: r["name"] > "n6"),
            "ok == true and score <= 1.0": want(lambda r: r["ok"] and r["score"] <= 1.0),
            "not (age < 30)": want(lambda r: r["age"] is not None and not r["age"] < 30),
            "10 < age <= 12": want(lambda r: r["age"] is not None and 10 < r["age"] <= 12),
        }
        for expr, expected in cases.items():
            assert _ids(milvus, "sx", expr) == expected, expr
        hits = milvus.search("sx", data=[data[5]["vector"]], limit=5, filter='name == "n5"',
                             output_fields=["name"])  # fmt: skip
        assert hits[0] and all(h["entity"]["name"] == "n5" for h in hits[0])
        assert hits[0][0]["id"] == 5

    def test_scalar_indexes_refused_where_milvus_refuses_them(self, milvus: Any) -> None:
        self._collection(milvus, "sy")
        bad = [
            ("score", "BITMAP", "bitmap index are only supported on bool, int, string"),
            ("id", "BITMAP", "create bitmap index on primary key not supported"),
            ("age", "Trie", "TRIE are only supported on varchar field"),
            ("vector", "STL_SORT", "scalar index"),
            ("age", "HNSW", "can't build with this index HNSW"),
        ]
        for field, itype, message in bad:
            idx = milvus.prepare_index_params()
            idx.add_index(field, index_type=itype, index_name=f"{field}_{itype}".lower())
            with raises_milvus_error(message):
                milvus.create_index("sy", idx)
        idx = milvus.prepare_index_params()
        idx.add_index("age", index_type="INVERTED")  # another index on an indexed field
        with raises_milvus_error("at most one distinct index"):
            milvus.create_index("sy", idx)
        milvus.release_collection("sy")
        milvus.drop_index("sy", "age")
        assert "age" not in milvus.list_indexes("sy")
        idx = milvus.prepare_index_params()
        idx.add_index("age", index_type="INVERTED")
        milvus.create_index("sy", idx)
        assert milvus.describe_index("sy", "age")["index_type"] == "INVERTED"
        milvus.load_collection("sy")
        assert len(_ids(milvus, "sy", "age == 4")) == sum(
            1 for i in range(N_ROWS) if i % 11 and i % 37 == 4)  # fmt: skip

    def test_json_path_and_array_indexes_filter_exactly(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("vector", _dtype("FLOAT_VECTOR"), dim=DIM)
        schema.add_field("meta", _dtype("JSON"))
        schema.add_field("tags", _dtype("ARRAY"), element_type=_dtype("VARCHAR"),
                         max_capacity=4, max_length=8)  # fmt: skip
        index = milvus.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        index.add_index("meta", index_type="INVERTED", index_name="price",
                        params={"json_path": 'meta["price"]', "json_cast_type": "DOUBLE"})
        index.add_index("tags", index_type="INVERTED")
        milvus.create_collection("sj", schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        rng = np.random.default_rng(3)
        data = []
        for i in range(N_ROWS):
            price: Any = int(i % 97) if i % 5 else f"p{i}"  # some prices are strings
            data.append({"id": i, "vector": rng.standard_normal(DIM).tolist(),
                         "meta": {"price": price, "i": i},
                         "tags": [f"t{(i * k) % 53}" for k in range(1, 1 + i % 4)]})  # fmt: skip
        milvus.insert("sj", data)
        milvus.flush("sj")
        desc = milvus.describe_index("sj", "price")
        assert desc["index_type"] == "INVERTED" and desc["field_name"] == "meta"
        by_id = {r["id"]: r for r in data}

        def want(pred: Any) -> set[int]:
            return {i for i, r in by_id.items() if pred(r)}

        def num(r: dict[str, Any]) -> bool:
            return isinstance(r["meta"]["price"], int)

        cases = {
            'meta["price"] == 7': want(lambda r: num(r) and r["meta"]["price"] == 7),
            '10 <= meta["price"] < 12': want(lambda r: num(r) and 10 <= r["meta"]["price"] < 12),
            'meta["price"] in [1, 96]': want(lambda r: num(r) and r["meta"]["price"] in (1, 96)),
            'meta["price"] == "p5"': {5},
            'array_contains(tags, "t7")': want(lambda r: "t7" in r["tags"]),
            'array_contains_any(tags, ["t3", "t50"])': want(
                lambda r: "t3" in r["tags"] or "t50" in r["tags"]),
            'array_contains_all(tags, ["t2", "t4"])': want(
                lambda r: "t2" in r["tags"] and "t4" in r["tags"]),
        }  # fmt: skip
        for expr, expected in cases.items():
            assert _ids(milvus, "sj", expr) == expected, expr
        assert cases['meta["price"] == 7'] and cases['array_contains(tags, "t7")']
