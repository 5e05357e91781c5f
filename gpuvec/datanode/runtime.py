"""The Dask cluster data-node tasks run on.

``DataNodeRuntime`` connects to ``scheduler_address`` when one is configured (a real
cluster of data-node workers), else starts an in-process Dask scheduler on first use (the
embedded default; its dashboard address is :attr:`dashboard_link`, and its gpuvec page,
registered before the scheduler starts, :attr:`page_link`) with its workers:

* threads in this process (the default): builds run in faiss/NumPy code that releases the
  GIL, and nothing is started that could re-run the user's script;
* with ``processes=True``, ``dask worker`` *programs* (``python -m distributed.cli.dask_worker``,
  each a nanny that restarts its worker), never ``multiprocessing`` children of this
  process: a spawned child re-imports the user's ``__main__``, which re-runs an unguarded
  script (DESIGN §6). The programs die with this process
  (``PR_SET_PDEATHSIG`` when started from the main thread on Linux; otherwise they quit
  once the scheduler's connection is gone), so a ``kill -9`` of the embedding process
  leaves no worker behind.

Tasks are submitted with deterministic, readable keys
(``gpuvec-build-index-<segment>-<index>``), ``retries`` (a worker that dies mid-task is
replaced and the task re-run) and ``resources={"GPU": 1}`` when workers advertise GPUs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the kernel kills this child when the thread that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class DataNodeRuntime:
    def __init__(
        self,
        scheduler_address: str = "",
        *,
        workers: int = 1,
        threads_per_worker: int = 2,
        processes: bool = True,
        dashboard_address: str | None = ":0",
        retries: int = 2,
    ) -> None:
        self.scheduler_address = scheduler_address
        self.workers, self.threads, self.processes = workers, threads_per_worker, processes
        self.dashboard_address, self.retries = dashboard_address, retries
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._client: Any = None
        self._programs: list[subprocess.Popen] = []

    @property
    def dashboard_pinned(self) -> bool:
        """Whether a fixed dashboard port was asked for (not "" / ":0" / "host:0") on the
        in-process scheduler: the engine then starts it at open, so the page is up at once."""
        address = (self.dashboard_address or "").strip()
        port = address.rsplit(":", 1)[-1]
        return not self.scheduler_address and bool(address) and port not in ("", "0")

    @property
    def in_process(self) -> bool:
        """Whether tasks run on threads of this process (the in-process cluster without
        worker programs): what they leave in memory, this process can use."""
        return not self.scheduler_address and not self.processes

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (starting the local cluster on first use)."""
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                if self.scheduler_address:
                    self._client = Client(self.scheduler_address, timeout="10s")
                else:
                    from gpuvec import ops
                    from gpuvec.observability.dashboard import register

                    register()  # the gpuvec page, on the dashboard the scheduler starts
                    resources = {"GPU": 1} if ops.is_gpu() else None
                    self._cluster = LocalCluster(
                        n_workers=0 if self.processes else self.workers,
                        threads_per_worker=self.threads,
                        processes=False,  # the scheduler (and thread workers) in this process
                        # any free port when none is named (None still tries 8787)
                        dashboard_address=self.dashboard_address or ":0",
                        resources=resources,
                        scheduler_kwargs={"host": "127.0.0.1"} if self.processes else None,
                        protocol="tcp://" if self.processes else None,
                    )
                    self._client = Client(self._cluster)
                    if self.processes:
                        self._start_programs(self._cluster.scheduler_address, resources)
                link = self.page_link or self.dashboard_link
                log.info("gpuvec data nodes: dashboard at %s", link)
            return self._client

    def _start_programs(self, address: str, resources: dict[str, int] | None) -> None:
        """Start ``workers`` ``dask worker`` programs against ``address`` and wait for them."""
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", address,
               "--nthreads", str(self.threads), "--death-timeout", "30",
               "--host", "127.0.0.1", "--no-dashboard",
               "--preload", "gpuvec.observability.datanode"]  # fmt: skip
        if resources:
            cmd += ["--resources", ",".join(f"{k}={v}" for k, v in resources.items())]
        on_main_linux = (
            sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        )
        for i in range(self.workers):
            self._programs.append(
                subprocess.Popen(
                    [*cmd, "--name", f"gpuvec-datanode-{i}"],
                    stdin=subprocess.DEVNULL,
                    # the death signal follows the starting *thread*: only the main one
                    # lives as long as the process (workers also quit once the scheduler
                    # is gone, after --death-timeout)
                    preexec_fn=_die_with_parent if on_main_linux else None,
                )
            )
        self._client.wait_for_workers(self.workers, timeout=120)

    @property
    def dashboard_link(self) -> str | None:
        """Dask's dashboard link; on the host named in ``dashboard_address`` when it names
        one (Dask's link names this machine's address, where a loopback-bound dashboard
        does not answer)."""
        if self._client is None:
            return None
        link = str(self._client.dashboard_link)
        address = (self.dashboard_address or "").strip()
        host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else ""
        if self.scheduler_address or host in ("", "0.0.0.0", "::"):
            return link
        url = urlsplit(link)
        netloc = f"[{host}]" if ":" in host else host
        return url._replace(netloc=f"{netloc}:{url.port}" if url.port else netloc).geturl()

    @property
    def page_link(self) -> str | None:
        """The gpuvec page on the in-process scheduler's dashboard (``…/gpuvec``); None
        before the client starts, and with an external scheduler (whose page exists only
        if it was started with the preload, see :mod:`gpuvec.observability.dashboard`)."""
        from gpuvec.observability.dashboard import page_link

        return None if self.scheduler_address else page_link(self.dashboard_link)

    def events(self, topic: str) -> list[Any]:
        """The scheduler's events of ``topic`` (``(time, message)`` pairs); empty before
        the data nodes started (never starts them)."""
        client = self._client
        if client is None:
            return []
        try:
            return list(client.get_events(topic))
        except Exception:  # closing, or the scheduler is unreachable: no progress known
            return []

    def gpu_workers(self) -> bool:
        info = self.client.scheduler_info()
        return any((w.get("resources") or {}).get("GPU") for w in info["workers"].values())

    def submit(self, fn: Callable[..., Any], *args: Any, key: str, gpu: bool = False) -> Any:
        """Run ``fn(*args)`` as the task ``key``; returns its future."""
        resources = {"GPU": 1} if gpu and self.gpu_workers() else None
        return self.client.submit(
            fn, *args, key=key, retries=self.retries, resources=resources, pure=False
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            for proc in self._programs:
                proc.terminate()
            for proc in self._programs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self._programs.clear()
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None
