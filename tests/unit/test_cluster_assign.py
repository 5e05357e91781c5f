"""Coordinator assignment rules (gpuvec.cluster.assign), cluster settings
(gpuvec.cluster.settings) and node sessions in meta storage (gpuvec.cluster.sessions)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuvec.cluster.assign import plan_channels, plan_segments
from gpuvec.cluster.sessions import (
    CHANNELS,
    SESSIONS,
    Session,
    channel_owners,
    new_node_id,
    segment_key,
    segment_servers,
    sessions,
)
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError
from gpuvec.storage.meta.sqlite import SqliteMetaStore


# --- channels --------------------------------------------------------------------------------
def _final(owners: dict[str, str], puts: dict[str, str], drops: list[str]) -> dict[str, str]:
    out = {ch: n for ch, n in owners.items() if ch not in drops}
    out.update(puts)
    return out


def test_every_wanted_channel_gets_one_live_owner() -> None:
    wanted = [f"ch-{i}" for i in range(5)]
    live = ["sn-a", "sn-b"]
    puts, drops = plan_channels(wanted, {}, live)
    assert drops == []
    assert sorted(puts) == wanted
    assert set(puts.values()) <= set(live)
    counts = Counter(puts.values())
    assert max(counts.values()) - min(counts.values()) <= 1


def test_live_owners_are_kept() -> None:
    wanted = ["ch-0", "ch-1", "ch-2", "ch-3"]
    # deliberately unbalanced: sn-a owns three; no churn means it keeps them
    owners = {"ch-0": "sn-a", "ch-1": "sn-a", "ch-2": "sn-a"}
    puts, drops = plan_channels(wanted, owners, ["sn-a", "sn-b"])
    assert drops == []
    assert puts == {"ch-3": "sn-b"}


def test_nothing_to_do_when_all_owned_by_live_nodes() -> None:
    owners = {"ch-0": "sn-a", "ch-1": "sn-b"}
    assert plan_channels(["ch-0", "ch-1"], owners, ["sn-a", "sn-b"]) == ({}, [])


def test_dead_owners_channels_move_to_least_loaded_live_nodes() -> None:
    wanted = [f"ch-{i}" for i in range(6)]
    owners = {
        "ch-0": "sn-a",
        "ch-1": "sn-a",
        "ch-2": "sn-b",
        "ch-3": "sn-dead",
        "ch-4": "sn-dead",
        "ch-5": "sn-dead",
    }
    live = ["sn-a", "sn-b", "sn-c"]
    puts, drops = plan_channels(wanted, owners, live)
    assert drops == []
    assert set(puts) == {"ch-3", "ch-4", "ch-5"}  # only the orphans move
    assert "sn-dead" not in puts.values()
    final = _final(owners, puts, drops)
    assert Counter(final.values()) == {"sn-a": 2, "sn-b": 2, "sn-c": 2}
    assert Counter(puts.values()) == {"sn-b": 1, "sn-c": 2}


def test_dropped_channels_are_listed() -> None:
    owners = {"ch-0": "sn-a", "ch-old": "sn-a", "ch-gone": "sn-dead"}
    puts, drops = plan_channels(["ch-0", "ch-1"], owners, ["sn-a", "sn-b"])
    assert sorted(drops) == ["ch-gone", "ch-old"]
    assert puts == {"ch-1": "sn-b"}  # the dropped channel no longer counts for sn-a


def test_no_live_nodes_no_puts() -> None:
    owners = {"ch-0": "sn-dead", "ch-x": "sn-dead"}
    puts, drops = plan_channels(["ch-0", "ch-1"], owners, [])
    assert puts == {}
    assert drops == ["ch-x"]


@pytest.mark.parametrize("start", [{}, {"ch-0": "sn-a", "ch-1": "sn-gone"}])
def test_eight_channels_over_three_nodes_balance(start: dict[str, str]) -> None:
    wanted = [f"ch-{i}" for i in range(8)]
    live = ["sn-a", "sn-b", "sn-c"]
    puts, drops = plan_channels(wanted, start, live)
    final = _final(start, puts, drops)
    assert sorted(final) == wanted
    assert set(final.values()) == set(live)
    counts = Counter(final.values())
    assert sorted(counts.values()) == [2, 3, 3]


# --- segments --------------------------------------------------------------------------------
def test_segments_one_replica_each() -> None:
    rows = {1: 100, 2: 100, 3: 100, 4: 100}
    load = {"qn-a": 0, "qn-b": 0}
    puts, drops = plan_segments(rows, {}, load, 1)
    assert drops == []
    assert sorted(puts) == [1, 2, 3, 4]
    assert all(len(nodes) == 1 for nodes in puts.values())
    assert Counter(n[0] for n in puts.values()) == {"qn-a": 2, "qn-b": 2}
    assert load == {"qn-a": 200, "qn-b": 200}  # updated in place


def test_segments_two_replicas_on_distinct_nodes() -> None:
    rows = {10: 50, 11: 70, 12: 30}
    load = {"qn-a": 0, "qn-b": 0, "qn-c": 0}
    puts, drops = plan_segments(rows, {}, load, 2)
    assert drops == []
    assert sorted(puts) == [10, 11, 12]
    for sid, nodes in puts.items():
        assert len(nodes) == 2, sid
        assert len(set(nodes)) == 2, sid
        assert set(nodes) <= set(load), sid
    assert sum(load.values()) == 2 * sum(rows.values())


def test_placed_segments_are_kept() -> None:
    rows = {1: 10, 2: 10}
    current = {1: ["qn-a"], 2: ["qn-a"]}
    load = {"qn-a": 20, "qn-b": 0}
    puts, drops = plan_segments(rows, current, load, 1)
    assert (puts, drops) == ({}, [])
    assert load == {"qn-a": 20, "qn-b": 0}


def test_segments_of_a_dead_node_are_replaced() -> None:
    rows = {1: 10, 2: 20, 3: 30}
    current = {1: ["qn-a", "qn-dead"], 2: ["qn-dead", "qn-b"], 3: ["qn-a", "qn-b"]}
    load = {"qn-a": 40, "qn-b": 50, "qn-c": 0}
    puts, drops = plan_segments(rows, current, load, 2)
    assert drops == []
    assert set(puts) == {1, 2}  # segment 3 had two live holders
    assert puts[1][0] == "qn-a"  # the surviving holder stays
    assert puts[2][0] == "qn-b"
    for nodes in puts.values():
        assert "qn-dead" not in nodes
        assert len(set(nodes)) == 2
    assert puts[1] == ["qn-a", "qn-c"]
    assert puts[2] == ["qn-b", "qn-c"]
    assert load == {"qn-a": 40, "qn-b": 50, "qn-c": 30}


def test_segments_balance_by_rows() -> None:
    rows = {1: 100, 2: 100, 3: 100, 4: 100}
    load = {"qn-heavy": 1000, "qn-light": 0}
    puts, _ = plan_segments(rows, {}, load, 1)
    got = Counter(n[0] for n in puts.values())
    assert got == {"qn-light": 4}  # the heavy node gets no new rows until loads even out
    load = {"qn-heavy": 150, "qn-light": 0}
    puts, _ = plan_segments(rows, {}, load, 1)
    got = Counter(n[0] for n in puts.values())
    assert got == {"qn-heavy": 1, "qn-light": 3}
    assert load == {"qn-heavy": 250, "qn-light": 300}


def test_segments_no_longer_committed_are_dropped() -> None:
    rows = {1: 10}
    current = {1: ["qn-a"], 2: ["qn-a"], 3: ["qn-dead"]}
    load = {"qn-a": 10}
    puts, drops = plan_segments(rows, current, load, 1)
    assert puts == {}
    assert sorted(drops) == [2, 3]


def test_replicas_above_live_nodes_use_every_node_once() -> None:
    rows = {1: 10, 2: 20}
    load = {"qn-a": 0, "qn-b": 0}
    puts, drops = plan_segments(rows, {}, load, 5)
    assert drops == []
    assert {sid: sorted(n) for sid, n in puts.items()} == {1: ["qn-a", "qn-b"], 2: ["qn-a", "qn-b"]}
    assert load == {"qn-a": 30, "qn-b": 30}


def test_segments_without_live_nodes() -> None:
    rows = {1: 10, 2: 10}
    current = {1: ["qn-dead"]}
    load: dict[str, int] = {}
    puts, drops = plan_segments(rows, current, load, 1)
    assert puts == {}
    assert drops == [1]  # nobody serves it any more
    assert load == {}


# --- settings --------------------------------------------------------------------------------
ENV_KEYS = (
    "GPUVEC_CONFIG",
    "GPUVEC_ETCD",
    "GPUVEC_ETCD_ROOT",
    "GPUVEC_KAFKA",
    "GPUVEC_TOPIC_PREFIX",
    "GPUVEC_OBJECTS",
    "GPUVEC_DASK_SCHEDULER",
    "GPUVEC_REPLICAS",
)


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key in list(os.environ):  # engine overrides (GPUVEC_<FIELD>) too
        if key.startswith("GPUVEC_") and key[7:].lower() in Config.__dataclass_fields__:
            monkeypatch.delenv(key)
    return monkeypatch


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cluster.toml"
    p.write_text(text)
    return p


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = ClusterSettings.load()
    assert s == ClusterSettings()
    assert s.etcd == "127.0.0.1:2379"
    assert s.replicas == 1
    assert s.meta_root == "gpuvec/"
    assert s.engine == Config()


FILE = """
[cluster]
etcd = "10.0.0.1:2379,10.0.0.2:2379"
etcd_root = "prod"
kafka = "broker:9092"
topic_prefix = "p-"
objects = "s3://bucket/prefix"
dask_scheduler = "tcp://sched:8786"
replicas = 2

[engine]
seal_rows = 1234
default_shards = 3
"""


def test_settings_from_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = ClusterSettings.load(_toml(tmp_path, FILE))
    assert s.etcd == "10.0.0.1:2379,10.0.0.2:2379"
    assert s.etcd_root == "prod"
    assert s.kafka == "broker:9092"
    assert s.topic_prefix == "p-"
    assert s.objects == "s3://bucket/prefix"
    assert s.dask_scheduler == "tcp://sched:8786"
    assert s.replicas == 2
    assert isinstance(s.engine, Config)
    assert s.engine.seal_rows == 1234
    assert s.engine.default_shards == 3
    assert s.engine.time_tick_ms == Config().time_tick_ms  # untouched fields keep defaults
    assert s.as_dict()["engine"]["seal_rows"] == 1234


def test_settings_file_from_env_var(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("GPUVEC_CONFIG", str(_toml(tmp_path, FILE)))
    assert ClusterSettings.load().replicas == 2


def test_env_overrides_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("GPUVEC_ETCD", "envhost:2379")
    clean_env.setenv("GPUVEC_REPLICAS", "3")
    s = ClusterSettings.load(_toml(tmp_path, FILE))
    assert s.etcd == "envhost:2379"
    assert s.replicas == 3
    assert isinstance(s.replicas, int)
    assert s.kafka == "broker:9092"  # not overridden


def test_keyword_overrides_win(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("GPUVEC_REPLICAS", "3")
    s = ClusterSettings.load(_toml(tmp_path, FILE), replicas=4, engine={"seal_rows": 99})
    assert s.replicas == 4
    assert s.engine.seal_rows == 99
    assert s.engine.default_shards == 3  # the file's other engine values remain


def test_engine_env_reaches_engine(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GPUVEC_SEAL_ROWS", "777")
    assert ClusterSettings.load().engine.seal_rows == 777


def test_unknown_table_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _toml(tmp_path, "[cluster]\n[storage]\nx = 1\n")
    with pytest.raises(InvalidArgumentError, match="storage") as info:
        ClusterSettings.load(path)
    assert str(path) in info.value.message


def test_unknown_cluster_key_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="etcd_endpoint"):
        ClusterSettings.load(_toml(tmp_path, '[cluster]\netcd_endpoint = "x"\n'))


def test_unknown_engine_key_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no_such_option"):
        ClusterSettings.load(_toml(tmp_path, "[engine]\nno_such_option = 1\n"))


@pytest.mark.parametrize("text", ['"two"', "0", "-1"])
def test_bad_replicas_in_file(clean_env: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="replicas"):
        ClusterSettings.load(_toml(tmp_path, f"[cluster]\nreplicas = {text}\n"))


def test_bad_replicas_in_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GPUVEC_REPLICAS", "many")
    with pytest.raises(InvalidArgumentError, match="replicas") as info:
        ClusterSettings.load()
    assert "many" in info.value.message


def test_missing_file_names_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "nope" / "cluster.toml"
    with pytest.raises(InvalidArgumentError) as info:
        ClusterSettings.load(path)
    assert str(path) in info.value.message


def test_malformed_file_names_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _toml(tmp_path, "[cluster\netcd = \n")
    with pytest.raises(InvalidArgumentError) as info:
        ClusterSettings.load(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize(
    "root, meta_root",
    [("gpuvec", "gpuvec/"), ("gpuvec/", "gpuvec/"), ("/a/b/", "a/b/"), ("", ""), ("/", "")],
)
def test_meta_root(clean_env: pytest.MonkeyPatch, root: str, meta_root: str) -> None:
    assert ClusterSettings.load(etcd_root=root).meta_root == meta_root


def test_meta_root_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GPUVEC_ETCD_ROOT", "")
    assert ClusterSettings.load().meta_root == ""
    clean_env.setenv("GPUVEC_ETCD_ROOT", "team1")
    assert ClusterSettings.load().meta_root == "team1/"


# --- sessions --------------------------------------------------------------------------------
@pytest.fixture()
def meta(tmp_path: Path) -> Iterator[SqliteMetaStore]:
    m = SqliteMetaStore(tmp_path / "m.db")
    yield m
    m.close()


def test_session_registers_and_closes(meta: SqliteMetaStore) -> None:
    info = {"address": "127.0.0.1:7001", "gpu": 0}
    s = Session(meta, "querynode", "qn-1", info, ttl=5)
    try:
        assert s.key == f"{SESSIONS}querynode/qn-1"
        kv = meta.get(s.key)
        assert kv is not None
        assert kv.lease == s.keeper.id != 0  # lives under the node's lease
        assert sessions(meta, "querynode") == {
            "qn-1": {"node_id": "qn-1", "pid": os.getpid(), **info}
        }
        assert sessions(meta, "streamingnode") == {}
        assert not s.lost
    finally:
        s.close()
    assert meta.get(s.key) is None
    assert sessions(meta, "querynode") == {}


def test_sessions_lists_each_node_of_a_role(meta: SqliteMetaStore) -> None:
    a = Session(meta, "streamingnode", "sn-a", {"address": "h:1"})
    b = Session(meta, "streamingnode", "sn-b", {"address": "h:2"})
    p = Session(meta, "proxy", "px-1", {"address": "h:3"})
    try:
        got = sessions(meta, "streamingnode")
        assert sorted(got) == ["sn-a", "sn-b"]
        assert got["sn-b"]["address"] == "h:2"
        assert list(sessions(meta, "proxy")) == ["px-1"]
        a.close()
        assert list(sessions(meta, "streamingnode")) == ["sn-b"]
    finally:
        for s in (a, b, p):
            s.close()


def test_unknown_role_refused(meta: SqliteMetaStore) -> None:
    with pytest.raises(ValueError, match="datanode"):
        Session(meta, "datanode", "dn-1", {})
    assert meta.range(SESSIONS)[0] == []


def test_new_node_id_is_unique_per_call() -> None:
    a, b = new_node_id("querynode"), new_node_id("querynode")
    assert a.startswith("querynode-")
    assert a != b
    assert "/" not in a


def test_channel_owners_reads_keys(meta: SqliteMetaStore) -> None:
    assert channel_owners(meta) == {}
    meta.put(f"{CHANNELS}gpuvec-dml-0", b"sn-a")
    meta.put(f"{CHANNELS}gpuvec-dml-1", b"sn-b")
    meta.put("cluster/other", b"ignored")
    assert channel_owners(meta) == {"gpuvec-dml-0": "sn-a", "gpuvec-dml-1": "sn-b"}


def test_segment_servers_reads_keys(meta: SqliteMetaStore) -> None:
    assert segment_key(1, 10) == "cluster/segments/1/10"
    meta.put(segment_key(1, 10), json.dumps(["qn-a", "qn-b"]).encode())
    meta.put(segment_key(1, 11), json.dumps(["qn-c"]).encode())
    meta.put(segment_key(12, 20), json.dumps(["qn-a"]).encode())
    assert segment_servers(meta, 1) == {10: ["qn-a", "qn-b"], 11: ["qn-c"]}
    assert segment_servers(meta, 12) == {20: ["qn-a"]}  # "1/" is no prefix of "12/"
    assert segment_servers(meta, 99) == {}
    assert segment_servers(meta) == {10: ["qn-a", "qn-b"], 11: ["qn-c"], 20: ["qn-a"]}
