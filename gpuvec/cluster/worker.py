"""What the streaming and query node processes share: their storage handles, the Flight
server with their handlers, their session in meta (whose loss stops the node), the
periodic duties they run on daemon threads (a failing round is logged and retried), and
their report for the dashboard (``cluster/reports/<role>/<node id>`` under the session
lease, :mod:`gpuvec.observability.reports`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpuvec.cluster.rpc import Handler, RpcServer
from gpuvec.cluster.sessions import Session, new_node_id
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.observability.reports import REPORT_PERIOD_S, write_report

log = logging.getLogger("gpuvec.worker")


class WorkerNode:
    role = ""

    def _open_node(self, settings: ClusterSettings) -> None:
        """Storage handles and state every worker node has."""
        self.settings, self.config = settings, settings.engine
        self.node_id = new_node_id(self.role)
        self.meta = settings.open_meta()
        self.wal = settings.open_wal()
        self.store = settings.open_store()
        self.lock = threading.RLock()
        self.stop_event = threading.Event()

    def _serve(
        self,
        handlers: dict[str, Handler],
        duties: list[tuple[Callable[[], Any], float, str]],
        host: str,
        port: int,
        advertise: str | None,
    ) -> None:
        """Start the Flight server, register the session, start the duties
        ``(function, period in seconds, thread name)``, and the report duty."""
        self.rpc = RpcServer(handlers, host, port)
        self.address = self.rpc.address(advertise)
        self.session = Session(
            self.meta, self.role, self.node_id, {"address": self.address},
            on_lost=self.stop_event.set,
        )  # fmt: skip
        duties = [*duties, (self._report, REPORT_PERIOD_S, "gpuvec-report")]
        self._threads = [
            threading.Thread(target=self._loop, args=(fn, period), name=name, daemon=True)
            for fn, period, name in duties
        ]
        for t in self._threads:
            t.start()

    def _loop(self, fn: Callable[[], Any], period: float) -> None:
        while not self.stop_event.wait(period):
            try:
                fn()
            except Exception as e:
                log.warning("%s failed: %s: %s", fn.__name__, type(e).__name__, e)
                self.stop_event.wait(0.5)

    def _report(self) -> None:
        """This node's dashboard report, under the session lease (never raises)."""
        write_report(self.meta, self, self.session.keeper.id)

    def _stop_serving(self) -> None:
        """Stop the duties and the Flight server (the caller then closes its state)."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)
        self.rpc.stop()

    def _close_storage(self) -> None:
        self.session.close()
        self.wal.close()
        self.meta.close()
