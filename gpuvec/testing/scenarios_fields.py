"""End-to-end ``add_collection_field`` scenarios, runtime-independent (issue 18, item 7): a
nullable scalar field added to a collection that already holds sealed and growing rows —
described like the others, null on the earlier rows (output fields, ``is null``), written
and filtered on later rows before and after a flush; Milvus's refusals (not nullable, a
vector field, a duplicate name) and gpuvec's (a default value). And the search iterator:
over gRPC pymilvus gets Milvus's v2 iterator, and every hit comes exactly once, in the
order one big search gives. And ``alter_collection_field``: max_length, max_capacity and
mmap.enabled changed on a live collection, the new limits applied to the next write.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestFieldScenarios(FieldScenarios):
        pass
"""

from __future__ import annotations

from typing import Any

from gpuvec.testing.scenarios_support import DIM, raises_milvus_error


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)


def _rows(ids: range, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0] + [0.0] * (DIM - 4), **extra}
            for i in ids]  # fmt: skip


def _count(milvus: Any, expr: str) -> int:
    return int(milvus.query("af", filter=expr, output_fields=["count(*)"])[0]["count(*)"])


class FieldScenarios:
    def test_a_nullable_field_added_to_a_live_collection(self, milvus: Any) -> None:
        milvus.create_collection("af", dimension=DIM, metric_type="L2",
                                 consistency_level="Strong")  # fmt: skip
        milvus.insert("af", _rows(range(0, 40)))
        milvus.flush("af")  # sealed rows
        milvus.insert("af", _rows(range(40, 60)))  # growing rows
        assert _count(milvus, 'color == "red"') == 0  # compiled as a dynamic key for now
        milvus.add_collection_field("af", "color", _dtype("VARCHAR"), max_length=16,
                                    nullable=True)  # fmt: skip
        fields = {f["name"]: f for f in milvus.describe_collection("af")["fields"]}
        assert "color" in fields and fields["color"].get("nullable") is True
        got = milvus.query("af", filter="id in [3, 45]", output_fields=["color"])
        assert sorted((r["id"], r["color"]) for r in got) == [(3, None), (45, None)]
        assert _count(milvus, "color is null") == 60
        milvus.insert("af", _rows(range(60, 80), color="red"))
        milvus.insert("af", _rows(range(80, 90)))  # the new field left out: null
        for _ in range(2):  # growing, then sealed
            assert _count(milvus, 'color == "red"') == 20
            assert _count(milvus, "color is null") == 70
            hits = milvus.search("af", data=[_rows(range(70, 71))[0]["vector"]], limit=1,
                                 filter='color == "red"', output_fields=["color"])  # fmt: skip
            assert hits[0][0]["id"] == 70 and hits[0][0]["entity"]["color"] == "red"
            milvus.flush("af")

    def test_fields_refused_as_milvus_refuses_them(self, milvus: Any) -> None:
        milvus.create_collection("af", dimension=DIM, metric_type="L2")
        with raises_milvus_error("added field must be nullable"):
            milvus.add_collection_field("af", "n", _dtype("INT64"))
        with raises_milvus_error("vector field"):
            milvus.add_collection_field("af", "v2", _dtype("FLOAT_VECTOR"), dim=DIM,
                                        nullable=True)  # fmt: skip
        with raises_milvus_error("duplicate field name"):
            milvus.add_collection_field("af", "id", _dtype("INT64"), nullable=True)
        with raises_milvus_error("default_value is not supported"):
            milvus.add_collection_field("af", "n", _dtype("INT64"), nullable=True,
                                        default_value=3)  # fmt: skip
        names = [f["name"] for f in milvus.describe_collection("af")["fields"]]
        assert "n" not in names and "v2" not in names  # nothing half-applied


class SearchIteratorScenarios:
    def test_search_iterator_pages_every_hit_once(self, milvus: Any) -> None:
        import numpy as np

        for metric in ("L2", "COSINE"):
            name = f"si_{metric.lower()}"
            milvus.create_collection(name, dimension=DIM, metric_type=metric,
                                     consistency_level="Strong")  # fmt: skip
            vecs = np.random.default_rng(3).standard_normal((700, DIM)).astype(np.float32)
            milvus.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(400)])
            milvus.flush(name)  # sealed and growing rows
            milvus.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(400, 700)])
            it = milvus.search_iterator(name, data=[vecs[0].tolist()], batch_size=64)
            if type(milvus).__module__.startswith("pymilvus"):  # over gRPC: Milvus's v2
                assert type(it).__name__ == "SearchIteratorV2"
            ids: list[int] = []
            while page := it.next():
                ids += [h["id"] for h in page]
            it.close()
            assert len(ids) == 700 and len(set(ids)) == 700, metric
            best = [h["id"] for h in milvus.search(name, data=[vecs[0].tolist()], limit=200)[0]]
            assert ids[:200] == best, metric


class AlterFieldScenarios:
    def test_alter_collection_field(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("vector", _dtype("FLOAT_VECTOR"), dim=DIM)
        schema.add_field("t", _dtype("VARCHAR"), max_length=4)
        schema.add_field("a", _dtype("ARRAY"), element_type=_dtype("INT64"), max_capacity=2)
        index = milvus.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        milvus.create_collection("alt", schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        row = {**_rows(range(1, 2))[0], "t": "longer", "a": [1, 2, 3]}
        with raises_milvus_error("max_length|exceeds"):
            milvus.insert("alt", [row])
        milvus.alter_collection_field("alt", "t", field_params={"max_length": 16})
        milvus.alter_collection_field("alt", "a", field_params={"max_capacity": 8})
        milvus.alter_collection_field("alt", "vector", field_params={"mmap.enabled": True})
        fields = {f["name"]: f for f in milvus.describe_collection("alt")["fields"]}
        assert int(fields["t"]["params"]["max_length"]) == 16
        assert int(fields["a"]["params"]["max_capacity"]) == 8
        assert milvus.insert("alt", [row])["insert_count"] == 1
        got = milvus.query("alt", filter="id == 1", output_fields=["t", "a"])
        assert got[0]["t"] == "longer" and list(got[0]["a"]) == [1, 2, 3]
        with raises_milvus_error("max_length"):
            milvus.alter_collection_field("alt", "t", field_params={"max_length": 70000})
        with raises_milvus_error("primary key"):
            milvus.alter_collection_field("alt", "id", field_params={"mmap.enabled": True})
