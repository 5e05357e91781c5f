"""The Dask cluster data-node tasks run on.

``DataNodeRuntime`` connects to ``scheduler_address`` when one is configured (a real
cluster of data-node workers), else starts an in-process ``distributed.LocalCluster`` on
first use (the embedded default; its dashboard address is :attr:`dashboard_link`). Tasks
are submitted with deterministic, readable keys (``gpuvec-build-index-<segment>-<index>``),
``retries`` (a worker that dies mid-task is replaced and the task re-run) and
``resources={"GPU": 1}`` when workers advertise GPUs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


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

                    resources = {"GPU": 1} if ops.is_gpu() else None
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=self.threads,
                        processes=self.processes,
                        # any free port when none is named (None still tries 8787)
                        dashboard_address=self.dashboard_address or ":0",
                        resources=resources,
                    )
                    self._client = Client(self._cluster)
                log.info("gpuvec data nodes: dashboard at %s", self._client.dashboard_link)
            return self._client

    @property
    def dashboard_link(self) -> str | None:
        return None if self._client is None else str(self._client.dashboard_link)

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
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None
