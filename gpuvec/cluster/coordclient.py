"""How other roles reach the active coordinator: its address is the value of the election
key; calls that meet a standby, a deposed leader or a dead one re-read the key and retry
until ``failover_s`` passes, so a coordinator failover looks like a pause to callers.

:class:`RemoteTSO` and :meth:`CoordinatorClient.guard` give a node the coordinator's TSO
and leader-guarded transactions through the same interfaces the embedded runtime uses
(:class:`~gpuvec.coord.tso.TSO`, the ``guard`` of :class:`~gpuvec.coord.catalog.Catalog`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from gpuvec.cluster.rpc import RpcClient, Tables
from gpuvec.cluster.wire import dump_compare, dump_op, load_result
from gpuvec.errors import NotLeaderError, UnavailableError
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, MetaStore, Op, TxnResult

ELECTION = K.COORDINATOR_ELECTION


class CoordinatorClient:
    def __init__(self, meta: MetaStore, failover_s: float = 20.0, timeout: float = 30.0) -> None:
        self.meta, self.failover_s, self.timeout = meta, failover_s, timeout
        self._lock = threading.Lock()
        self._client: RpcClient | None = None

    def _leader(self) -> RpcClient:
        with self._lock:
            if self._client is not None:
                return self._client
        kv = self.meta.get(ELECTION)
        if kv is None:
            raise UnavailableError("no active coordinator (election key is vacant)")
        address = json.loads(kv.value)["address"]
        client = RpcClient(address, self.timeout)
        with self._lock:
            self._client = client
        return client

    def _forget(self, client: RpcClient | None) -> None:
        with self._lock:
            if client is not None and self._client is client:
                self._client = None
        if client is not None:
            client.close()

    def call(
        self, method: str, args: dict[str, Any] | None = None, tables: Tables | None = None
    ) -> tuple[dict[str, Any], Tables]:
        deadline = time.monotonic() + self.failover_s
        delay = 0.05
        while True:
            client = None
            try:
                client = self._leader()
                return client.call(method, args, tables)
            except (NotLeaderError, UnavailableError):
                self._forget(client)
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # --- the coordinator's services ------------------------------------------------------
    def guard(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """A transaction committed by the active coordinator under its leader guard."""
        args = {
            "compare": [dump_compare(c) for c in compare],
            "success": [dump_op(o) for o in success],
            "failure": [dump_op(o) for o in failure],
        }
        out, _ = self.call("txn", args)
        return load_result(out)

    def allocate(self, count: int = 1) -> int:
        out, _ = self.call("tso", {"count": count})
        return int(out["ts"])


class RemoteTSO:
    """The coordinator's TSO with :class:`~gpuvec.coord.tso.TSO`'s interface."""

    def __init__(self, coordinator: CoordinatorClient) -> None:
        self.coordinator = coordinator
        self._last = 0

    def allocate(self, count: int = 1) -> int:
        ts = self.coordinator.allocate(count)
        self._last = max(self._last, ts + count - 1)
        return ts

    def last(self) -> int:
        return self._last
