"""End-to-end tests of the embedded engine through gpuvec.MilvusClient, checked against a
plain NumPy brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.client import LoadState
from gpuvec.config import Config
from gpuvec.errors import (
    CollectionNotFoundError,
    CollectionNotLoadedError,
    DataError,
    FieldNotFoundError,
    GpuvecError,
    InvalidArgumentError,
    PartitionNotFoundError,
)
from gpuvec.schema import DataType

DIM = 16


def brute(base: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, metric: str) -> list:
    if metric == "L2":
        d = ((base - q) ** 2).sum(1)
        order = np.argsort(d, kind="stable")
    else:
        if metric == "COSINE":
            base = base / np.linalg.norm(base, axis=1, keepdims=True)
            q = q / np.linalg.norm(q)
        d = base @ q
        order = np.argsort(-d, kind="stable")
    return [int(ids[i]) for i in order[:k]]


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = MilvusClient(str(tmp_path / "db"), config=Config(seal_idle_s=3600))
    yield c
    c.close()


def fill(
    c: MilvusClient, name: str, n: int = 600, seed: int = 0, start: int = 0, **kw: object
) -> np.ndarray:
    vec = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    c.insert(
        name, [{"id": start + i, "vector": vec[i], "tag": f"t{start + i}"} for i in range(n)], **kw
    )
    return vec


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
@pytest.mark.parametrize("shards", [1, 3])
def test_search_matches_brute_force_over_growing_and_sealed(
    client: MilvusClient, metric: str, shards: int
) -> None:
    client.create_collection("c", dimension=DIM, metric_type=metric, num_shards=shards)
    a = fill(client, "c", 500, seed=1)
    client.flush("c")  # sealed
    b = fill(client, "c", 300, seed=2, start=500)  # growing
    base, ids = np.vstack([a, b]), np.arange(800)
    qs = np.random.default_rng(3).standard_normal((5, DIM)).astype(np.float32)
    res = client.search("c", data=qs.tolist(), limit=7, search_params={"metric_type": metric})
    assert len(res) == 5
    for q, hits in zip(qs, res, strict=True):
        assert [h["id"] for h in hits] == brute(base, ids, q, 7, metric)
        d = [h["distance"] for h in hits]
        assert d == (sorted(d) if metric == "L2" else sorted(d, reverse=True))
    stats = client.get_collection_stats("c")
    assert stats["row_count"] == 800 and stats["sealed_rows"] == 500


def test_output_fields_offset_and_shapes(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    vec = fill(client, "c", 50)
    q = vec[10] + 1e-3
    (hits,) = client.search("c", data=[q.tolist()], limit=3, output_fields=["tag", "vector"])
    assert hits[0]["id"] == 10 and hits[0]["distance"] < 1e-4
    assert hits[0]["entity"]["tag"] == "t10"
    np.testing.assert_allclose(hits[0]["entity"]["vector"], vec[10])
    (plain,) = client.search("c", data=q, limit=3)
    assert plain[0]["entity"] == {} and [h["id"] for h in plain] == [h["id"] for h in hits]
    (off,) = client.search("c", data=q, limit=2, search_params={"offset": 1})
    assert [h["id"] for h in off] == [h["id"] for h in hits[1:3]]
    (few,) = client.search("c", data=q, limit=100)
    assert len(few) == 50


def test_delete_upsert_get(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    vec = fill(client, "c", 100)
    client.flush("c")
    client.delete("c", ids=[3, 4])
    assert client.get("c", ids=[3, 4, 5], output_fields=["tag"]) == [{"id": 5, "tag": "t5"}]
    (hits,) = client.search("c", data=vec[3], limit=5)
    assert 3 not in [h["id"] for h in hits]
    new = np.full(DIM, 9.0, np.float32)
    r = client.upsert("c", [{"id": 5, "vector": new, "tag": "changed"}])
    assert r["upsert_count"] == 1
    assert client.get("c", ids=5, output_fields=["tag"]) == [{"id": 5, "tag": "changed"}]
    (hits,) = client.search("c", data=new, limit=2, output_fields=["tag"])
    assert hits[0]["id"] == 5 and hits[0]["entity"]["tag"] == "changed"
    assert hits[1]["id"] != 5, "the upserted key appears once"
    assert client.get_collection_stats("c")["row_count"] == 98


def test_restart_serves_identical_results(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"))
    c.create_collection("c", dimension=DIM, metric_type="IP", num_shards=2)
    vec = fill(c, "c", 300)
    c.flush("c")
    fill(c, "c", 200, seed=5, start=300)
    c.delete("c", ids=list(range(0, 500, 7)))
    qs = np.random.default_rng(9).standard_normal((4, DIM)).astype(np.float32)
    before = c.search("c", data=qs, limit=10, output_fields=["tag"])
    c.close()
    c = MilvusClient(str(tmp_path / "db"))
    after = c.search("c", data=qs, limit=10, output_fields=["tag"])
    assert after == before
    assert c.get("c", ids=[7, 8]) == [
        {"id": 8, "vector": pytest.approx(vec[8].tolist()), "tag": "t8"}
    ]
    c.close()


def test_varchar_pk_and_auto_id(client: MilvusClient) -> None:
    client.create_collection("s", dimension=DIM, id_type="string", max_length=32)
    r = client.insert("s", [{"id": f"k{i}", "vector": np.ones(DIM) * (i + 1)} for i in range(5)])
    assert r["ids"] == [f"k{i}" for i in range(5)]
    client.delete("s", ids="k2")
    assert [x["id"] for x in client.get("s", ids=["k1", "k2", "k3"])] == ["k1", "k3"]
    client.create_collection("a", dimension=DIM, auto_id=True)
    r = client.insert("a", [{"vector": np.ones(DIM)}, {"vector": np.ones(DIM) * 2}])
    assert r["insert_count"] == 2 and len(set(r["ids"])) == 2
    assert len(client.get("a", ids=r["ids"])) == 2


def test_partitions(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    client.create_partition("c", "p1")
    assert client.list_partitions("c") == ["_default", "p1"] and client.has_partition("c", "p1")
    fill(client, "c", 20)
    v = fill(client, "c", 20, seed=4, start=100, partition_name="p1")
    (hits,) = client.search("c", data=v[0], limit=50, partition_names=["p1"])
    assert {h["id"] for h in hits} == set(range(100, 120))
    with pytest.raises(PartitionNotFoundError):
        client.search("c", data=v[0], partition_names=["nope"])
    with pytest.raises(GpuvecError, match="partition is loaded, please release it first"):
        client.drop_partition("c", "p1")  # Milvus refuses to drop a loaded partition
    client.release_partitions("c", ["p1"])
    client.drop_partition("c", "p1")
    assert not client.has_partition("c", "p1")
    client.drop_partition("c", "p1")  # a missing one: a harmless repeat


def test_consistency_levels_see_acknowledged_writes(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    for level in ("Strong", "Session", "Bounded", "Eventually"):
        v = np.random.default_rng(len(level)).standard_normal(DIM).astype(np.float32)
        client.insert("c", {"id": len(level), "vector": v})
        (hits,) = client.search("c", data=v, limit=1, consistency_level=level)
        if level != "Eventually":  # Eventually may lag in cluster mode; here it does not
            assert hits[0]["id"] == len(level)
    with pytest.raises(InvalidArgumentError, match="consistency_level"):
        client.search("c", data=np.zeros(DIM), consistency_level="Sometimes")


def test_load_release_and_ddl(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM)
    assert client.get_load_state("c")["state"] == LoadState.Loaded
    client.release_collection("c")
    assert client.get_load_state("c")["state"] == LoadState.NotLoad
    with pytest.raises(CollectionNotLoadedError):
        client.search("c", data=np.ones(DIM))
    client.load_collection("c")
    client.rename_collection("c", "d")
    assert client.list_collections() == ["d"] and not client.has_collection("c")
    client.drop_collection("d")
    assert client.list_collections() == []
    assert client.get_load_state("d")["state"] == LoadState.NotExist
    with pytest.raises(CollectionNotFoundError):
        client.insert("d", {"id": 1, "vector": np.ones(DIM)})


def test_schema_collection_needs_index_to_load(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("n", DataType.INT32)
    client.create_collection("c", schema=schema)
    assert client.get_load_state("c")["state"] == LoadState.NotLoad
    with pytest.raises(Exception, match="create index"):
        client.load_collection("c")
    idx = MilvusClient.prepare_index_params()
    idx.add_index("emb", metric_type="L2")
    client.create_index("c", idx)
    client.load_collection("c")
    client.insert("c", [{"pk": 1, "emb": [0, 0, 0, 1], "n": 5}])
    assert client.search("c", data=[0, 0, 0, 1], limit=1, output_fields=["n"])[0][0] == {
        "id": 1,
        "distance": 0.0,
        "entity": {"n": 5},
    }


def test_pk_and_vector_only_collection_loads_sealed_segments(tmp_path: Path) -> None:
    """No scalar column besides the key (no dynamic field): sealed segments still load."""
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address="",
                     datanode_processes=False, index_min_rows=100))  # fmt: skip
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
        c.create_collection("c", schema=schema)
        vec = np.random.default_rng(3).standard_normal((300, 4)).astype(np.float32)
        c.insert("c", [{"id": i, "v": vec[i]} for i in range(300)])
        c.flush("c")
        idx = MilvusClient.prepare_index_params()
        idx.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 8})
        c.create_index("c", idx)
        c.load_collection("c")
        hits = c.search("c", data=[vec[7]], limit=3, output_fields=["id"])[0]
        assert hits[0]["id"] == 7 and hits[0]["entity"] == {"id": 7}
        assert c.query("c", filter="id < 10", output_fields=["count(*)"])[0]["count(*)"] == 10
    finally:
        c.close()


def test_bad_input_is_refused_and_applies_nothing(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    fill(client, "c", 10)
    good = {"id": 100, "vector": np.ones(DIM)}
    with pytest.raises(DataError, match="vector"):
        client.insert("c", [good, {"id": 101, "vector": np.ones(DIM + 1)}])
    with pytest.raises(DataError):
        client.insert("c", [good, {"id": 102, "vector": [float("nan")] * DIM}])
    assert client.get("c", ids=[100]) == [], "a rejected batch leaves no rows"
    assert client.get_collection_stats("c")["row_count"] == 10
    with pytest.raises(InvalidArgumentError, match="dimension"):
        client.search("c", data=np.ones(DIM + 2))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        client.search("c", data=[np.full(DIM, np.nan)])
    with pytest.raises(InvalidArgumentError, match="limit"):
        client.search("c", data=np.ones(DIM), limit=0)
    with pytest.raises(InvalidArgumentError, match="limit"):
        client.search("c", data=np.ones(DIM), limit=16385)
    with pytest.raises(InvalidArgumentError, match="metric type not match"):
        client.search("c", data=np.ones(DIM), search_params={"metric_type": "IP"})
    with pytest.raises(FieldNotFoundError):
        client.search("c", data=np.ones(DIM), anns_field="nope")
    with pytest.raises(InvalidArgumentError):
        client.create_collection("bad name!", dimension=4)
    with pytest.raises(CollectionNotFoundError):
        client.search("missing", data=np.ones(DIM))


def test_auto_seal_by_rows(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(seal_rows=100))
    c.create_collection("c", dimension=DIM)
    fill(c, "c", 150)
    import time

    end = time.monotonic() + 10
    while c.get_collection_stats("c")["sealed_rows"] < 150 and time.monotonic() < end:
        time.sleep(0.2)
    assert c.get_collection_stats("c")["sealed_rows"] == 150
    c.close()


def test_dropped_partition_rows_are_not_served(client: MilvusClient) -> None:
    client.create_collection("c", dimension=DIM, metric_type="L2")
    client.create_partition("c", "p1")
    v = fill(client, "c", 10, seed=4, start=100, partition_name="p1")
    fill(client, "c", 10)
    client.flush("c")
    fill(client, "c", 5, seed=8, start=200, partition_name="p1")  # growing rows too
    client.release_partitions("c", ["p1"])
    client.drop_partition("c", "p1")
    (hits,) = client.search("c", data=v[0], limit=50)
    assert {h["id"] for h in hits} == set(range(10))
    assert client.get("c", ids=[100, 201, 3], output_fields=["tag"]) == [{"id": 3, "tag": "t3"}]
