"""``LocalCluster`` and ``gpuvec cluster``: config file, process bookkeeping, kill/start/down,
readiness (sessions in a real etcd, a real Dask scheduler and a real Milvus endpoint), CLI.

The role processes are stand-ins given through ``commands``: sleepers, or small scripts that
register the session / leader keys a real node would, so no test depends on the roles."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpuvec.cluster import launcher_cli
from gpuvec.cluster.launcher import (
    ROLES,
    ClusterError,
    ClusterTimeoutError,
    LocalCluster,
    pid_alive,
)
from gpuvec.cluster.settings import toml_value
from gpuvec.errors import InvalidArgumentError

PY = sys.executable
SLEEP = [PY, "-c", "import sys, time; print('dummy', sys.argv[1:], flush=True); time.sleep(600)"]
# Registers KEY ({index} filled in) on a 5 s lease in the etcd the config file names, opened
# the way every role opens it, as a node's session (or a coordinator's leader key) would.
REGISTER = """
import sys, time
from gpuvec.cluster.settings import ClusterSettings
meta = ClusterSettings.load(sys.argv[1]).open_meta()
lease = meta.grant_lease(5)
meta.put(sys.argv[2], b"127.0.0.1:1 " + sys.argv[2].encode(), lease=lease.id)
print("registered", sys.argv[2], flush=True)
while True:
    time.sleep(1)
    meta.keepalive(lease.id)
"""
# A process that leaves a child in its process group; the child writes its pid to a file.
WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


def dummy_commands(**extra: list[str]) -> dict[str, list[str]]:
    cmds = {role: [*SLEEP, role, "{index}", "{config}"] for role in ROLES}
    return cmds | extra


def register(key: str) -> list[str]:
    return [PY, "-c", REGISTER, "{config}", key]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(name: str = "c", **kw: object) -> LocalCluster:
        kw = {"etcd": "127.0.0.1:23790", "kafka": "127.0.0.1:19092", "port": 0} | kw
        kw.setdefault("commands", dummy_commands())
        cluster = LocalCluster(tmp_path / name, **kw)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.down()


def all_pids(cluster: LocalCluster) -> list[int]:
    return [p["pid"] for procs in cluster.processes.values() for p in procs]


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_up_writes_a_config_every_role_can_read(make_cluster: Callable[..., LocalCluster]):
    a = make_cluster("a", engine={"seal_rows": 1000, "index": 'HN"SW', "ratio": 0.5})
    b = make_cluster("b")
    a.up(timeout=30)
    b.up(timeout=30)
    cfg = tomllib.loads(a.config_path.read_text())
    c = cfg["cluster"]
    assert re.fullmatch(r"gpuvec-[0-9a-f]{12}", c["etcd_root"])
    assert c["topic_prefix"] == c["etcd_root"] + "-"
    assert (c["etcd"], c["kafka"], c["replicas"]) == ("127.0.0.1:23790", "127.0.0.1:19092", 1)
    assert c["objects"] == str(a.directory / "objects" / c["etcd_root"])
    assert Path(c["objects"]).is_dir()
    assert c["dask_scheduler"] == f"tcp://127.0.0.1:{a.state['scheduler_port']}"
    assert cfg["engine"] == {"seal_rows": 1000, "index": 'HN"SW', "ratio": 0.5}
    other = tomllib.loads(b.config_path.read_text())["cluster"]
    assert other["etcd_root"] != c["etcd_root"]  # clusters can share one etcd
    assert a.uri == f"http://127.0.0.1:{a.state['port']}" and a.state["port"] > 0
    assert a.dashboard == f"http://127.0.0.1:{a.state['dashboard_port']}/gpuvec"


def test_up_starts_the_asked_number_of_each_role(make_cluster: Callable[..., LocalCluster]):
    cluster = make_cluster(query_nodes=3, streaming_nodes=2, data_nodes=2, coordinators=2)
    cluster.up(timeout=30)
    counts = {role: len(cluster.processes[role]) for role in ROLES}
    assert counts == {
        "scheduler": 1,
        "datanode": 2,
        "coordinator": 2,
        "streamingnode": 2,
        "querynode": 3,
        "proxy": 1,
    }
    pids = all_pids(cluster)
    assert len(set(pids)) == len(pids) == 11
    assert all(pid_alive(pid) for pid in pids)
    for role in ROLES:  # placeholders filled in; each process logs to its own file
        for i, p in enumerate(cluster.processes[role]):
            assert p["argv"][-2:] == [str(i), str(cluster.config_path)]
            assert p["log"] == str(cluster.log_dir / f"{role}-{i}.log")
    log = Path(cluster.processes["querynode"][2]["log"])
    printed = f"\ndummy ['querynode', '2', '{cluster.config_path}']\n"  # after the header
    deadline = time.monotonic() + 10
    while printed not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert printed in log.read_text()
    assert log.read_text().startswith("# ") and str(cluster.config_path) in log.read_text()


def test_state_round_trips_through_attach(make_cluster: Callable[..., LocalCluster]):
    cluster = make_cluster(query_nodes=2, engine={"seal_rows": 10})
    cluster.up(timeout=30)
    other = LocalCluster.attach(cluster.directory)
    assert other.processes == cluster.processes
    assert (other.uri, other.dashboard) == (cluster.uri, cluster.dashboard)
    assert other.state["etcd_root"] == cluster.state["etcd_root"]
    assert other.counts == cluster.counts and other.engine == {"seal_rows": 10}
    assert other.commands == cluster.commands
    procs = other.status()["processes"]
    assert [p["pid"] for p in procs["querynode"]] == [
        p["pid"] for p in cluster.processes["querynode"]
    ]
    assert all(p["alive"] for role in ROLES for p in procs[role])
    json.loads(cluster.state_path.read_text())  # valid JSON on disk
    with pytest.raises(ClusterError, match="no local cluster"):
        LocalCluster.attach(cluster.directory / "nothing-here")


def test_kill_kills_exactly_that_process(make_cluster: Callable[..., LocalCluster]):
    cluster = make_cluster(query_nodes=3)
    cluster.up(timeout=30)
    target = cluster.processes["querynode"][1]["pid"]
    assert cluster.kill("querynode", 1) == target
    assert wait_dead(target)
    assert all(pid_alive(pid) for pid in all_pids(cluster) if pid != target)
    alive = {
        (role, p["index"]): p["alive"]
        for role, ps in LocalCluster.attach(cluster.directory).status()["processes"].items()
        for p in ps
    }
    assert [k for k, v in alive.items() if not v] == [("querynode", 1)]
    with pytest.raises(ClusterError, match="no querynode #7"):
        cluster.kill("querynode", 7)


def test_kill_with_sigterm_and_role_aliases(make_cluster: Callable[..., LocalCluster]):
    cluster = make_cluster(streaming_nodes=2)
    cluster.up(timeout=30)
    pid = cluster.kill("streaming-node", 0, signal.SIGTERM)
    assert pid == cluster.processes["streamingnode"][0]["pid"] and wait_dead(pid)
    assert pid_alive(cluster.processes["streamingnode"][1]["pid"])
    with pytest.raises(ClusterError, match="unknown role"):
        cluster.kill("indexnode")


def test_start_adds_one_process(make_cluster: Callable[..., LocalCluster]):
    cluster = make_cluster(query_nodes=2)
    cluster.up(timeout=30)
    before = all_pids(cluster)
    assert cluster.start("querynode") == 2
    new = cluster.processes["querynode"][2]
    assert new["pid"] not in before and pid_alive(new["pid"])
    assert Path(new["log"]).name == "querynode-2.log"
    assert len(LocalCluster.attach(cluster.directory).processes["querynode"]) == 3
    assert cluster.start("proxy") == 1  # a second proxy gets a port of its own
    ports = [p["port"] for p in cluster.processes["proxy"]]
    assert len(set(ports)) == 2
    with pytest.raises(ClusterError, match="one Dask scheduler"):
        cluster.start("scheduler")


def test_down_stops_everything_and_is_idempotent(
    make_cluster: Callable[..., LocalCluster], tmp_path: Path
):
    child_file = tmp_path / "child.pid"
    commands = dummy_commands(datanode=[PY, "-c", WITH_CHILD, str(child_file)])
    cluster = make_cluster(commands=commands, data_nodes=1)
    cluster.up(timeout=30)
    deadline = time.monotonic() + 10
    while not child_file.exists() or not child_file.read_text():
        assert time.monotonic() < deadline, "the data node never started its child"
        time.sleep(0.05)
    child = int(child_file.read_text())
    pids = [*all_pids(cluster), child]
    assert all(pid_alive(pid) for pid in pids)
    LocalCluster.attach(cluster.directory).down()  # as `gpuvec cluster down` would
    assert all(wait_dead(pid, 1) for pid in pids)  # the child left in the group too
    cluster.down()
    LocalCluster.attach(cluster.directory).down()
    status = LocalCluster.attach(cluster.directory).status()
    assert not any(p["alive"] for ps in status["processes"].values() for p in ps)
    with pytest.raises(ClusterError, match="not up"):
        cluster.start("querynode")


def test_up_refuses_a_directory_with_a_running_cluster(
    make_cluster: Callable[..., LocalCluster],
):
    first = make_cluster("same")
    first.up(timeout=30)
    with pytest.raises(ClusterError, match="stop it first"):
        make_cluster("same").up(timeout=30)
    first.down()
    again = make_cluster("same")
    again.up(timeout=30)  # a stopped cluster's directory can be reused
    assert all(pid_alive(pid) for pid in all_pids(again))


def test_failed_start_stops_the_rest_and_shows_the_log(
    make_cluster: Callable[..., LocalCluster],
):
    bad = ["sh", "-c", "echo 'no such setting: bogus' >&2; exit 3"]
    cluster = make_cluster(commands=dummy_commands(proxy=bad))
    with pytest.raises(ClusterError, match=r"proxy-0 exited \(3\)[\s\S]*no such setting: bogus"):
        cluster.up(timeout=30)
    state = json.loads(cluster.state_path.read_text())
    pids = [p["pid"] for ps in state["processes"].values() for p in ps]
    assert len(pids) == 7 and all(wait_dead(pid, 1) for pid in pids)


def test_sessions_and_leader_come_from_etcd(
    make_cluster: Callable[..., LocalCluster], etcd_endpoint: str
):
    commands = dummy_commands(
        querynode=register("cluster/sessions/querynode/{index}"),
        coordinator=register("election/coordinator"),
    )
    cluster = make_cluster(etcd=etcd_endpoint, commands=commands, query_nodes=2, coordinators=1)
    cluster.up(timeout=30)
    cluster.wait_sessions("querynode", 2, timeout=30)
    deadline = time.monotonic() + 30  # the coordinator registers on its own schedule
    while not cluster.status().get("leader") and time.monotonic() < deadline:
        time.sleep(0.1)
    status = cluster.status()
    assert "meta_error" not in status
    assert sorted(status["sessions"]) == [
        "cluster/sessions/querynode/0",
        "cluster/sessions/querynode/1",
    ]
    assert status["sessions"]["cluster/sessions/querynode/1"].endswith("querynode/1")
    assert list(status["leader"]) == ["election/coordinator"]
    assert cluster.start("querynode") == 2
    cluster.wait_sessions("query_node", 3, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(ClusterTimeoutError, match="4 session key"):
        cluster.wait_sessions("querynode", 4, timeout=1)
    assert time.monotonic() - t0 < 10
    cluster.kill("querynode", 0)
    with pytest.raises(ClusterError, match="querynode-1 exited"):
        os.kill(cluster.processes["querynode"][1]["pid"], signal.SIGKILL)
        cluster.wait_sessions("querynode", 9, timeout=30)  # fails fast on an unexpected exit


@pytest.mark.slow
def test_up_waits_for_scheduler_sessions_leader_and_proxy(
    make_cluster: Callable[..., LocalCluster], etcd_endpoint: str, tmp_path: Path
):
    serve = [PY, "-m", "gpuvec", "serve", "--data", str(tmp_path / "serve"), "--port", "{port}"]
    commands = {  # the real Dask scheduler (no override); a real Milvus endpoint as proxy
        "coordinator": register("election/coordinator"),
        "streamingnode": register("cluster/sessions/streamingnode/{index}"),
        "querynode": register("cluster/sessions/querynode/{index}"),
        "proxy": serve,
    }
    cluster = make_cluster(etcd=etcd_endpoint, commands=commands, data_nodes=0, wait_ready=True)
    cluster.up(timeout=120)
    from pymilvus import MilvusClient

    client = MilvusClient(uri=cluster.uri, timeout=10)
    assert client.list_collections() == []
    client.close()
    assert "distributed.cli.dask_scheduler" in cluster.processes["scheduler"][0]["argv"]
    assert len(cluster.status()["sessions"]) == 2


def test_up_times_out_with_the_log_of_the_role_it_waited_for(
    make_cluster: Callable[..., LocalCluster], etcd_endpoint: str
):
    commands = dummy_commands(streamingnode=register("cluster/sessions/streamingnode/0"))
    del commands["scheduler"]  # the real one: its port opens, then the wait is for sessions
    cluster = make_cluster(etcd=etcd_endpoint, commands=commands, wait_ready=True)
    with pytest.raises(ClusterTimeoutError, match=r"querynode[\s\S]*querynode-0.log"):
        cluster.up(timeout=12)
    assert not any(pid_alive(pid) for pid in all_pids(cluster))


def test_toml_values_round_trip():
    values = {"s": 'a "q" \\ \n ü', "i": -3, "f": 1e-5, "b": True, "l": [1, "x"]}
    text = "\n".join(f"{k} = {toml_value(v)}" for k, v in values.items())
    assert tomllib.loads(text) == values
    with pytest.raises(InvalidArgumentError):
        toml_value(float("nan"))
    with pytest.raises(InvalidArgumentError):
        toml_value({"nested": 1})


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpuvec")
    launcher_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_parses_up_down_status():
    args = parse("cluster", "up", "--dir", "/x", "--query-nodes", "3", "--port", "0")
    assert (args.command, args.cluster_command, args.dir) == ("cluster", "up", "/x")
    assert (args.query_nodes, args.streaming_nodes, args.data_nodes) == (3, 1, 1)
    assert (args.coordinators, args.port, args.etcd) == (2, 0, None)
    args = parse("cluster", "up", "--engine", "seal_rows=1000", "--engine", "index=HNSW")
    assert dict(args.engine) == {"seal_rows": 1000, "index": "HNSW"}
    assert parse("cluster", "down").dir == launcher_cli.DEFAULT_DIR
    assert parse("cluster", "status", "--json").json is True
    for bad in (["cluster"], ["cluster", "up", "--engine", "novalue"], ["cluster", "restart"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_cli_status_and_down(
    make_cluster: Callable[..., LocalCluster], capsys: pytest.CaptureFixture[str]
):
    cluster = make_cluster(query_nodes=2)
    cluster.up(timeout=30)
    assert launcher_cli.run(parse("cluster", "status", "--dir", str(cluster.directory))) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["querynode"]]
    assert [(r[1], r[3]) for r in rows] == [("0", "alive"), ("1", "alive")]
    assert f"endpoint   {cluster.uri}" in out
    cluster.kill("querynode", 1)
    assert wait_dead(cluster.processes["querynode"][1]["pid"])
    assert launcher_cli.run(parse("cluster", "status", "--dir", str(cluster.directory))) == 1
    assert launcher_cli.run(parse("cluster", "down", "--dir", str(cluster.directory))) == 0
    assert not any(pid_alive(pid) for pid in all_pids(cluster))
    args = parse("cluster", "status", "--json", "--dir", str(cluster.directory))
    assert launcher_cli.run(args) == 1
    info = json.loads(capsys.readouterr().out.split("stopped\n", 1)[1])
    assert info["processes"]["querynode"][0]["alive"] is False
    missing = parse("cluster", "status", "--dir", str(cluster.directory / "none"))
    assert launcher_cli.run(missing) == 1
    assert "no local cluster" in capsys.readouterr().err
