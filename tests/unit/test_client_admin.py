"""Databases, aliases and administration through gpuvec.MilvusClient (pymilvus shapes,
Milvus semantics), including errors, restart persistence and all-or-nothing failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.client import LoadState
from gpuvec.config import Config
from gpuvec.errors import (
    AliasAlreadyExistsError,
    AliasCollectionConflictError,
    AliasNotFoundError,
    CollectionAlreadyExistsError,
    CollectionNotFoundError,
    CollectionNotLoadedError,
    DatabaseAlreadyExistsError,
    DatabaseNotFoundError,
    InvalidArgumentError,
    PartitionNotFoundError,
    PartitionNotLoadedError,
)
from gpuvec.proxy.names import qualify, split

DIM = 8
CFG = Config(dashboard_address="", datanode_processes=False, seal_idle_s=3600)


def open_client(path: Path, **kw: object) -> MilvusClient:
    return MilvusClient(str(path), config=CFG, **kw)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(path: Path):  # type: ignore[no-untyped-def]
    c = open_client(path)
    yield c
    c.close()


def rows(n: int, start: int = 0, seed: int = 0, **extra: object) -> list[dict]:
    vec = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return [{"id": start + i, "vector": vec[i].tolist(), **extra} for i in range(n)]


def ids_of(c: MilvusClient, name: str, **kw: object) -> list[int]:
    return sorted(r["id"] for r in c.query(name, filter="id >= 0", output_fields=["id"], **kw))


def make(c: MilvusClient, name: str, n: int = 0, start: int = 0, **extra: object) -> None:
    c.create_collection(name, dimension=DIM, metric_type="L2")
    if n:
        c.insert(name, rows(n, start, **extra))


# --- names -------------------------------------------------------------------------------
def test_engine_names_qualify_and_split() -> None:
    assert qualify("default", "c") == "c"  # pre-database collections keep their names
    assert qualify("db1", "c") == "db1.c"
    assert split("db1.c") == ("db1", "c") and split("c") == ("default", "c")


def test_engine_names_of_collections(client: MilvusClient) -> None:
    make(client, "c")
    client.create_database("db1")
    client.use_database("db1")
    make(client, "c")
    assert client._engine.catalog.exists("c") and client._engine.catalog.exists("db1.c")
    # a dotted name is refused before it is qualified: no reaching into another database
    client.use_database("default")
    with pytest.raises(InvalidArgumentError, match=r"db1\.c"):
        client.has_collection("db1.c")
    with pytest.raises(InvalidArgumentError, match=r"db1\.c"):
        client.insert("db1.c", rows(1))


# --- databases ---------------------------------------------------------------------------
def test_database_lifecycle_and_properties(client: MilvusClient) -> None:
    assert client.list_databases() == ["default"]
    assert client.describe_database("default") == {"name": "default"}
    client.create_database("db1", properties={"database.max.collections": 10})
    assert client.list_databases() == ["default", "db1"]
    assert client.describe_database("db1") == {"name": "db1", "database.max.collections": "10"}
    with pytest.raises(DatabaseAlreadyExistsError, match="db1"):
        client.create_database("db1")
    client.alter_database_properties("db1", {"a": 1, "b": "x"})
    client.drop_database_properties("db1", ["database.max.collections", "nope"])
    assert client.describe_database("db1") == {"name": "db1", "a": "1", "b": "x"}
    client.alter_database_properties("default", {"d": True})
    assert client.describe_database("default") == {"name": "default", "d": "True"}
    with pytest.raises(InvalidArgumentError, match="1bad"):
        client.create_database("1bad")
    with pytest.raises(InvalidArgumentError, match="default database"):
        client.drop_database("default")
    with pytest.raises(InvalidArgumentError, match="properties must be a dict"):
        client.alter_database_properties("db1", ["a"])  # type: ignore[arg-type]
    client.drop_database("db1")
    client.drop_database("db1")  # a missing database: no-op, as in Milvus
    assert client.list_databases() == ["default"]


def test_unknown_database_is_a_clear_error(client: MilvusClient, path: Path) -> None:
    for call in (
        lambda: client.use_database("nope"),
        lambda: client.describe_database("nope"),
        lambda: client.alter_database_properties("nope", {"a": 1}),
        lambda: client.drop_database_properties("nope", ["a"]),
    ):
        with pytest.raises(DatabaseNotFoundError, match="nope") as e:
            call()
        assert e.value.code == 800
    with pytest.raises(DatabaseNotFoundError, match="nope"):
        open_client(path.parent / "other", db_name="nope")
    make(client, "c", 3)  # the failed switch left the client in "default"
    assert client.list_collections() == ["c"]
    reopened = open_client(path.parent / "other")  # the failed open released its directory
    reopened.close()


def test_same_collection_name_in_two_databases_is_isolated(client: MilvusClient) -> None:
    make(client, "c", 5, tag="default")
    client.create_database("db1")
    client.use_database("db1")
    assert client.list_collections() == [] and not client.has_collection("c")
    make(client, "c", 3, start=100, tag="db1")
    assert ids_of(client, "c") == [100, 101, 102]
    (hits,) = client.search("c", data=rows(1)[0]["vector"], limit=10, output_fields=["tag"])
    assert {h["entity"]["tag"] for h in hits} == {"db1"} and len(hits) == 3
    d = client.describe_collection("c")
    assert d["collection_name"] == "c" and d["aliases"] == []
    client.use_database("default")
    assert ids_of(client, "c") == [0, 1, 2, 3, 4]
    assert client.get_collection_stats("c")["row_count"] == 5
    client.using_database("db1")
    client.delete("c", ids=[100])
    client.drop_collection("c")
    client.use_database("default")
    assert ids_of(client, "c") == [0, 1, 2, 3, 4] and client.list_collections() == ["c"]


def test_drop_database_refuses_while_it_holds_collections(path: Path) -> None:
    c = open_client(path)
    other = c.for_database("default")
    c.create_database("db1")
    c.use_database("db1")
    make(c, "c", 2)
    with pytest.raises(InvalidArgumentError, match=r"db1.*not empty.*\['c'\]"):
        other.drop_database("db1")
    assert "db1" in other.list_databases() and ids_of(c, "c") == [0, 1]  # nothing dropped
    c.drop_collection("c")
    other.drop_database("db1")
    assert other.list_databases() == ["default"]
    with pytest.raises(DatabaseNotFoundError, match="db1"):
        c.list_collections()  # c still works in the dropped database
    with pytest.raises(DatabaseNotFoundError, match="db1"):
        c.create_collection("x", dimension=DIM)
    other.close()  # a view leaves the shared engine open
    assert c.list_databases() == ["default"]
    c.close()
    c2 = open_client(path)
    assert c2.list_collections() == [] and c2.list_databases() == ["default"]
    c2.close()


def test_create_collection_in_missing_database_creates_nothing(client: MilvusClient) -> None:
    client.create_database("db1")
    view = client.for_database("db1")
    client.drop_database("db1")
    with pytest.raises(DatabaseNotFoundError, match="db1"):
        view.create_collection("c", dimension=DIM)
    assert client._engine.catalog.list() == []


# --- aliases -----------------------------------------------------------------------------
def test_alias_serves_every_collection_call(client: MilvusClient) -> None:
    make(client, "c")
    client.create_alias("c", "a")
    assert client.describe_alias("a") == {
        "alias": "a",
        "collection_name": "c",
        "db_name": "default",
    }
    assert client.list_aliases() == {"aliases": ["a"], "db_name": "default"}
    assert client.list_aliases("c") == {
        "aliases": ["a"],
        "collection_name": "c",
        "db_name": "default",
    }
    res = client.insert("a", rows(10))
    assert res["insert_count"] == 10
    client.upsert("a", rows(1, start=9, seed=5))
    client.delete("a", ids=[0])
    assert ids_of(client, "a") == list(range(1, 10)) == ids_of(client, "c")
    assert [r["id"] for r in client.get("a", ids=[1, 2])] == [1, 2]
    (hits,) = client.search("a", data=rows(10)[4]["vector"], limit=1)
    assert hits[0]["id"] == 4
    d = client.describe_collection("a")
    assert d["collection_name"] == "c" and d["aliases"] == ["a"]
    assert client.describe_collection("c")["aliases"] == ["a"]
    assert client.has_collection("a") and client.list_collections() == ["c"]
    assert client.list_indexes("a") == client.list_indexes("c") != []
    client.release_collection("a")
    assert client.get_load_state("c")["state"] == LoadState.NotLoad
    client.load_collection("a")
    assert client.get_load_state("a")["state"] == LoadState.Loaded
    client.flush("a")
    assert client.get_collection_stats("a")["row_count"] == 9


def test_alias_rules_and_errors(client: MilvusClient) -> None:
    make(client, "c", 2)
    make(client, "d", 3, start=10)
    client.create_alias("c", "a")
    client.create_alias("c", "a")  # the same alias again: no-op
    with pytest.raises(AliasAlreadyExistsError, match="'a'") as e:
        client.create_alias("d", "a")
    assert e.value.code == 1602
    with pytest.raises(AliasCollectionConflictError, match="'d'") as e2:
        client.create_alias("c", "d")  # an alias may not be a collection's name
    assert e2.value.code == 1601
    with pytest.raises(AliasCollectionConflictError, match="'a'"):
        client.create_collection("a", dimension=DIM)  # nor the reverse
    with pytest.raises(CollectionNotFoundError, match="nope"):
        client.create_alias("nope", "b")
    with pytest.raises(InvalidArgumentError, match="via alias = a"):
        client.create_alias("a", "b")  # an alias of an alias
    with pytest.raises(InvalidArgumentError, match="2b"):
        client.create_alias("c", "2b")
    for call in (
        lambda: client.alter_alias("d", "zz"),
        lambda: client.drop_alias("zz"),
        lambda: client.describe_alias("zz"),
    ):
        with pytest.raises(AliasNotFoundError, match="zz") as e3:
            call()
        assert e3.value.code == 1600
    client.alter_alias("d", "a")
    assert ids_of(client, "a") == [10, 11, 12]
    assert client.list_aliases("c")["aliases"] == [] and client.list_aliases("d")["aliases"] == [
        "a"
    ]
    # aliases belong to a database: the same name elsewhere is another alias
    client.create_database("db1")
    client.use_database("db1")
    assert client.list_aliases() == {"aliases": [], "db_name": "db1"}
    with pytest.raises(CollectionNotFoundError, match="a"):
        client.query("a", filter="id >= 0")
    make(client, "c", 1, start=50)
    client.create_alias("c", "a")
    assert ids_of(client, "a") == [50]
    client.use_database("default")
    assert ids_of(client, "a") == [10, 11, 12]
    client.drop_alias("a")
    assert client.list_aliases()["aliases"] == []
    with pytest.raises(CollectionNotFoundError, match="a"):
        client.search("a", data=rows(1)[0]["vector"])


def test_drop_collection_with_aliases_fails_as_in_milvus(client: MilvusClient) -> None:
    make(client, "c", 4)
    client.create_alias("c", "a1")
    client.create_alias("c", "a2")
    with pytest.raises(InvalidArgumentError, match=r"\[c\].*aliases \['a1', 'a2'\]"):
        client.drop_collection("c")
    with pytest.raises(InvalidArgumentError, match="via alias = a1"):
        client.drop_collection("a1")
    assert ids_of(client, "c") == [0, 1, 2, 3]  # nothing dropped
    client.drop_alias("a1")
    client.drop_alias("a2")
    client.drop_collection("c")
    assert client.list_collections() == []


def test_rename_keeps_aliases_and_refuses_conflicts(client: MilvusClient) -> None:
    make(client, "c", 3)
    make(client, "other", 1, start=20)
    client.create_alias("c", "a")
    client.rename_collection("c", "d")
    assert client.describe_alias("a")["collection_name"] == "d"
    assert ids_of(client, "a") == [0, 1, 2] and client.list_aliases("d")["aliases"] == ["a"]
    assert client.describe_collection("d")["aliases"] == ["a"]
    with pytest.raises(InvalidArgumentError, match="via alias = a"):
        client.rename_collection("a", "e")
    with pytest.raises(AliasCollectionConflictError, match="'a'"):
        client.rename_collection("other", "a")
    with pytest.raises(CollectionAlreadyExistsError, match="other"):
        client.rename_collection("d", "other")
    client.create_database("db1")
    with pytest.raises(InvalidArgumentError, match=r"aliases \['a'\]"):
        client.rename_collection("d", "d", target_db="db1")
    assert sorted(client.list_collections()) == ["d", "other"]  # nothing moved
    client.rename_collection("other", "moved", target_db="db1")
    assert client.list_collections() == ["d"]
    client.use_database("db1")
    assert client.list_collections() == ["moved"] and ids_of(client, "moved") == [20]


# --- collection administration -----------------------------------------------------------
def test_truncate_keeps_definition_and_removes_rows(path: Path) -> None:
    client = open_client(path)
    make(client, "c", 30)
    client.create_partition("c", "p1")
    client.insert("c", rows(5, start=100), partition_name="p1")
    client.flush("c")
    client.insert("c", rows(5, start=200))  # growing
    client.create_alias("c", "a")
    client.alter_collection_properties("c", {"k": "v"})
    before = client.describe_collection("c")
    client.truncate_collection("a")
    after = client.describe_collection("c")
    assert client.query("c", filter="id >= 0") == []
    assert client.get_collection_stats("c")["row_count"] == 0
    assert client.search("c", data=rows(1)[0]["vector"]) == [[]]
    for key in ("fields", "aliases", "properties", "num_partitions", "collection_name"):
        assert after[key] == before[key]
    assert client.list_partitions("c") == ["_default", "p1"]
    assert client.list_indexes("c") == ["vector"]
    assert client.get_load_state("c")["state"] == LoadState.Loaded
    client.insert("c", rows(2, start=300), partition_name="p1")
    assert ids_of(client, "c") == [300, 301]
    client.close()
    c2 = open_client(path)
    assert ids_of(c2, "c") == [300, 301]
    assert c2.get_partition_stats("c", "p1") == {"row_count": 2}
    c2.close()


def test_collection_properties_persist(path: Path) -> None:
    client = open_client(path)
    make(client, "c")
    client.create_alias("c", "a")
    client.alter_collection_properties("a", {"collection.ttl.seconds": 60, "x": "y"})
    assert client.describe_collection("c")["properties"] == {
        "collection.ttl.seconds": "60",
        "x": "y",
    }
    client.drop_collection_properties("c", ["x", "absent"])
    assert client._engine.catalog.get("c").properties == {"collection.ttl.seconds": "60"}
    with pytest.raises(InvalidArgumentError, match="property_keys must be a list"):
        client.drop_collection_properties("c", "x")  # type: ignore[arg-type]
    with pytest.raises(CollectionNotFoundError, match="nope"):
        client.alter_collection_properties("nope", {"a": 1})
    client.close()
    c2 = open_client(path)
    assert c2.describe_collection("c")["properties"] == {"collection.ttl.seconds": "60"}
    c2.close()


def test_load_and_release_partitions(client: MilvusClient) -> None:
    make(client, "c", 3)
    client.create_partition("c", "p1")
    client.create_partition("c", "p2")
    client.insert("c", rows(2, start=10), partition_name="p1")
    client.insert("c", rows(2, start=20), partition_name="p2")
    client.release_collection("c")
    client.load_partitions("c", ["p1"])
    state = lambda p="": client.get_load_state("c", p)["state"]  # noqa: E731
    assert (state(), state("p1"), state("p2"), state("zz")) == (
        LoadState.Loaded,
        LoadState.Loaded,
        LoadState.NotLoad,
        LoadState.NotExist,
    )
    assert ids_of(client, "c") == [10, 11]  # only loaded partitions are read
    (hits,) = client.search("c", data=rows(1)[0]["vector"], limit=10)
    assert sorted(h["id"] for h in hits) == [10, 11]
    with pytest.raises(PartitionNotLoadedError, match="p2") as e:
        client.search("c", data=rows(1)[0]["vector"], partition_names=["p2"])
    assert e.value.code == 201
    with pytest.raises(PartitionNotLoadedError, match="p2"):
        client.query("c", filter="id >= 0", partition_names=["p1", "p2"])
    with pytest.raises(PartitionNotFoundError, match="zz"):
        client.load_partitions("c", ["p2", "zz"])
    assert state("p2") == LoadState.NotLoad  # the failed load changed nothing
    client.load_partitions("c", "p2")
    assert ids_of(client, "c") == [10, 11, 20, 21]
    client.release_partitions("c", ["p1"])
    assert (state("p1"), state("p2")) == (LoadState.NotLoad, LoadState.Loaded)
    assert ids_of(client, "c", partition_names=["p2"]) == [20, 21]
    client.release_partitions("c", ["p2"])  # the last loaded partition
    assert state() == LoadState.NotLoad
    with pytest.raises(CollectionNotLoadedError):
        client.query("c", filter="id >= 0")
    client.load_collection("c")  # every partition again
    assert ids_of(client, "c") == [0, 1, 2, 10, 11, 20, 21]
    client.release_partitions("c", "_default")
    assert ids_of(client, "c") == [10, 11, 20, 21] and state("_default") == LoadState.NotLoad
    with pytest.raises(InvalidArgumentError, match="partition_names"):
        client.load_partitions("c", [])


def test_partition_load_state_survives_restart(path: Path) -> None:
    client = open_client(path)
    make(client, "c", 2)
    client.create_partition("c", "p1")
    client.insert("c", rows(1, start=10), partition_name="p1")
    client.flush("c")
    client.release_collection("c")
    client.load_partitions("c", ["p1"])
    client.close()
    c2 = open_client(path)
    assert c2.get_load_state("c", "p1")["state"] == LoadState.Loaded
    assert c2.get_load_state("c", "_default")["state"] == LoadState.NotLoad
    assert ids_of(c2, "c") == [10]
    c2.close()


def test_partition_stats_and_refresh_load(client: MilvusClient) -> None:
    make(client, "c", 4)
    client.create_partition("c", "p1")
    client.insert("c", rows(3, start=10), partition_name="p1")
    client.flush("c")
    client.insert("c", rows(2, start=20), partition_name="p1")  # growing
    client.delete("c", ids=[10])
    assert client.get_partition_stats("c", "p1") == {"row_count": 4}
    assert client.get_partition_stats("c", "_default") == {"row_count": 4}
    with pytest.raises(PartitionNotFoundError, match="zz"):
        client.get_partition_stats("c", "zz")
    with pytest.raises(TypeError, match="partition_name"):
        client.get_partition_stats("c", ["p1"])  # type: ignore[arg-type]
    client.refresh_load("c")
    assert ids_of(client, "c") == [0, 1, 2, 3, 11, 12, 20, 21]
    client.release_collection("c")
    with pytest.raises(CollectionNotLoadedError, match="c"):
        client.refresh_load("c")


# --- persistence and atomicity -----------------------------------------------------------
def test_databases_and_aliases_survive_restart(path: Path) -> None:
    client = open_client(path)
    client.create_database("db1", properties={"p": "1"})
    client.use_database("db1")
    make(client, "c", 3)
    client.create_alias("c", "a")
    client.close()
    c2 = open_client(path, db_name="db1")
    assert c2.list_databases() == ["default", "db1"]
    assert c2.describe_database("db1") == {"name": "db1", "p": "1"}
    assert c2.list_collections() == ["c"]
    assert c2.describe_alias("a") == {"alias": "a", "collection_name": "c", "db_name": "db1"}
    assert ids_of(c2, "a") == [0, 1, 2]
    meta = c2._engine.meta
    assert meta.get("catalog/databases/db1") is not None
    assert meta.get("catalog/aliases/db1/a") is not None
    c2.use_database("default")
    assert c2.list_collections() == []
    c2.close()


def test_failed_operations_leave_nothing_half_applied(client: MilvusClient) -> None:
    make(client, "c", 2)
    make(client, "d", 1, start=10)
    client.create_alias("c", "a")

    def records() -> dict[str, bytes]:  # DDL state (checkpoints move in the background)
        kvs = client._engine.meta.range("catalog/")[0]
        return {kv.key: kv.value for kv in kvs if not kv.key.startswith("catalog/checkpoints/")}

    snapshot = records()
    assert any(k.startswith("catalog/aliases/") for k in snapshot)
    failures: list[tuple[type[Exception], Callable[[], object]]] = [
        (CollectionAlreadyExistsError, lambda: client.rename_collection("c", "d")),
        (AliasCollectionConflictError, lambda: client.rename_collection("c", "a")),
        (AliasAlreadyExistsError, lambda: client.create_alias("d", "a")),
        (AliasCollectionConflictError, lambda: client.create_alias("c", "d")),
        (InvalidArgumentError, lambda: client.drop_collection("c")),  # has aliases
        (DatabaseAlreadyExistsError, lambda: client.create_database("default")),
        (PartitionNotFoundError, lambda: client.load_partitions("c", ["_default", "nope"])),
        (CollectionNotFoundError, lambda: client.alter_alias("nope", "a")),
    ]
    for exc, call in failures:
        with pytest.raises(exc):
            call()
        assert records() == snapshot
    assert ids_of(client, "a") == [0, 1] and ids_of(client, "d") == [10]
