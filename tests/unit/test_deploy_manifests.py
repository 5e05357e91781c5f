"""Static checks of the cluster deployment manifests under ``deploy/``.

Parses the Docker Compose file, the Kubernetes manifests and the shared TOML config, and
checks that they describe the topology of DESIGN.md §1: every role is present, every gpuvec
process runs a real subcommand with the shared config, GPU roles ask for a GPU, the proxy is
reachable on 19530, and the config keys are ones the code knows.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuvec.config import Config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"

ROLE_COMMANDS = {"coordinator", "streamingnode", "querynode", "proxy"}
CLUSTER_KEYS = {
    "etcd",
    "etcd_root",
    "kafka",
    "topic_prefix",
    "objects",
    "dask_scheduler",
    "replicas",
}
CONFIG_PATH = "/etc/gpuvec/gpuvec.toml"
OBJECTS_PATH = "/data/objects"
NODE_ROLES = {"coordinator", "streamingnode", "querynode"}  # they take --advertise
GPU_DEVICE = {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


# ----------------------------------------------------------------------------- helpers


def _flag(args: list[str], name: str) -> str | None:
    """The value after ``name`` in an argument list (None when absent)."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return str(args[i + 1])
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list), f"command must be a list (exec form), got {cmd!r}"
    return [str(c) for c in cmd]


def _gpuvec_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Compose services whose command is ``gpuvec <subcommand> ...``."""
    out = {}
    for name, svc in services.items():
        cmd = svc.get("command")
        if isinstance(cmd, list) and cmd and cmd[0] == "gpuvec":
            out[name] = [str(c) for c in cmd]
    return out


def _role_services(services: dict[str, dict[str, Any]], role: str) -> list[str]:
    return [n for n, cmd in _gpuvec_services(services).items() if cmd[1] == role]


@pytest.fixture(scope="module")
def compose_toml() -> dict[str, Any]:
    return tomllib.loads((COMPOSE_DIR / "gpuvec.toml").read_text())


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in _k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def _kind(docs: list[tuple[str, dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def _workloads(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for _, d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            out[d["metadata"]["name"]] = d
    return out


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def _argv(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in container.get("command", []) + container.get("args", [])]


@pytest.fixture(scope="module")
def configmap_toml(k8s_docs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    maps = _kind(k8s_docs, "ConfigMap")
    assert list(maps) == ["gpuvec-config"]
    return tomllib.loads(maps["gpuvec-config"]["data"]["gpuvec.toml"])


# ----------------------------------------------------------------------------- compose


def test_compose_has_every_role(services: dict[str, dict[str, Any]]) -> None:
    for infra in ("etcd", "kafka", "dask-scheduler", "datanode"):
        assert infra in services, infra
    roles = {cmd[1] for cmd in _gpuvec_services(services).values()}
    assert roles == ROLE_COMMANDS
    assert services["etcd"]["image"].startswith("quay.io/coreos/etcd:v3.5.")
    kafka_image = services["kafka"]["image"]
    assert kafka_image.startswith("apache/kafka:"), kafka_image
    env = services["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]


def test_compose_gpuvec_commands(services: dict[str, dict[str, Any]]) -> None:
    gpuvec = _gpuvec_services(services)
    assert len(gpuvec) >= 5
    for name, cmd in gpuvec.items():
        assert cmd[1] in ROLE_COMMANDS, (name, cmd)
        assert _flag(cmd, "--config") == CONFIG_PATH, name
        assert _flag(cmd, "--host") == "0.0.0.0", name
        assert _flag(cmd, "--port") is not None, name
        if cmd[1] in NODE_ROLES:
            # other roles reach a node under the name it advertises: its service name
            assert _flag(cmd, "--advertise") == name, name
        assert services[name]["image"] == "gpuvec:latest", name
        mounts = [str(v) for v in services[name].get("volumes", [])]
        assert f"./gpuvec.toml:{CONFIG_PATH}:ro" in mounts, name
        assert services[name]["environment"]["GPUVEC_CONFIG"] == CONFIG_PATH, name


def test_compose_ports_are_distinct_per_role(services: dict[str, dict[str, Any]]) -> None:
    ports = {}
    for cmd in _gpuvec_services(services).values():
        ports.setdefault(cmd[1], set()).add(_flag(cmd, "--port"))
    assert ports == {
        "coordinator": {"19600"},
        "streamingnode": {"19610"},
        "querynode": {"19620"},
        "proxy": {"19530"},
    }


def test_compose_two_coordinators(services: dict[str, dict[str, Any]]) -> None:
    coords = _role_services(services, "coordinator")
    replicas = sum(int(services[c].get("deploy", {}).get("replicas", 1)) for c in coords)
    assert replicas == 2, coords
    advertised = {_flag(_command(services[c]), "--advertise") for c in coords}
    assert len(advertised) == len(coords), "each coordinator needs its own address"


@pytest.mark.parametrize("role", ["querynode", "datanode"])
def test_compose_gpu_reservations(services: dict[str, dict[str, Any]], role: str) -> None:
    names = [role] if role in services else _role_services(services, role)
    assert names, role
    for name in names:
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [GPU_DEVICE], name


def test_compose_datanode_is_a_gpu_dask_worker(services: dict[str, dict[str, Any]]) -> None:
    cmd = _command(services["datanode"])
    assert cmd[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert _flag(cmd, "--nthreads") == "1"
    assert _flag(cmd, "--resources") == "GPU=1"
    sched = _command(services["dask-scheduler"])
    assert sched[:2] == ["dask", "scheduler"]
    assert "8787:8787" in [str(p) for p in services["dask-scheduler"]["ports"]]


def test_compose_proxy_publishes_milvus_port(services: dict[str, dict[str, Any]]) -> None:
    proxies = _role_services(services, "proxy")
    assert proxies
    published = {str(p) for name in proxies for p in services[name].get("ports", [])}
    assert "19530:19530" in published


def test_compose_shared_objects_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "objects" in compose["volumes"]
    needs = ["datanode"] + [
        n for n, cmd in _gpuvec_services(services).items() if cmd[1] in NODE_ROLES
    ]
    assert len(needs) >= 5
    for name in needs:
        mounts = [str(v) for v in services[name]["volumes"]]
        assert f"objects:{OBJECTS_PATH}" in mounts, name


def test_compose_dependencies_exist(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
            checked += 1
    assert checked > 0


def test_compose_image_is_built_here(services: dict[str, dict[str, Any]]) -> None:
    builds = [s["build"] for s in services.values() if "build" in s]
    assert builds
    for build in builds:
        dockerfile = (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile == (COMPOSE_DIR / "Dockerfile").resolve()
        assert dockerfile.is_file()
    text = (COMPOSE_DIR / "Dockerfile").read_text()
    assert [ln for ln in text.splitlines() if ln.startswith("FROM")] == ["FROM python:3.12-slim"]
    assert "pip install ." in text and "cupy-cuda12x" in text


# ----------------------------------------------------------------------------- config


def test_cluster_keys_known(compose_toml: dict[str, Any], configmap_toml: dict[str, Any]) -> None:
    assert set(compose_toml["cluster"]) <= CLUSTER_KEYS
    assert set(configmap_toml["cluster"]) == set(compose_toml["cluster"])
    assert compose_toml["cluster"]["objects"] == OBJECTS_PATH
    assert configmap_toml["cluster"]["objects"] == OBJECTS_PATH
    assert isinstance(compose_toml["cluster"]["replicas"], int)


@pytest.mark.parametrize("which", ["compose", "configmap"])
def test_engine_keys_are_config_fields(
    which: str, compose_toml: dict[str, Any], configmap_toml: dict[str, Any]
) -> None:
    engine = (compose_toml if which == "compose" else configmap_toml)["engine"]
    assert engine, "the example [engine] table should show at least one field"
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for key, value in engine.items():
        assert key in fields, f"[engine] {key} is not a gpuvec.config.Config field"
        default = fields[key].default
        expected = (int, float) if isinstance(default, float) else type(default)
        assert isinstance(value, expected), (key, value)
    Config(**engine)  # the values construct a valid config


def test_compose_and_configmap_engine_agree(
    compose_toml: dict[str, Any], configmap_toml: dict[str, Any]
) -> None:
    assert compose_toml["engine"] == configmap_toml["engine"]


# ----------------------------------------------------------------------------- kubernetes


def test_k8s_docs_are_named_objects(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    assert len(k8s_docs) >= 15
    for fname, doc in k8s_docs:
        assert doc.get("apiVersion"), fname
        assert doc.get("kind"), fname
        assert doc.get("metadata", {}).get("name"), (fname, doc.get("kind"))
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "gpuvec", (fname, doc["metadata"])


def test_kustomization_lists_exactly_the_files() -> None:
    kust = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    assert kust["namespace"] == "gpuvec"
    assert len(kust["resources"]) == len(set(kust["resources"]))
    assert set(kust["resources"]) == {p.name for p in _k8s_files()}
    assert {p.name for p in _k8s_files()} == {
        "namespace.yaml",
        "config.yaml",
        "storage.yaml",
        "dask.yaml",
        "gpuvec.yaml",
    }


def test_k8s_expected_objects(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    assert set(_kind(k8s_docs, "Namespace")) == {"gpuvec"}
    assert set(_kind(k8s_docs, "StatefulSet")) == {"etcd", "kafka", "streamingnode"}
    assert set(_kind(k8s_docs, "Deployment")) == {
        "dask-scheduler",
        "datanode",
        "coordinator",
        "querynode",
        "proxy",
    }
    pvc = _kind(k8s_docs, "PersistentVolumeClaim")["gpuvec-objects"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    by_file = {(f, d["kind"], d["metadata"]["name"]) for f, d in k8s_docs}
    for f, kind, name in [
        ("storage.yaml", "StatefulSet", "etcd"),
        ("storage.yaml", "StatefulSet", "kafka"),
        ("storage.yaml", "PersistentVolumeClaim", "gpuvec-objects"),
        ("config.yaml", "ConfigMap", "gpuvec-config"),
        ("dask.yaml", "Deployment", "datanode"),
        ("gpuvec.yaml", "Deployment", "proxy"),
    ]:
        assert (f, kind, name) in by_file


def test_k8s_replicas(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    wl = _workloads(k8s_docs)
    replicas = {name: wl[name]["spec"]["replicas"] for name in wl}
    assert replicas["coordinator"] == 2
    assert replicas["streamingnode"] == 2
    assert replicas["querynode"] == 2
    assert replicas["proxy"] == 2
    assert replicas["dask-scheduler"] == 1


def test_k8s_workloads_use_the_configmap(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    gpuvec_workloads = {
        name: w
        for name, w in _workloads(k8s_docs).items()
        if _container(w)["image"].startswith("gpuvec:")
    }
    assert set(gpuvec_workloads) >= {"coordinator", "streamingnode", "querynode", "proxy"}
    assert "datanode" in gpuvec_workloads
    for name, w in gpuvec_workloads.items():
        pod = w["spec"]["template"]["spec"]
        config_vols = [v["name"] for v in pod["volumes"] if "configMap" in v]
        assert [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v] == [
            "gpuvec-config"
        ], name
        mounts = {m["name"]: m["mountPath"] for m in _container(w)["volumeMounts"]}
        assert mounts[config_vols[0]] == "/etc/gpuvec", name
        env = {e["name"]: e.get("value") for e in _container(w).get("env", [])}
        assert env.get("GPUVEC_CONFIG") == CONFIG_PATH, name


def test_k8s_role_commands(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    seen = set()
    for name, w in _workloads(k8s_docs).items():
        argv = _argv(_container(w))
        if not argv or argv[0] != "gpuvec":
            continue
        role = argv[1]
        assert role in ROLE_COMMANDS, (name, argv)
        seen.add(role)
        assert _flag(argv, "--config") == CONFIG_PATH, name
        assert _flag(argv, "--host") == "0.0.0.0", name
        if role in NODE_ROLES:
            assert _flag(argv, "--advertise") == "$(POD_IP)", name
            env = {e["name"]: e for e in _container(w)["env"]}
            assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", name
            mounts = {m["mountPath"] for m in _container(w)["volumeMounts"]}
            assert OBJECTS_PATH in mounts, name
    assert seen == ROLE_COMMANDS


def test_k8s_objects_claim_is_mounted(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    users = set()
    for name, w in _workloads(k8s_docs).items():
        for vol in w["spec"]["template"]["spec"].get("volumes", []):
            if vol.get("persistentVolumeClaim", {}).get("claimName") == "gpuvec-objects":
                users.add(name)
    assert users == {"coordinator", "streamingnode", "querynode", "datanode"}


@pytest.mark.parametrize("name", ["querynode", "datanode"])
def test_k8s_gpu_limits(k8s_docs: list[tuple[str, dict[str, Any]]], name: str) -> None:
    container = _container(_workloads(k8s_docs)[name])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_k8s_datanode_is_a_gpu_dask_worker(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    argv = _argv(_container(_workloads(k8s_docs)["datanode"]))
    assert argv[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert _flag(argv, "--resources") == "GPU=1"
    assert _flag(argv, "--nthreads") == "1"


def test_k8s_services_select_pods(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    wl = _workloads(k8s_docs)
    svcs = _kind(k8s_docs, "Service")
    for name, svc in svcs.items():
        selector = svc["spec"]["selector"]
        matched = [
            w
            for w, d in wl.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matched, f"Service {name} selects no pods"
    ports = {name: {p["port"] for p in s["spec"]["ports"]} for name, s in svcs.items()}
    assert ports["proxy"] == {19530}
    assert ports["dask-scheduler"] == {8786, 8787}
    for name, sts in _kind(k8s_docs, "StatefulSet").items():
        assert sts["spec"]["serviceName"] in svcs, name
    for name, d in wl.items():
        assert d["spec"]["selector"]["matchLabels"].items() <= (
            d["spec"]["template"]["metadata"]["labels"].items()
        ), name


def test_k8s_kafka_is_kraft(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    kafka = _workloads(k8s_docs)["kafka"]
    env = {e["name"]: e.get("value") for e in _container(kafka)["env"]}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert kafka["spec"]["template"]["spec"]["enableServiceLinks"] is False


# ----------------------------------------------------------------------------- README


def test_readme_documents_overrides() -> None:
    text = (DEPLOY / "README.md").read_text()
    for var in ["GPUVEC_CONFIG"] + [f"GPUVEC_{k.upper()}" for k in sorted(CLUSTER_KEYS)]:
        assert f"`{var}`" in text, var
    for cmd in (
        "docker compose -f deploy/compose/docker-compose.yml up",
        "kubectl apply -k deploy/k8s",
        "gpuvec cluster up",
    ):
        assert cmd in text, cmd


def test_compose_observability(services: dict[str, dict[str, Any]]) -> None:
    """Every gpuvec role serves /metrics on 9091; the scheduler preloads gpuvec's page."""
    for name, cmd in _gpuvec_services(services).items():
        assert _flag(cmd, "--metrics-port") == "9091", name
    sched = [str(c) for c in services["dask-scheduler"]["command"]]
    assert _flag(sched, "--preload") == "gpuvec.observability.dashboard"
    assert _flag(sched, "--gpuvec-config") == CONFIG_PATH
    worker = [str(c) for c in services["datanode"]["command"]]
    assert _flag(worker, "--preload") == "gpuvec.observability.datanode"
    assert _flag(worker, "--dashboard-address") == ":8788"  # the worker's /metrics


def test_k8s_observability(k8s_docs: list[tuple[str, dict[str, Any]]]) -> None:
    """The same in Kubernetes, with the metrics port declared on each role's container."""
    roles = workers = 0
    for name, w in _workloads(k8s_docs).items():
        container = _container(w)
        argv = _argv(container)
        if argv and argv[0] == "gpuvec":
            roles += 1
            assert _flag(argv, "--metrics-port") == "9091", name
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports.get("metrics") == 9091, name
        elif argv[:2] == ["dask", "scheduler"]:
            assert _flag(argv, "--preload") == "gpuvec.observability.dashboard", name
            assert _flag(argv, "--gpuvec-config") == CONFIG_PATH, name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert str(Path(CONFIG_PATH).parent) in mounts, name
        elif argv[:2] == ["dask", "worker"]:
            workers += 1
            assert _flag(argv, "--preload") == "gpuvec.observability.datanode", name
            assert _flag(argv, "--dashboard-address") == ":8788", name
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports.get("metrics") == 8788, name
    assert roles >= 4
    assert workers >= 1
