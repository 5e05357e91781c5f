"""``gpuvec coordinator``: the cluster's coordinator process (DESIGN §1).

Any number run; the etcd election makes exactly one active, the others campaign and take
over when its lease lapses (``kill -9`` included: the lease expires in ``ttl`` seconds).
The election key's value is the active one's Flight address, which is how every other role
finds it (:mod:`gpuvec.cluster.coordclient`).

While active it serves the TSO (its window persisted in meta, so timestamps grow across
failover), executes other roles' catalog transactions under its leader guard, binds every
WAL channel to a live streaming node and every sealed segment of a loaded collection to
``replicas`` live query nodes (least rows first; reassigned when a session vanishes),
schedules index builds and compactions on the Dask data nodes, answers manual compaction
calls, and runs bulk-import jobs (:mod:`gpuvec.coord.imports`: submitted by a proxy's
``import`` call, resumed by whichever coordinator becomes active next). Every decision is a
leader-guarded meta transaction; a deposed coordinator's writes fail, and it exits.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from gpuvec.cluster.assign import plan_channels, plan_segments
from gpuvec.cluster.rpc import RpcServer, Tables
from gpuvec.cluster.sessions import CHANNELS, SEGMENTS, new_node_id, sessions
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.cluster.wire import dump_result, load_compare, load_op
from gpuvec.coord.catalog import Catalog
from gpuvec.coord.compaction import Compactor
from gpuvec.coord.imports import ImportJobs
from gpuvec.coord.indexing import IndexBuilder
from gpuvec.coord.maintenance import Maintenance
from gpuvec.coord.tso import TSO
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.errors import DeadlineExceededError, NotLeaderError
from gpuvec.observability.reports import Reporter
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Delete, DeletePrefix, Put
from gpuvec.storage.meta.election import Election

log = logging.getLogger("gpuvec.coordinator")


class CoordinatorNode:
    role = "coordinator"  # its node report's role (gpuvec.observability.reports)

    def __init__(
        self,
        settings: ClusterSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise: str | None = None,
        ttl: int = 3,
    ) -> None:
        self.settings, self.config = settings, settings.engine
        self.node_id = new_node_id("coordinator")
        self.meta = settings.open_meta()
        self.election = Election(self.meta, "coordinator", ttl=ttl)
        self.rpc = RpcServer(
            {
                "txn": self._txn,
                "tso": self._tso,
                "compact": self._compact,
                "compaction_state": self._compaction_state,
                "status": self._status,
                "import": self._import,
            },
            host,
            port,
        )
        self.address = self.rpc.address(advertise)
        self.tso: TSO | None = None
        self.catalog: Catalog | None = None
        self.compactor: Compactor | None = None
        self.indexer: IndexBuilder | None = None
        self.datanodes: DataNodeRuntime | None = None
        self.imports: ImportJobs | None = None
        self.stop_event = threading.Event()
        self.leading = threading.Event()

    # --- RPC handlers --------------------------------------------------------------------
    def _require_leader(self) -> None:
        if not self.leading.is_set():
            raise NotLeaderError(f"coordinator {self.node_id} is a standby")

    def _txn(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        self._require_leader()
        res = self.election.guarded_txn(
            [load_compare(c) for c in args["compare"]],
            [load_op(o) for o in args["success"]],
            [load_op(o) for o in args.get("failure", [])],
        )
        return dump_result(res), {}

    def _tso(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        self._require_leader()
        assert self.tso is not None
        return {"ts": self.tso.allocate(int(args.get("count", 1)))}, {}

    def _compact(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        self._require_leader()
        assert self.catalog is not None and self.compactor is not None
        meta = self.catalog.get(args["name"])
        job = self.compactor.compact(meta, manual=bool(args.get("manual", True)))
        return {"job": job}, {}

    def _compaction_state(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        self._require_leader()
        assert self.compactor is not None
        job = int(args["job"])
        merges = [[src, dst] for src, dst in self.compactor.merges(job)]
        return {"state": self.compactor.state(job), "merges": merges}, {}

    def _import(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        """Check and record a bulk-import job and start it on the data nodes; its id. The
        files must be readable here and on the data nodes (a shared path or ``s3://``)."""
        self._require_leader()
        assert self.catalog is not None and self.imports is not None
        meta = self.catalog.get(args["name"])
        job = self.imports.submit(meta, args["files"], args.get("partition") or None,
                                  **dict(args.get("options") or {}))  # fmt: skip
        return {"job": job}, {}

    def _status(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        link = self.datanodes.dashboard_link if self.datanodes else None
        return {"node_id": self.node_id, "leading": self.leading.is_set(), "dashboard": link}, {}

    # --- lifecycle -----------------------------------------------------------------------
    def run(self) -> None:
        """Campaign until leading (or stopped), then coordinate until stopped or deposed."""
        value = json.dumps(
            {"address": self.address, "node_id": self.node_id, "pid": os.getpid()}
        ).encode()
        while not self.stop_event.is_set():
            try:
                self.election.campaign(value, timeout=1.0)
                break
            except DeadlineExceededError:
                continue
        if self.stop_event.is_set():
            return
        log.info("coordinator %s is active at %s", self.node_id, self.address)
        guard = self.election.guarded_txn
        self.catalog = Catalog(self.meta, guard=guard)
        self.tso = TSO(self.meta, guard=guard)
        self.datanodes = DataNodeRuntime(
            self.settings.dask_scheduler,
            workers=self.config.datanode_workers,
            processes=self.config.datanode_processes,
            dashboard_address=self.config.dashboard_address,
        )
        spec = self.settings.store_spec()
        self.indexer = IndexBuilder(
            self.catalog, self.datanodes, spec, lambda *a: None, self.config.index_min_rows
        )
        self.compactor = Compactor(
            self.catalog,
            self.datanodes,
            spec,
            self.settings.open_store(),
            self.config,
            self._deleted_fraction,
            lambda *a: None,
            builds=self.indexer,
        )
        self.imports = ImportJobs(self.catalog, self.tso, self.datanodes, spec,
                                  self.settings.open_store(), self.config,
                                  lambda meta, segs, commit: commit())  # fmt: skip
        self.leading.set()
        self.imports.resume()  # jobs the previous active coordinator left unfinished
        reporter = Reporter(self.meta, self)  # its builds and compactions, for the dashboard
        try:
            self._coordinate()
        except NotLeaderError:
            log.error("coordinator %s lost its leadership; exiting", self.node_id)
            raise
        finally:
            reporter.close()
            self.leading.clear()
            if self.imports is not None:
                self.imports.close()  # a deposed coordinator's jobs resume on the next one

    def _coordinate(self) -> None:
        """Reconcile assignments every 0.25 s; once a second, one pass of the duty loop
        shared with the embedded runtime (:class:`gpuvec.coord.maintenance.Maintenance`)."""
        assert self.catalog is not None
        duties = Maintenance(self.indexer, self.compactor, self.config.compaction_interval_s,
                             fatal=(NotLeaderError,))  # fmt: skip
        last_pass = 0.0
        while not self.stop_event.wait(0.25):
            if not self.election.is_leader:
                raise NotLeaderError(f"coordinator {self.node_id} was deposed")
            self.reconcile()
            if time.monotonic() - last_pass >= 1.0:
                last_pass = time.monotonic()
                duties.run_once(self.catalog.list(), lambda meta: bool(meta.loaded))

    def _deleted_fraction(self, collection_id: int, segment_id: int) -> float:
        """A segment's deleted fraction as its query nodes report it (0 when none does:
        an unloaded collection is not compacted by the deletion rule)."""
        kvs, _ = self.meta.range(K.served_of(collection_id, segment_id))
        values = []
        for kv in kvs:
            try:
                values.append(float(kv.value or b"0"))
            except ValueError:
                continue
        return max(values, default=0.0)

    def reconcile(self) -> None:
        """Bind channels and segments to live nodes; one guarded transaction per change."""
        assert self.catalog is not None
        metas = self.catalog.list()
        streaming = sessions(self.meta, "streamingnode")
        kvs, _ = self.meta.range(CHANNELS)
        owners = {kv.key[len(CHANNELS) :]: kv.value.decode() for kv in kvs}
        wanted = [ch for m in metas for ch in m.channels]
        puts, drops = plan_channels(wanted, owners, sorted(streaming))
        ops = [Put(CHANNELS + ch, node.encode()) for ch, node in puts.items()]
        ops += [Delete(CHANNELS + ch) for ch in drops]
        if ops:
            self.election.guarded_txn([], ops)
            for ch, node in puts.items():
                log.info("channel %s -> %s", ch, node)
        self._reconcile_segments(metas)

    def _reconcile_segments(self, metas: list[Any]) -> None:
        assert self.catalog is not None
        querynodes = sorted(sessions(self.meta, "querynode"))
        kvs, _ = self.meta.range(SEGMENTS)
        current: dict[int, dict[int, list[str]]] = {}
        for kv in kvs:
            cid, sid = (int(x) for x in kv.key[len(SEGMENTS) :].split("/"))
            current.setdefault(cid, {})[sid] = json.loads(kv.value)
        loaded = {m.id: m for m in metas if m.loaded}
        for cid in set(current) - set(loaded):  # released or dropped
            self.election.guarded_txn([], [DeletePrefix(f"{SEGMENTS}{cid}/")])
        load: dict[str, int] = {n: 0 for n in querynodes}
        rows: dict[int, dict[int, int]] = {}
        for cid in loaded:
            rows[cid] = {s.id: s.rows for s in self.catalog.segments(cid)}
            for sid, nodes in current.get(cid, {}).items():
                for n in nodes:
                    if n in load:
                        load[n] += rows[cid].get(sid, 0)
        for cid in loaded:
            puts, drops = plan_segments(
                rows[cid], current.get(cid, {}), load, self.settings.replicas
            )
            ops = [Put(f"{SEGMENTS}{cid}/{sid}", json.dumps(n).encode()) for sid, n in puts.items()]
            ops += [Delete(f"{SEGMENTS}{cid}/{sid}") for sid in drops]
            if ops:  # one transaction per collection: a compaction's swap lands at once
                self.election.guarded_txn([], ops)

    def close(self) -> None:
        self.stop_event.set()
        self.rpc.stop()
        if self.imports is not None:
            self.imports.close()  # running jobs stop where they are; the next active resumes
        if self.datanodes is not None:
            self.datanodes.close()
        if self.imports is not None:
            self.imports.join()
        self.election.resign()
        self.meta.close()
