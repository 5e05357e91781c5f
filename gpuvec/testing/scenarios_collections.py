"""End-to-end collection scenarios of the Milvus ``MilvusClient`` API, runtime-independent.

:class:`CollectionScenarios` checks the collection lifecycle (quick setup, describe,
stats, rename, release/load, drop), explicit schemas and indexes (HNSW, IVF_FLAT with
``create_index`` waiting for the build, AUTOINDEX), partitions, aliases, databases,
errors (codes and messages naming what is wrong) and administration (flush, compaction,
collection and database properties, truncate).

To run it against a runtime, subclass it in a test module and provide the fixtures:

- ``milvus``: a client with pymilvus's ``MilvusClient`` API on an empty runtime (the
  embedded ``gpuvec.MilvusClient``, or ``pymilvus.MilvusClient`` connected to
  ``gpuvec serve`` or a cluster proxy), closed by the fixture after the test;
- ``connect_db``: a callable ``connect_db(db_name)`` returning a second client of the
  same runtime working in the (existing) database ``db_name``; the scenario closes it.
  Over gRPC: ``pymilvus.MilvusClient(uri=..., db_name=db_name)``; embedded:
  ``milvus.for_database``.

Example (``tests/unit/test_scenarios_embedded.py``, ``tests/server/test_scenarios_serve.py``
and ``tests/cluster/test_scenarios_cluster.py`` do this)::

    class TestCollectionScenarios(CollectionScenarios):
        pass

Errors are asserted with :func:`gpuvec.testing.scenarios_support.raises_milvus_error`,
which accepts pymilvus's ``MilvusException`` as well as gpuvec's ``GpuvecError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pymilvus import DataType

from gpuvec.testing.scenarios_support import DIM, count, raises_milvus_error, rows


class CollectionScenarios:
    def test_quick_collection_lifecycle(self, milvus: Any) -> None:
        assert milvus.list_collections() == []
        milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
        assert milvus.has_collection("c") and not milvus.has_collection("nope")
        assert milvus.list_collections() == ["c"]
        desc = milvus.describe_collection("c")
        assert desc["collection_name"] == "c"
        fields = {f["name"]: f for f in desc["fields"]}
        assert fields["id"]["is_primary"] and fields["vector"]["params"]["dim"] == DIM
        assert desc["enable_dynamic_field"] is True
        assert milvus.get_load_state("c")["state"].name == "Loaded"
        res = milvus.insert("c", rows(50))
        assert res["insert_count"] == 50 and list(res["ids"]) == list(range(50))
        assert count(milvus, "c") == 50
        assert milvus.get_collection_stats("c")["row_count"] == 50
        milvus.rename_collection("c", "d")
        assert milvus.list_collections() == ["d"]
        assert milvus.query("d", filter="id < 5", output_fields=["count(*)"])[0]["count(*)"] == 5
        milvus.release_collection("d")
        assert milvus.get_load_state("d")["state"].name == "NotLoad"
        milvus.load_collection("d")
        assert milvus.get_load_state("d")["state"].name == "Loaded"
        milvus.drop_collection("d")
        assert not milvus.has_collection("d") and milvus.list_collections() == []

    def test_schema_collection_and_indexes(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
        schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("score", DataType.DOUBLE)
        schema.add_field("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
        schema.add_field("meta", DataType.JSON, nullable=True)
        milvus.create_collection("s", schema=schema)
        desc = milvus.describe_collection("s")
        fields = {f["name"]: f for f in desc["fields"]}
        assert fields["pk"]["type"] == DataType.VARCHAR
        assert fields["pk"]["params"]["max_length"] == 32
        assert fields["tags"]["element_type"] == DataType.INT64
        with raises_milvus_error(match="index"):
            milvus.load_collection("s")
        idx = milvus.prepare_index_params()
        idx.add_index("emb", index_type="HNSW", metric_type="L2",
                      params={"M": 8, "efConstruction": 64})  # fmt: skip
        milvus.create_index("s", idx)
        assert milvus.list_indexes("s") == ["emb"]
        info = milvus.describe_index("s", "emb")
        assert info["index_type"] == "HNSW" and info["metric_type"] == "L2"
        assert info.get("M") == "8" or info.get("params", {}).get("M") in (8, "8")
        milvus.load_collection("s")
        rng = np.random.default_rng(1)
        data = [
            {"pk": f"k{i}", "emb": rng.standard_normal(DIM).tolist(), "score": i / 2,
             "tags": [i, i + 1], "meta": {"i": i} if i % 2 else None}
            for i in range(40)
        ]  # fmt: skip
        milvus.insert("s", data)
        got = milvus.get("s", ids=["k3", "k4"], output_fields=["score", "tags", "meta"])
        by = {r["pk"]: r for r in got}
        assert by["k3"]["score"] == 1.5 and list(by["k3"]["tags"]) == [3, 4]
        assert by["k3"]["meta"] == {"i": 3} and by["k4"]["meta"] is None
        milvus.release_collection("s")
        milvus.drop_index("s", "emb")
        assert milvus.list_indexes("s") == []

    def test_describe_index_without_an_index_is_none(self, milvus: Any) -> None:
        schema = milvus.create_schema(enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        milvus.create_collection("n", schema=schema)
        assert milvus.describe_index("n", "v") is None  # no index yet: None, as pymilvus says
        assert milvus.list_indexes("n") == []

    def test_create_index_waits_for_the_build(self, milvus: Any) -> None:
        """``create_index`` returns once the build is Finished (pymilvus polls DescribeIndex
        for it): the runtime reports real build progress (sealed rows with a committed
        build) of an unloaded collection, so the index is there when loading returns."""
        schema = milvus.create_schema(enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        milvus.create_collection("w", schema=schema)
        rng = np.random.default_rng(2)
        vecs = rng.standard_normal((600, DIM)).astype(np.float32)
        milvus.insert("w", [{"id": i, "v": vecs[i].tolist()} for i in range(600)])
        milvus.flush("w")
        idx = milvus.prepare_index_params()
        idx.add_index("v", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 8})
        milvus.create_index("w", idx)
        info = milvus.describe_index("w", "v")
        assert info["state"] == "Finished"
        assert info["total_rows"] == info["indexed_rows"] == 600
        assert info["pending_index_rows"] == 0
        milvus.load_collection("w")
        hits = milvus.search("w", [vecs[5].tolist()], limit=1,
                             search_params={"params": {"nprobe": 8}})  # fmt: skip
        assert hits[0][0]["id"] == 5

    def test_index_without_a_type_is_autoindex(self, milvus: Any) -> None:
        schema = milvus.create_schema(enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        idx = milvus.prepare_index_params()
        idx.add_index("v", metric_type="IP")  # no index_type: Milvus picks AUTOINDEX
        milvus.create_collection("auto", schema=schema, index_params=idx)
        info = milvus.describe_index("auto", "v")
        assert info["index_type"] == "AUTOINDEX" and info["metric_type"] == "IP"
        assert milvus.get_load_state("auto")["state"].name == "Loaded"

    def test_partitions(self, milvus: Any) -> None:
        milvus.create_collection("p", dimension=DIM, consistency_level="Strong")
        milvus.create_partition("p", "a")
        milvus.create_partition("p", "a")  # exists: a harmless repeat (Milvus)
        assert milvus.has_partition("p", "a") and not milvus.has_partition("p", "b")
        assert sorted(milvus.list_partitions("p")) == ["_default", "a"]
        milvus.insert("p", rows(10), partition_name="a")
        milvus.insert("p", rows(5, start=100))
        assert milvus.get_partition_stats("p", "a")["row_count"] == 10
        q = np.zeros(DIM).tolist()
        hits = milvus.search("p", [q], limit=20, partition_names=["a"])[0]
        assert len(hits) == 10 and all(h["id"] < 100 for h in hits)
        milvus.release_partitions("p", ["a"])
        milvus.load_partitions("p", ["a"])
        with raises_milvus_error("partition cannot be dropped, partition is loaded"):
            milvus.drop_partition("p", "a")
        milvus.flush("p")
        milvus.release_collection("p")  # not loaded: flushed rows still count (Milvus)
        assert int(milvus.get_collection_stats("p")["row_count"]) == 15
        milvus.drop_partition("p", "a")
        milvus.drop_partition("p", "a")  # missing: a harmless repeat
        assert milvus.list_partitions("p") == ["_default"]

    def test_aliases(self, milvus: Any) -> None:
        milvus.create_collection("x", dimension=DIM, consistency_level="Strong")
        milvus.create_collection("y", dimension=DIM, consistency_level="Strong")
        milvus.create_alias("x", "live")
        assert milvus.describe_alias("live")["collection_name"] == "x"
        assert milvus.list_aliases("x")["aliases"] == ["live"]
        milvus.insert("live", rows(3))
        assert count(milvus, "x") == 3
        milvus.alter_alias("y", "live")
        assert count(milvus, "live") == 0
        milvus.drop_alias("live")
        with raises_milvus_error():
            milvus.describe_alias("live")

    def test_databases(self, milvus: Any, connect_db: Callable[[str], Any]) -> None:
        milvus.create_database("shop")
        assert "shop" in milvus.list_databases() and "default" in milvus.list_databases()
        other = connect_db("shop")
        try:
            other.create_collection("c", dimension=DIM, consistency_level="Strong")
            other.insert("c", rows(4))
            milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
            assert count(milvus, "c") == 0
            assert count(other, "c") == 4
            with raises_milvus_error():
                milvus.drop_database("shop")  # not empty
            other.drop_collection("c")
        finally:
            other.close()
        milvus.drop_database("shop")
        assert "shop" not in milvus.list_databases()

    def test_errors_carry_milvus_codes_and_name_the_fault(self, milvus: Any) -> None:
        with raises_milvus_error() as err:
            milvus.describe_collection("missing")
        assert err.value.code == 100 and "missing" in err.value.message
        for name, why in (("1bad", "the first character of a collection name must be an "
                                   "underscore or letter"),
                          ("a-b", "collection name can only contain numbers, letters and "
                                  "underscores")):  # fmt: skip
            with raises_milvus_error(match=f"Invalid collection name: {name}. {why}") as err:
                milvus.create_collection(name, dimension=DIM)  # Milvus's words and code
            assert err.value.code == 1100
        milvus.create_collection("e", dimension=DIM, consistency_level="Strong")
        milvus.create_collection("e", dimension=DIM, consistency_level="Strong")  # a no-op
        with raises_milvus_error(match="create duplicate collection with different "
                                       "parameters, collection: e") as err:  # fmt: skip
            milvus.create_collection("e", dimension=DIM + 1)
        assert err.value.code == 1100
        with raises_milvus_error(match="dim"):
            milvus.insert("e", [{"id": 1, "vector": [0.0] * (DIM + 1)}])
        with raises_milvus_error(match=r"(?i)filter|expr|parse|token"):
            milvus.query("e", filter="id <<< 3")
        with raises_milvus_error(match=r"dim|dimension"):
            milvus.search("e", [[0.0] * 3], limit=3)
        # with the dynamic field on (quick setup) unknown names are dynamic keys, as in Milvus
        assert milvus.query("e", filter="nosuchfield > 1", output_fields=["nosuch"]) == []
        schema = milvus.create_schema(enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        idx = milvus.prepare_index_params()
        idx.add_index("v", index_type="FLAT", metric_type="L2")
        milvus.create_collection("strict", schema=schema, index_params=idx)
        with raises_milvus_error(match="nosuchfield"):
            milvus.query("strict", filter="nosuchfield > 1")
        with raises_milvus_error(match="nosuch"):
            milvus.query("strict", filter="id > 1", output_fields=["nosuch"])
        assert count(milvus, "e") == 0

    def test_admin(self, milvus: Any) -> None:
        milvus.create_collection("a", dimension=DIM, consistency_level="Strong")
        milvus.insert("a", rows(30))
        milvus.flush("a")
        milvus.insert("a", rows(30, start=30))
        milvus.flush_all()
        milvus.delete("a", filter="id < 20")
        job = milvus.compact("a")
        for _ in range(100):
            if milvus.get_compaction_state(job) == "Completed":
                break
            time.sleep(0.2)
        assert milvus.get_compaction_state(job) == "Completed"
        assert count(milvus, "a") == 40
        segments = {s.segment_id for s in milvus.list_persistent_segments("a")}
        plans = milvus.get_compaction_plans(job)  # the merges the job ran
        assert plans.state.name == "Completed" and plans.plans
        for plan in plans.plans:
            assert plan.sources and plan.target not in plan.sources
        assert {p.target for p in plans.plans} <= segments  # the targets are what is kept
        milvus.alter_collection_properties("a", properties={"collection.ttl.seconds": 600})
        assert milvus.describe_collection("a")["properties"]["collection.ttl.seconds"] == "600"
        milvus.drop_collection_properties("a", property_keys=["collection.ttl.seconds"])
        assert "collection.ttl.seconds" not in milvus.describe_collection("a")["properties"]
        milvus.truncate_collection("a")
        assert count(milvus, "a") == 0
        assert milvus.describe_collection("a")["fields"][1]["params"]["dim"] == DIM
        milvus.create_database("db2", properties={"database.max.collections": 5})
        assert milvus.describe_database("db2")["database.max.collections"] == "5"
        milvus.alter_database_properties("db2", {"database.replica.number": 1})
        assert milvus.describe_database("db2")["database.replica.number"] == "1"
        milvus.drop_database_properties("db2", ["database.replica.number"])
        assert "database.replica.number" not in milvus.describe_database("db2")
