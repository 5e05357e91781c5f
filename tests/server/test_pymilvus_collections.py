"""Collection lifecycle, partitions, aliases, databases and indexes through an unmodified
``pymilvus.MilvusClient`` talking to ``gpuvec serve`` over a real socket."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 8


def _rows(n: int, start: int = 0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        {"id": start + i, "vector": vecs[i].tolist(), "tag": f"t{(start + i) % 3}", "n": start + i}
        for i in range(n)
    ]


def test_connect_version_and_health(milvus: MilvusClient, server: object) -> None:
    version = milvus.get_server_version()
    assert "gpuvec" in version
    assert milvus.list_collections() == []
    import grpc
    from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

    channel = grpc.insecure_channel(server.address)  # type: ignore[attr-defined]
    stub = milvus_pb2_grpc.MilvusServiceStub(channel)
    resp = stub.CheckHealth(milvus_pb2.CheckHealthRequest(), timeout=5)
    assert resp.status.code == 0 and resp.isHealthy and not list(resp.reasons)
    channel.close()


def test_quick_collection_lifecycle(milvus: MilvusClient) -> None:
    milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
    assert milvus.has_collection("c") and not milvus.has_collection("nope")
    assert milvus.list_collections() == ["c"]
    desc = milvus.describe_collection("c")
    assert desc["collection_name"] == "c"
    fields = {f["name"]: f for f in desc["fields"]}
    assert fields["id"]["is_primary"] and fields["vector"]["params"]["dim"] == DIM
    assert desc["enable_dynamic_field"] is True
    assert milvus.get_load_state("c")["state"].name == "Loaded"
    res = milvus.insert("c", _rows(50))
    assert res["insert_count"] == 50 and list(res["ids"]) == list(range(50))
    assert milvus.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 50
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


def test_schema_collection_and_indexes(milvus: MilvusClient) -> None:
    schema = milvus.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4)
    schema.add_field("meta", DataType.JSON, nullable=True)
    milvus.create_collection("s", schema=schema)
    desc = milvus.describe_collection("s")
    fields = {f["name"]: f for f in desc["fields"]}
    assert fields["pk"]["type"] == DataType.VARCHAR and fields["pk"]["params"]["max_length"] == 32
    assert fields["tags"]["element_type"] == DataType.INT64
    assert milvus.describe_index("s", "emb") is None  # no index yet: None, as pymilvus says
    with pytest.raises(MilvusException, match="index"):
        milvus.load_collection("s")
    idx = milvus.prepare_index_params()
    idx.add_index("emb", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 64})
    milvus.create_index("s", idx)
    assert milvus.list_indexes("s") == ["emb"]
    info = milvus.describe_index("s", "emb")
    assert info["index_type"] == "HNSW" and info["metric_type"] == "L2"
    assert info["M"] == "8" or info.get("params", {}).get("M") in (8, "8")
    milvus.load_collection("s")
    rng = np.random.default_rng(1)
    rows = [
        {"pk": f"k{i}", "emb": rng.standard_normal(DIM).tolist(), "score": i / 2,
         "tags": [i, i + 1], "meta": {"i": i} if i % 2 else None}
        for i in range(40)
    ]  # fmt: skip
    milvus.insert("s", rows)
    got = milvus.get("s", ids=["k3", "k4"], output_fields=["score", "tags", "meta"])
    by = {r["pk"]: r for r in got}
    assert by["k3"]["score"] == 1.5 and list(by["k3"]["tags"]) == [3, 4]
    assert by["k3"]["meta"] == {"i": 3} and by["k4"]["meta"] is None
    milvus.release_collection("s")
    milvus.drop_index("s", "emb")
    assert milvus.list_indexes("s") == []


def test_partitions(milvus: MilvusClient) -> None:
    milvus.create_collection("p", dimension=DIM, consistency_level="Strong")
    milvus.create_partition("p", "a")
    assert milvus.has_partition("p", "a") and not milvus.has_partition("p", "b")
    assert sorted(milvus.list_partitions("p")) == ["_default", "a"]
    milvus.insert("p", _rows(10), partition_name="a")
    milvus.insert("p", _rows(5, start=100))
    assert milvus.get_partition_stats("p", "a")["row_count"] == 10
    q = np.zeros(DIM).tolist()
    hits = milvus.search("p", [q], limit=20, partition_names=["a"])[0]
    assert len(hits) == 10 and all(h["id"] < 100 for h in hits)
    milvus.release_partitions("p", ["a"])
    milvus.load_partitions("p", ["a"])
    milvus.release_collection("p")
    milvus.drop_partition("p", "a")
    assert milvus.list_partitions("p") == ["_default"]


def test_aliases(milvus: MilvusClient) -> None:
    milvus.create_collection("x", dimension=DIM, consistency_level="Strong")
    milvus.create_collection("y", dimension=DIM, consistency_level="Strong")
    milvus.create_alias("x", "live")
    assert milvus.describe_alias("live")["collection_name"] == "x"
    assert milvus.list_aliases("x")["aliases"] == ["live"]
    milvus.insert("live", _rows(3))
    assert milvus.query("x", filter="", output_fields=["count(*)"])[0]["count(*)"] == 3
    milvus.alter_alias("y", "live")
    assert milvus.query("live", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
    milvus.drop_alias("live")
    with pytest.raises(MilvusException):
        milvus.describe_alias("live")


def test_databases(milvus: MilvusClient, server: object) -> None:
    milvus.create_database("shop")
    assert "shop" in milvus.list_databases() and "default" in milvus.list_databases()
    other = MilvusClient(uri=f"http://{server.address}", db_name="shop")  # type: ignore[attr-defined]
    try:
        other.create_collection("c", dimension=DIM, consistency_level="Strong")
        other.insert("c", _rows(4))
        milvus.create_collection("c", dimension=DIM, consistency_level="Strong")
        assert milvus.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
        assert other.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 4
        with pytest.raises(MilvusException):
            milvus.drop_database("shop")  # not empty
        other.drop_collection("c")
    finally:
        other.close()
    milvus.drop_database("shop")
    assert "shop" not in milvus.list_databases()


def test_errors_come_back_as_milvus_exceptions(milvus: MilvusClient) -> None:
    with pytest.raises(MilvusException) as err:
        milvus.describe_collection("missing")
    assert err.value.code == 100 and "missing" in err.value.message
    milvus.create_collection("e", dimension=DIM, consistency_level="Strong")
    with pytest.raises(MilvusException, match="dim"):
        milvus.insert("e", [{"id": 1, "vector": [0.0] * (DIM + 1)}])
    with pytest.raises(MilvusException, match=r"(?i)filter|expr|parse|token"):
        milvus.query("e", filter="id <<< 3")
    with pytest.raises(MilvusException, match=r"dim|dimension"):
        milvus.search("e", [[0.0] * 3], limit=3)
    # with the dynamic field on (quick setup) unknown names are dynamic keys, as in Milvus
    assert milvus.query("e", filter="nosuchfield > 1", output_fields=["nosuch"]) == []
    schema = milvus.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    idx = milvus.prepare_index_params()
    idx.add_index("v", index_type="FLAT", metric_type="L2")
    milvus.create_collection("strict", schema=schema, index_params=idx)
    with pytest.raises(MilvusException, match="nosuchfield"):
        milvus.query("strict", filter="nosuchfield > 1")
    with pytest.raises(MilvusException, match="nosuch"):
        milvus.query("strict", filter="id > 1", output_fields=["nosuch"])
    assert milvus.query("e", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0


def test_gpuvec_client_with_a_remote_uri_speaks_grpc(server: object) -> None:
    import gpuvec

    remote = gpuvec.MilvusClient(f"http://{server.address}")  # type: ignore[attr-defined]
    try:
        assert isinstance(remote, MilvusClient)  # pymilvus's client, over the socket
        remote.create_collection("r", dimension=DIM)
        assert remote.list_collections() == ["r"]
    finally:
        remote.close()


def test_admin_rpcs(milvus: MilvusClient) -> None:
    milvus.create_collection("a", dimension=DIM, consistency_level="Strong")
    milvus.insert("a", _rows(30))
    milvus.flush("a")
    milvus.insert("a", _rows(30, start=30))
    milvus.flush_all()
    milvus.delete("a", filter="id < 20")
    job = milvus.compact("a")
    for _ in range(100):
        if milvus.get_compaction_state(job) == "Completed":
            break
        import time

        time.sleep(0.2)
    assert milvus.get_compaction_state(job) == "Completed"
    assert milvus.query("a", filter="", output_fields=["count(*)"])[0]["count(*)"] == 40
    milvus.alter_collection_properties("a", properties={"collection.ttl.seconds": 600})
    assert milvus.describe_collection("a")["properties"]["collection.ttl.seconds"] == "600"
    milvus.drop_collection_properties("a", property_keys=["collection.ttl.seconds"])
    assert "collection.ttl.seconds" not in milvus.describe_collection("a")["properties"]
    milvus.truncate_collection("a")
    assert milvus.query("a", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
    assert milvus.describe_collection("a")["fields"][1]["params"]["dim"] == DIM
    milvus.create_database("db2", properties={"database.max.collections": 5})
    assert milvus.describe_database("db2")["database.max.collections"] == "5"
    milvus.alter_database_properties("db2", {"database.replica.number": 1})
    assert milvus.describe_database("db2")["database.replica.number"] == "1"
    milvus.drop_database_properties("db2", ["database.replica.number"])
    assert "database.replica.number" not in milvus.describe_database("db2")
    ts = milvus._get_connection().alloc_timestamp()
    assert ts >> 18 > 1_700_000_000_000  # a hybrid timestamp of this era (ms << 18)


def test_create_index_waits_for_the_build(milvus: MilvusClient) -> None:
    """pymilvus's create_index polls DescribeIndex until the state is Finished: the server
    reports real build progress (sealed rows with a committed build) of an unloaded
    collection, so the index is there when load_collection returns."""
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
    assert info["total_rows"] == info["indexed_rows"] == 600 and info["pending_index_rows"] == 0
    milvus.load_collection("w")
    hits = milvus.search("w", [vecs[5].tolist()], limit=1, search_params={"params": {"nprobe": 8}})
    assert hits[0][0]["id"] == 5


def test_index_without_a_type_is_autoindex(milvus: MilvusClient) -> None:
    schema = milvus.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    idx = milvus.prepare_index_params()
    idx.add_index("v", metric_type="IP")  # no index_type: Milvus picks AUTOINDEX
    milvus.create_collection("auto", schema=schema, index_params=idx)
    info = milvus.describe_index("auto", "v")
    assert info["index_type"] == "AUTOINDEX" and info["metric_type"] == "IP"
    assert milvus.get_load_state("auto")["state"].name == "Loaded"
