"""``LocalCluster``: starts, watches and stops a disaggregated gpuvec cluster on one host.

This module owns the local cluster's life cycle and nothing inside the roles: it writes the shared
config file ``<dir>/gpuvec.toml``, makes sure etcd and Kafka are up (through ``deploy/local/*.sh``,
remembering which ones it started), launches the role processes in their own sessions with logs
under ``<dir>/logs/``, records them in ``<dir>/cluster.json`` so another process can
:meth:`LocalCluster.attach` and stop them, and decides when the cluster is ready (Dask scheduler
port, node session keys in etcd, a coordinator leader, a proxy that answers ``list_collections``).
Processes are signalled by process group, so a Dask worker's nanny and its child go together.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gpuvec.cluster.settings import toml_table
from gpuvec.errors import DeadlineExceededError, GpuvecError
from gpuvec.ops import is_gpu
from gpuvec.storage.meta import keys as K

DEPLOY_LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "local"
STATE_FILE = "cluster.json"
CONFIG_FILE = "gpuvec.toml"
ROLES = ("scheduler", "datanode", "coordinator", "streamingnode", "querynode", "proxy")
SESSION_ROLES = ("streamingnode", "querynode")  # roles whose session keys up() waits for
SESSIONS_PREFIX = K.SESSIONS
LEADER_PREFIX = K.COORDINATOR_ELECTION
STOP_GRACE_S = 15.0
PAGE_PRELOAD = "gpuvec.observability.dashboard"  # the scheduler's --preload: the gpuvec page
DATANODE_PRELOAD = "gpuvec.observability.datanode"  # the data nodes': gpuvec's metrics


class ClusterError(GpuvecError):
    """The local cluster could not be started, found or controlled."""


class ClusterTimeoutError(ClusterError, DeadlineExceededError):
    """Something the launcher waits for did not happen in time."""


def role_name(role: str) -> str:
    """Canonical role name (``query-node``/``query_node`` → ``querynode``)."""
    name = role.replace("-", "").replace("_", "").lower()
    if name not in ROLES:
        raise ClusterError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether 127.0.0.1:``port`` accepts a TCP connection."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout):
        return True
    return False


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from the state on (Linux), or None when gone."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/stat").read_text()
        return raw[raw.rfind(")") + 2 :].split()
    return None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs (zombies do not count) and, when ``start`` is given, is still
    the process that was recorded, so a recycled pid is never taken for ours."""
    with contextlib.suppress(OSError):
        os.waitpid(pid, os.WNOHANG)  # reaps it when it is our own exited child
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in "ZX" and (start is None or stat[19] == start)


def group_alive(pgid: int) -> bool:
    """Whether any live process is in process group ``pgid`` (a role and its children)."""
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and stat[2] == str(pgid) and stat[0] not in "ZX":
            return True
    return False


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def log_tail(path: str | Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    return f"(cannot read {path})"


class LocalCluster:
    """A gpuvec cluster of local processes; see the module docstring.

    ``commands`` maps a role to an argv that replaces the real one (tests); its items may
    use ``{python}``, ``{config}``, ``{dir}``, ``{port}``, ``{scheduler}`` and ``{index}``.
    ``wait_ready`` (default: only when ``commands`` is not given) turns the readiness
    checks of :meth:`up` on or off; the check that every started process stays alive is
    always made. ``progress`` receives one line per step.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        query_nodes: int = 1,
        streaming_nodes: int = 1,
        data_nodes: int = 1,
        coordinators: int = 2,
        port: int = 19530,
        etcd: str | None = None,
        kafka: str | None = None,
        engine: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        commands: Mapping[str, Sequence[str]] | None = None,
        wait_ready: bool | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        counts = {"datanode": data_nodes, "coordinator": coordinators}
        counts |= {"streamingnode": streaming_nodes, "querynode": query_nodes}
        for role, n in counts.items():
            if not isinstance(n, int) or n < (0 if role == "datanode" else 1):
                raise ClusterError(f"{role} count must be >= 1 (data nodes >= 0), got {n!r}")
        self.directory = Path(directory).resolve()
        self.counts = {"scheduler": 1, **counts, "proxy": 1}
        self.port, self.etcd, self.kafka, self.python = port, etcd, kafka, python
        self.engine, self.env = dict(engine or {}), dict(env or {})
        self.commands = {role_name(r): list(argv) for r, argv in (commands or {}).items()}
        # what attach() passes back to this constructor
        self.options = dict(query_nodes=query_nodes, streaming_nodes=streaming_nodes)
        self.options |= dict(data_nodes=data_nodes, coordinators=coordinators, port=port)
        self.options |= dict(etcd=etcd, kafka=kafka, engine=self.engine, env=self.env)
        self.options |= dict(python=python, commands=self.commands)
        self.wait_ready = (not self.commands) if wait_ready is None else wait_ready
        self.progress = progress or (lambda _msg: None)
        self.state: dict[str, Any] = {}
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        self.config_path = self.directory / CONFIG_FILE
        self.state_path = self.directory / STATE_FILE
        self.log_dir = self.directory / "logs"

    # --- addresses and state -------------------------------------------------------------
    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.state.get('port', self.port)}"

    @property
    def dashboard(self) -> str:
        """The gpuvec page of the Dask scheduler's dashboard (Dask's pages in its nav bar)."""
        return f"http://127.0.0.1:{self.state.get('dashboard_port', '?')}/gpuvec"

    @property
    def processes(self) -> dict[str, list[dict[str, Any]]]:
        return self.state.get("processes", {})

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_path)

    @classmethod
    def attach(cls, directory: str | Path) -> LocalCluster:
        """The cluster recorded in ``<directory>/cluster.json`` (started by any process)."""
        path = Path(directory).resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no local cluster in {path.parent} (no {STATE_FILE})") from None
        except (OSError, json.JSONDecodeError) as e:
            raise ClusterError(f"cannot read {path}: {e}") from e
        self = cls(path.parent, **state.get("options", {}))
        self.state = state
        return self

    def _alive(self, entry: Mapping[str, Any]) -> bool:
        if (proc := self._popen.get(entry["pid"])) is not None:  # our child: poll has its status
            return proc.poll() is None
        return pid_alive(entry["pid"], entry.get("start"))

    def _running(self, entry: Mapping[str, Any]) -> bool:
        """Whether the process, or a child left in its process group, still runs. (While
        the group has members its id cannot be reused, so the group is still ours.)"""
        if self._alive(entry):
            return True
        stat = _proc_stat(entry["pid"])
        return (stat is None or stat[0] in "ZX") and group_alive(entry["pid"])

    # --- services ------------------------------------------------------------------------
    def _script_env(self) -> dict[str, str]:
        """Env of deploy/local scripts; the GPUVEC_* part (ports, run dir) is recorded at
        ``up`` so that ``down`` from another shell stops the same services."""
        env = {**os.environ, **self.env, "PYTHON": self.python}
        return env | self.state.setdefault(
            "service_env", {k: v for k, v in env.items() if k.startswith("GPUVEC_")}
        )

    def _ensure_service(self, name: str, default_port: int) -> str:
        """The endpoint of ``deploy/local/<name>.sh``'s service, started when it is down."""
        env = self._script_env()
        endpoint = f"127.0.0.1:{env.get(f'GPUVEC_{name.upper()}_PORT', default_port)}"
        script = DEPLOY_LOCAL / f"{name}.sh"
        if not script.exists():
            raise ClusterError(f"{script} not found: pass the {name} endpoint explicitly")
        run = lambda cmd: subprocess.run(  # noqa: E731
            ["bash", str(script), cmd], env=env, capture_output=True, text=True
        )
        if run("status").returncode == 0:
            self.progress(f"{name}: reusing the one running on {endpoint}")
            return endpoint
        self.progress(f"{name}: starting on {endpoint} ({script.name} start)")
        started = run("start")
        if started.returncode != 0:
            raise ClusterError(f"{script.name} start failed:\n{started.stderr[-3000:]}")
        self.state.setdefault("started_services", []).append(name)
        self._save()
        return endpoint

    def _stop_services(self) -> None:
        started = self.state.get("started_services", [])
        for name in reversed(list(started)):
            self.progress(f"{name}: stopping (this cluster started it)")
            script = str(DEPLOY_LOCAL / f"{name}.sh")
            subprocess.run(["bash", script, "stop"], env=self._script_env(), capture_output=True)
            started.remove(name)
            self._save()

    def _write_config(self) -> None:
        cluster = {k: self.state[k] for k in ("etcd", "etcd_root", "kafka", "topic_prefix")}
        # one folder per cluster: a fresh etcd root starts its ids at 1 again
        cluster["objects"] = str(self.directory / "objects" / self.state["etcd_root"])
        cluster["dask_scheduler"] = f"tcp://127.0.0.1:{self.state['scheduler_port']}"
        cluster["replicas"] = 1
        lines = ["# written by gpuvec.cluster.launcher; read by every role", ""]
        lines += [*toml_table("cluster", cluster), "", *toml_table("engine", self.engine)]
        self.config_path.write_text("\n".join(lines) + "\n")

    # --- processes -----------------------------------------------------------------------
    def _argv(self, role: str, index: int, port: int | None, metrics: int = 0) -> list[str]:
        py, config, port_s = self.python, str(self.config_path), str(port or 0)
        scheduler = f"tcp://127.0.0.1:{self.state['scheduler_port']}"
        if role in self.commands:
            fields = dict(python=py, config=config, dir=str(self.directory), port=port_s,
                          scheduler=scheduler, index=str(index))  # fmt: skip
            argv = self.commands[role]
            for key, value in fields.items():
                argv = [a.replace("{" + key + "}", value) for a in argv]
            return argv
        if role == "scheduler":
            dash = f"127.0.0.1:{self.state['dashboard_port']}"
            argv = [py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            argv += ["--port", port_s, "--dashboard-address", dash, "--preload", PAGE_PRELOAD]
            return [*argv, "--gpuvec-config", config]  # the page reads this cluster's etcd
        if role == "datanode":
            argv = [py, "-m", "distributed.cli.dask_worker", scheduler, "--name", f"data-{index}"]
            argv += ["--nthreads", "1", "--nworkers", "1", "--memory-limit", "0"]
            argv += ["--preload", DATANODE_PRELOAD]  # gpuvec's metrics on its /metrics
            return argv + (["--resources", "GPU=1"] if self.state.get("gpu") else [])
        argv = [py, "-m", "gpuvec", role, "--config", config, "--metrics-port", str(metrics)]
        return [*argv, "--host", "127.0.0.1", "--port", port_s]

    def _launch(self, role: str) -> int:
        procs = self.state["processes"].setdefault(role, [])
        index = len(procs)
        port = {"scheduler": self.state["scheduler_port"], "proxy": self.state["port"]}.get(role)
        if role == "proxy" and index > 0:
            port = free_port()
        metrics = free_port() if role not in ("scheduler", "datanode", *self.commands) else 0
        argv = self._argv(role, index, port, metrics)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{role}-{index}.log"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as out:
            out.write(f"# {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            out.flush()
            std = dict(stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            proc = subprocess.Popen(argv, env=env, start_new_session=True, **std)
        self._popen[proc.pid] = proc
        stat = _proc_stat(proc.pid)  # field 22, the start time, tells a reused pid apart
        entry = {"pid": proc.pid, "start": stat and stat[19], "log": str(log), "argv": argv}
        procs.append(entry | {k: v for k, v in (("port", port), ("metrics_port", metrics)) if v})
        self._save()
        return index

    def _stop_group(self, entries: Sequence[dict[str, Any]], grace: float) -> None:
        """SIGTERM the process groups of ``entries``; SIGKILL what is left after ``grace``."""
        live = list(entries)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for e in live:
                _signal_group(e["pid"], sig)
            end = time.monotonic() + wait
            while live and time.monotonic() < end:
                time.sleep(0.1)
                live = [e for e in live if self._running(e)]

    # --- public control ------------------------------------------------------------------
    def up(self, timeout: float = 180.0) -> None:
        """Start the cluster and wait until it is ready; on failure stop what was started
        and raise :class:`ClusterError` with the tail of the failing process's log."""
        old = LocalCluster.attach(self.directory) if self.state_path.exists() else self
        if any(old._running(p) for procs in old.processes.values() for p in procs):
            raise ClusterError(f"a cluster runs in {self.directory}; stop it first (down)")
        if self.port and "proxy" not in self.commands and port_open(self.port):
            raise ClusterError(f"port {self.port} is in use; choose another (0 = any free)")
        deadline = time.monotonic() + timeout
        hexid = secrets.token_hex(6)
        self.state = {
            "options": self.options,
            "counts": self.counts,
            "etcd_root": f"gpuvec-{hexid}",
            "topic_prefix": f"gpuvec-{hexid}-",
            "port": self.port or free_port(),
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
            "started_services": [],
            "processes": {r: [] for r in ROLES},
        }
        (self.directory / "objects" / self.state["etcd_root"]).mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self.state["etcd"] = self.etcd or self._ensure_service("etcd", 23790)
            self.state["kafka"] = self.kafka or self._ensure_service("kafka", 19092)
            if self.counts["datanode"] and "datanode" not in self.commands:
                with contextlib.suppress(GpuvecError):  # data nodes get GPU=1 where usable
                    self.state["gpu"] = is_gpu()
            self._write_config()
            self._save()
            self.progress(f"config: {self.config_path}")
            for role in ROLES:
                for _ in range(self.counts[role]):
                    self._launch(role)
                self.progress(f"{role}: started {self.counts[role]}")
                if role == "scheduler" and self.wait_ready:
                    up = functools.partial(port_open, self.state["scheduler_port"])
                    self._wait("the Dask scheduler", up, deadline, role)
            self._wait_ready(deadline)
        except BaseException:
            self.progress("start failed; stopping what was started")
            self.down()
            raise
        self.progress(f"ready: {self.uri}")

    def _failed_process(self) -> str | None:
        for role, procs in self.processes.items():
            for i, p in enumerate(procs):
                if not p.get("killed") and not self._alive(p):
                    code = getattr(self._popen.get(p["pid"]), "returncode", "?")
                    return f"{role}-{i} exited ({code}); {p['log']}:\n{log_tail(p['log'])}"
        return None

    def _wait(self, what: str, check: Callable[[], bool], deadline: float, role: str) -> None:
        """Poll ``check``; fail when a process exits, or at ``deadline`` with ``role``'s logs."""
        last = ""
        while True:
            failed = self._failed_process()
            if failed:
                raise ClusterError(f"while waiting for {what}: {failed}")
            try:
                if check():
                    return
            except Exception as e:  # not up yet: connection refused, no leader, ...
                last = f" (last error: {type(e).__name__}: {e})"
            if time.monotonic() >= deadline:
                logs = [p["log"] for p in self.processes[role]]
                tails = "".join(f"\n{log}:\n{log_tail(log)}" for log in logs)
                raise ClusterTimeoutError(f"timed out waiting for {what}{last}{tails}")
            time.sleep(0.25)

    def _wait_ready(self, deadline: float) -> None:
        if not self.wait_ready:  # still fail when a command exits at once
            time.sleep(0.3)
            return self._wait("the processes to start", lambda: True, deadline, "scheduler")
        for role in SESSION_ROLES:
            self.wait_sessions(role, self.counts[role], deadline - time.monotonic())
        with contextlib.closing(self._meta()) as meta:
            leader = lambda: bool(meta.range(LEADER_PREFIX)[0])  # noqa: E731
            self._wait("a coordinator leader", leader, deadline, "coordinator")
        port = self.state["port"]
        self._wait("the proxy port", lambda: port_open(port), deadline, "proxy")
        self._wait("the proxy to answer list_collections", self._proxy_answers, deadline, "proxy")

    def _proxy_answers(self) -> bool:
        from pymilvus import MilvusClient

        with contextlib.closing(MilvusClient(uri=self.uri, timeout=5)) as client:
            client.list_collections()
            return True

    def _meta(self, timeout: float = 5.0) -> Any:
        """The cluster's etcd, rooted where the roles root it (ClusterSettings.meta_root)."""
        from gpuvec.cluster.settings import ClusterSettings
        from gpuvec.storage.meta.etcd import EtcdMetaStore

        root = ClusterSettings(etcd_root=self.state["etcd_root"]).meta_root
        return EtcdMetaStore(self.state["etcd"], root=root, timeout=timeout)

    def down(self) -> None:
        """Stop every process this cluster started (reverse order: SIGTERM, up to 15 s,
        then SIGKILL) and the services it started. Safe to call again."""
        if not self.state:
            return
        for role in reversed(ROLES):
            procs = self.processes.get(role, [])
            running = [p for p in reversed(procs) if self._running(p)]
            if running:
                self.progress(f"{role}: stopping {len(running)}")
                self._stop_group(running, STOP_GRACE_S)
            for p in procs:
                p["killed"] = True
        self._stop_services()
        self.state["down"] = True
        self._save()

    def kill(self, role: str, index: int = 0, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to one process's group and mark it dead; return its pid."""
        procs = self.processes.get(role := role_name(role), [])
        if not 0 <= index < len(procs):
            raise ClusterError(f"no {role} #{index}; this cluster has {len(procs)}")
        entry = procs[index]
        if self._running(entry):
            _signal_group(entry["pid"], sig)
        entry["killed"] = True
        self._save()
        return int(entry["pid"])

    def start(self, role: str) -> int:
        """Start one more process of ``role`` (not the scheduler); return its index."""
        role = role_name(role)
        if role == "scheduler":
            raise ClusterError("a cluster has exactly one Dask scheduler")
        if not self.state or self.state.get("down"):
            raise ClusterError("the cluster is not up")
        return self._launch(role)

    def wait_sessions(self, role: str, count: int, timeout: float) -> None:
        """Wait for ``count`` session keys under ``cluster/sessions/<role>/``: raise
        :class:`ClusterTimeoutError` at ``timeout``, :class:`ClusterError` when a process
        that was not :meth:`kill` ed exits."""
        role = role_name(role)
        with contextlib.closing(self._meta()) as meta:
            prefix = K.sessions_of(role)
            check = lambda: len(meta.range(prefix)[0]) >= count  # noqa: E731
            what = f"{count} session key(s) under {self.state['etcd_root']!r} + {prefix!r}"
            self._wait(what, check, time.monotonic() + timeout, role)

    def status(self) -> dict[str, Any]:
        """Processes per role ({index, pid, alive, log[, port, metrics_port]}), session keys
        in etcd and the coordinator election key(s); ``meta_error`` if etcd cannot be read."""
        procs: dict[str, list[dict[str, Any]]] = {}
        for role, entries in self.processes.items():
            procs[role] = [{"index": i, "alive": self._alive(p)} for i, p in enumerate(entries)]
            for info, p in zip(procs[role], entries, strict=True):
                info |= {k: p[k] for k in ("pid", "log", "port", "metrics_port") if k in p}
        out: dict[str, Any] = {"directory": str(self.directory), "uri": self.uri}
        out |= {"dashboard": self.dashboard, "processes": procs, "sessions": None}
        out |= {k: self.state.get(k) for k in ("etcd", "etcd_root", "kafka", "leader")}
        if not self.state.get("etcd"):
            return out
        try:
            with contextlib.closing(self._meta(timeout=2.0)) as meta:
                for name, prefix in (("sessions", SESSIONS_PREFIX), ("leader", LEADER_PREFIX)):
                    kvs = meta.range(prefix)[0]
                    out[name] = {kv.key: kv.value.decode(errors="replace") for kv in kvs}
        except GpuvecError as e:
            out["meta_error"] = str(e)
        return out
