"""``gpuvec proxy``: the cluster's stateless access layer (DESIGN §1).

:class:`ClusterEngine` implements :class:`gpuvec.runtime.base.Runtime`, as the embedded
:class:`~gpuvec.runtime.embedded.Engine` does, so the same :class:`gpuvec.MilvusClient` and
Milvus gRPC servicer run on top of it; only the work behind each method differs: DDL is a
catalog transaction committed by the active coordinator, timestamps come from its TSO,
writes go to the streaming node owning each shard's channel, and reads are scattered over
streaming and query nodes (:mod:`gpuvec.cluster.scatter`) and reduced here. Any number of
proxies can run; they keep nothing but connections.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.cluster.coordclient import CoordinatorClient, RemoteTSO
from gpuvec.cluster.metacache import MetaCache
from gpuvec.cluster.scatter import RowsSegment, Scatter
from gpuvec.cluster.serving import stats_parts
from gpuvec.cluster.sessions import new_node_id
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.cluster.wire import array_table
from gpuvec.coord.catalog import Catalog
from gpuvec.coord.imports import list_jobs, read_job
from gpuvec.coord.planning import index_progress
from gpuvec.errors import (
    CollectionNotLoadedError,
    IndexBuildError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from gpuvec.observability import engines
from gpuvec.observability.metrics import observe_write
from gpuvec.observability.reports import BuildFailures, Reporter
from gpuvec.proxy.filters import CompiledFilter
from gpuvec.proxy.reduce import reduce_hits
from gpuvec.proxy.router import split_write
from gpuvec.query.bm25 import bm25_params, query_dims, weigh
from gpuvec.records import (
    CONSISTENCY,
    DEFAULT_PARTITION,
    NO_BUILD,
    CollectionMeta,
    CollectionView,
    Hits,
)
from gpuvec.sparse import SparseRows
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Delete, DeletePrefix, Op, Put, TxnResult

COLLECTIONS = K.COLLECTIONS
READ_TS_REUSE_S = 0.05  # a non-Strong read may reuse a read timestamp this young

_HIGHER_BETTER = ("IP", "COSINE")


def _hits(table: pa.Table, nq: int, k: int, metric: str) -> Hits:
    """Rebuild a [nq, k] hit matrix from a node's flattened reply (rows = table rows)."""
    dist = np.full((nq, k), -np.inf if metric in _HIGHER_BETTER else np.inf, np.float32)
    rows = -np.ones((nq, k), np.int64)
    q = table.column("_q").to_numpy()
    if len(q):
        rank = np.arange(len(q)) - np.searchsorted(q, q, side="left")
        keep = rank < k
        dist[q[keep], rank[keep]] = table.column("_d").to_numpy()[keep]
        rows[q[keep], rank[keep]] = np.flatnonzero(keep)
    return Hits(dist, rows)


class ClusterEngine:
    role = "proxy"  # its dashboard report: cluster/reports/proxy/<node id>
    kind = "cluster"

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings, self.config = settings, settings.engine
        self.node_id = new_node_id(self.role)
        self.meta = settings.open_meta()
        self.coord = CoordinatorClient(self.meta)
        self.tso = RemoteTSO(self.coord)
        self._recent_ts: tuple[int, float] = (0, 0.0)  # (timestamp, monotonic time taken)
        self.cache = MetaCache(self.meta, (COLLECTIONS, K.CLUSTER), ignore=(K.REPORTS,))
        self.catalog = Catalog(self.meta, guard=self._guard)
        self.lock = threading.RLock()
        self.scatter = Scatter(
            self.meta, self.catalog, self.config.max_serviceable_wait_s, self.cache
        )
        engines.register(self)
        self.failures = BuildFailures(self.meta)  # the coordinator's, for describe_index
        self.reporter = Reporter(self.meta, self)

    def _guard(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """The coordinator's guarded transaction; then the cache re-reads what it wrote,
        so this proxy reads its own writes."""
        res = self.coord.guard(compare, success, failure)
        if res.succeeded:
            for op in success:
                if isinstance(op, DeletePrefix):
                    self.cache.forget_prefix(op.prefix, res.revision)
            self.cache.refresh([op.key for op in success if isinstance(op, Put | Delete)])
        return res

    def guarded_txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        return self._guard(compare, success, failure)

    # --- DDL ---------------------------------------------------------------------------
    def get(self, name: str) -> CollectionView:
        raw = self.cache.get(Catalog.collection_key(name))
        if raw is None:
            return CollectionView(self.catalog.get(name))
        return CollectionView(CollectionMeta(**json.loads(raw)))

    def serves(self, name: str) -> bool:
        """Known from the watched catalog (a miss reads the catalog)."""
        return self.cache.get(Catalog.collection_key(name)) is not None

    def is_loaded(self, collection_id: int) -> bool:
        """From the watched catalog (the catalog itself when the cache has no record)."""
        metas = [json.loads(v) for v in self.cache.items(COLLECTIONS).values()]
        if not any(m["id"] == collection_id for m in metas):
            metas = [vars(m) for m in self.catalog.list()]
        return any(m["loaded"] for m in metas if m["id"] == collection_id)

    def segment_stats(self, collection_id: int) -> dict[str, int]:
        segs = self.catalog.segments(collection_id)
        return {"sealed_segments": len(segs), "sealed_rows": sum(s.rows for s in segs),
                "gpu_resident": 0}  # fmt: skip

    def create_collection(
        self, name: str, schema: Any, *, num_shards: int, consistency_level: str,
        index_params: list[dict[str, Any]], load: bool,
    ) -> CollectionView:  # fmt: skip
        meta = self.catalog.create(
            name, schema, num_shards=num_shards, consistency_level=consistency_level,
            index_params=index_params,
        )  # fmt: skip
        if load:
            self.load(name)
        return CollectionView(meta)

    def drop_collection(self, name: str) -> None:
        self.catalog.drop(name)

    def rename_collection(self, old: str, new: str, compare: Any = (), ops: Any = ()) -> None:
        self.catalog.rename(old, new, compare, ops)

    def truncate_collection(self, name: str) -> None:
        meta = self.catalog.truncate(name)
        if meta.loaded:
            self._wait_served(meta)

    def update_meta(self, name: str, change: Any) -> None:
        self.catalog.update(name, change)
        # read our own write: the next call through this proxy (an insert with a field just
        # added) must see the new record, not wait for the watch to bring it
        self.cache.refresh([Catalog.collection_key(name)])

    def load(self, name: str) -> None:
        meta = self.catalog.get(name)
        if not meta.loaded:
            self.catalog.update(name, lambda m: setattr(m, "loaded", True))
        self._wait_served(self.catalog.get(name))

    def _wait_served(self, meta: CollectionMeta, timeout: float = 120.0) -> None:
        """Until every committed segment is served by a query node (Milvus's load)."""
        deadline = time.monotonic() + timeout
        while True:
            kvs, _ = self.meta.range(K.served_of(meta.id))
            served = {int(kv.key.split("/")[-2]) for kv in kvs}
            missing = [s.id for s in self.catalog.segments(meta.id) if s.id not in served]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"load of {meta.name!r}: segments {missing[:10]} not served after "
                    f"{timeout:g} s (are query nodes running?)"
                )
            time.sleep(0.1)

    def release(self, name: str) -> None:
        if self.catalog.get(name).loaded:
            self.catalog.update(name, lambda m: setattr(m, "loaded", False))

    # --- writes ------------------------------------------------------------------------
    def write(
        self, coll: CollectionView, *, inserts: pa.Table | None, delete_pks: np.ndarray | None,
        partition: str | None,
    ) -> int:  # fmt: skip
        meta = coll.meta
        pid = coll.partition_ids([partition or DEFAULT_PARTITION])
        assert pid is not None
        pk_name = coll.schema.primary_field.name  # type: ignore[union-attr]
        ts = 0
        for i, ins, dels in split_write(pk_name, meta.num_shards, inserts, delete_pks):
            tables = {k: t for k, t in (("inserts", ins), ("deletes", dels)) if t is not None}
            args = {"partition_id": next(iter(pid))}
            ((out, _),) = self.scatter.channel_call(meta, [meta.channels[i]], "write", args, tables)
            ts = max(ts, int(out["ts"]))
        n_ins = 0 if inserts is None else inserts.num_rows
        observe_write(meta.name, n_ins, 0 if delete_pks is None else len(delete_pks))
        return ts

    def flush(self, name: str) -> None:
        meta = self.catalog.get(name)
        self.scatter.channel_call(meta, meta.channels, "seal", {})

    # --- reads -------------------------------------------------------------------------
    def read_ts(self, coll: CollectionView, level: str | None, session_ts: int) -> int:
        """The timestamp a read runs at; every node is made to have applied all writes
        before it (streaming nodes sync, query nodes catch up to their positions).

        Strong: a fresh timestamp from the coordinator's TSO. Bounded, Session and
        Eventually may reuse the last one this proxy took, while it is under
        ``READ_TS_REUSE_S`` old and not below ``session_ts`` (the caller's own writes and
        any guarantee it sent): their guarantee (now − staleness, the session's writes)
        holds, and a read-mostly proxy asks the TSO a few times a second, not per read."""
        level = level or coll.meta.consistency_level
        if level not in CONSISTENCY:
            raise InvalidArgumentError(f"consistency_level must be one of {CONSISTENCY}: {level!r}")
        if level != "Strong":
            ts, taken = self._recent_ts
            if ts >= session_ts and time.monotonic() - taken < READ_TS_REUSE_S:
                return ts
        ts = self.tso.allocate()
        if ts > self._recent_ts[0]:
            self._recent_ts = (ts, time.monotonic())  # one tuple: readers see a whole pair
        return ts

    def _require_loaded(self, coll: CollectionView) -> None:
        if not coll.meta.loaded:
            raise CollectionNotLoadedError(f"collection not loaded[collection={coll.meta.name}]")

    @staticmethod
    def _filter_args(flt: CompiledFilter | None) -> dict[str, Any]:
        if flt is None:
            return {}
        return {"filter": flt.text, "filter_params": flt.params}

    def search(
        self, coll: CollectionView, field: str, queries: np.ndarray, k: int, metric: str,
        partitions: set[int] | None, read_ts: int, flt: CompiledFilter | None = None,
        search_params: dict[str, Any] | None = None, columns: tuple[str, ...] = (),
    ) -> tuple[list[RowsSegment], np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        self._require_loaded(coll)
        if metric == "BM25":  # the collection's statistics from every node, then the search
            dims = query_dims(queries)
            stats = self.scatter.gather(
                coll.meta, "bm25_stats", {"read_ts": read_ts, "field": field,
                                          "nfields": len(coll.schema.fields)},
                {"dims": pa.table({"d": pa.array(dims, pa.int64())})}, partitions, "stats")
            k1, b = bm25_params(coll.meta.index_params, field)
            queries, extra = weigh(queries, dims, stats_parts([*stats.streaming, *stats.sealed],
                                                              len(dims)), k1, b)  # fmt: skip
            search_params = {**(search_params or {}), **extra}
        args = {
            "read_ts": read_ts, "field": field, "k": k, "metric": metric,
            "params": search_params or {}, "columns": list(columns), **self._filter_args(flt),
            "nfields": len(coll.schema.fields),
        }  # fmt: skip
        if isinstance(queries, SparseRows):  # one binary cell per query
            q = {"queries": pa.table({"q": queries.cells()})}
        else:
            q = {"queries": array_table("q", _wire_queries(queries))}
        got = self.scatter.gather(coll.meta, "search", args, q, partitions, "hits")
        pk = coll.schema.primary_field.name  # type: ignore[union-attr]
        nq = len(queries)
        segs: list[RowsSegment] = []
        parts: list[Hits] = []
        for table in got.streaming:  # one top-k per segment
            seg_col = table.column("_seg").to_numpy()
            for sid in np.unique(seg_col):
                sub = table.filter(pa.array(seg_col == sid))
                segs.append(RowsSegment(sub, pk))
                parts.append(_hits(sub, nq, k, metric))
        for table in got.sealed:
            segs.append(RowsSegment(table, pk))
            parts.append(_hits(table, nq, k, metric))
        if not parts:
            empty = -np.ones((nq, k), np.int64)
            return segs, np.zeros((nq, k), np.float32), empty, empty
        dist, seg, row = reduce_hits(parts, k, metric)
        return segs, dist, seg, row

    def _rows(
        self, coll: CollectionView, args: dict[str, Any], partitions: set[int] | None, read_ts: int,
        columns: tuple[str, ...],
    ) -> list[tuple[RowsSegment, np.ndarray]]:  # fmt: skip
        self._require_loaded(coll)
        args = {**args, "read_ts": read_ts, "columns": list(columns),
                "nfields": len(coll.schema.fields)}  # fmt: skip
        got = self.scatter.gather(coll.meta, "match", args, {}, partitions, "rows")
        pk = coll.schema.primary_field.name  # type: ignore[union-attr]
        return [
            (RowsSegment(t, pk), np.arange(t.num_rows))
            for t in [*got.streaming, *got.sealed]
            if t.num_rows
        ]

    def match(
        self, coll: CollectionView, flt: CompiledFilter | None, partitions: set[int] | None,
        read_ts: int, columns: tuple[str, ...] = (),
    ) -> list[tuple[RowsSegment, np.ndarray]]:  # fmt: skip
        if flt is not None:
            keys = flt.filter.pk_values()
            if keys is not None:
                if not keys:
                    return []
                return self._rows(coll, {"pks": list(keys)}, partitions, read_ts, columns)
        return self._rows(coll, self._filter_args(flt), partitions, read_ts, columns)

    def lookup(
        self, coll: CollectionView, pks: np.ndarray, partitions: set[int] | None, read_ts: int,
        columns: tuple[str, ...] = (),
    ) -> list[tuple[RowsSegment, np.ndarray]]:  # fmt: skip
        return self._rows(coll, {"pks": pks.tolist()}, partitions, read_ts, columns)

    def row_count(self, coll: CollectionView, partition_ids: set[int]) -> int:
        found = self._rows(coll, {}, partition_ids, self.tso.allocate(), ())
        return sum(len(r) for _, r in found)

    # --- indexes -----------------------------------------------------------------------
    def index_progress(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        """:func:`gpuvec.coord.planning.index_progress` over the catalog, with the build
        failures the active coordinator's report states (read at most once a second)."""
        cid = coll.meta.id
        return index_progress(self.catalog.segments(cid), self.catalog.segment_indexes(cid),
                              definition, self.config.index_min_rows,
                              self.failures.reason)  # fmt: skip

    def index_serving(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        progress = self.index_progress(coll, definition)
        return {
            "sealed_segments": len(self.catalog.segments(coll.meta.id)),
            "pending_index_rows": progress["pending_index_rows"],
            "backend": "query nodes (see each node's status)",
        }

    def wait_for_indexes(self, name: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            coll = self.get(name)
            defs = [d for d in coll.meta.index_params if d.get("index_type") not in NO_BUILD]
            progress = [(d, self.index_progress(coll, d)) for d in defs]
            for d, p in progress:
                if p["state"] == "Failed":
                    raise IndexBuildError(
                        f"index {d['index_name']!r} of collection {name!r} failed to build: "
                        f"{p['index_state_fail_reason']}"
                    )
            if all(p["state"] == "Finished" for _, p in progress):
                return True
            time.sleep(0.1)
        return False

    # --- bulk import ---------------------------------------------------------------------
    def import_files(
        self, meta: CollectionMeta, files: Any, partition: str | None = None, **options: Any
    ) -> int:
        """The active coordinator checks, records and runs the job; a retry after a
        failover returns the same job (an idempotency key is made when none is given)."""
        options = dict(options)
        options["idempotency_key"] = options.get("idempotency_key") or f"proxy-{uuid.uuid4()}"
        files = [files] if isinstance(files, str) else [
            f if isinstance(f, str) else [str(x) for x in f] for f in files]  # fmt: skip
        args = {"name": meta.name, "files": files, "partition": partition, "options": options}
        out, _ = self.coord.call("import", args)
        return int(out["job"])

    def import_state(self, job_id: int) -> dict[str, Any]:
        """The job's record from meta; a committed job of a loaded collection reads
        ``Building`` at 99% until query nodes serve every one of its segments."""
        job = read_job(self.meta, job_id)
        if job["state"] == "Completed" and not self._job_served(job):
            job = {**job, "state": "Building", "progress": 99}
        return job

    def import_state_after(self, job_id: int, seen: float, timeout: float) -> dict[str, Any]:
        """The coordinator runs the job: polled every 0.1 s."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.import_state(job_id)
            if job["updated"] != seen or job["state"] not in ("Pending", "Importing",
                                                              "Building"):  # fmt: skip
                return job
            if time.monotonic() >= deadline:
                return job
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _job_served(self, job: dict[str, Any]) -> bool:
        try:
            meta = self.catalog.get(job["collection"])
        except NotFoundError:
            return True
        if not meta.loaded or meta.id != job["collection_id"]:
            return True
        kvs, _ = self.meta.range(K.served_of(meta.id))
        served = {int(kv.key.split("/")[-2]) for kv in kvs}
        return set(job["segments"]) <= served

    def import_jobs(self, collection: str = "", limit: int = 0) -> list[dict[str, Any]]:
        return list_jobs(self.meta, collection, limit)

    # --- the coordinator's compactions and dashboard, over its RPC ---------------------
    def compact(self, meta: CollectionMeta, manual: bool = False) -> int | None:
        out, _ = self.coord.call("compact", {"name": meta.name, "manual": manual})
        return out["job"]

    def compaction_state(self, job: int) -> str:
        out, _ = self.coord.call("compaction_state", {"job": job})
        return str(out["state"])

    def compaction_plans(self, job: int) -> list[tuple[list[int], int]]:
        out, _ = self.coord.call("compaction_state", {"job": job})
        return [(list(src), int(dst)) for src, dst in out.get("merges", [])]

    @property
    def dashboard_link(self) -> str | None:
        """The data nodes' Dask dashboard as the active coordinator knows it."""
        out, _ = self.coord.call("status")
        return out.get("dashboard")

    def open_dashboard(self) -> str | None:
        return self.dashboard_link  # the cluster's scheduler runs on its own

    def health(self) -> str:
        """'' while a coordinator leads (its election key is held); otherwise why not."""
        if self.meta.get(K.COORDINATOR_ELECTION) is None:
            return "no active coordinator (election/coordinator is vacant)"
        return ""

    def close(self) -> None:
        engines.unregister(self)
        self.reporter.close()
        self.scatter.close()
        self.cache.close()
        self.meta.close()


def _wire_queries(queries: np.ndarray) -> np.ndarray:
    """Query vectors as sent to the nodes: float32, or packed uint8 bits (binary)."""
    q = np.asarray(queries)
    return q if q.dtype == np.uint8 else q.astype(np.float32, copy=False)
