"""The embedded runtime: every role in one process over the embedded storage layers.

``Engine(directory)`` opens (or creates) ``<dir>/meta.db`` (SQLite meta), ``<dir>/wal/``
(local WAL) and ``<dir>/objects/`` (Zarr). It elects itself coordinator (so two processes
cannot serve one directory at once), then recovers: for every collection it starts the
shards' streaming nodes, which replay their WAL channels from the checkpoint, and loads
the sealed segments of collections that were loaded before. Background threads append a
TimeTick to every channel each ``time_tick_ms`` and seal growing segments by the seal
policy (or release an idle channel's WAL of ticks).

The engine is the coordinator's and the proxy's logic for the in-process API: DDL through
the catalog, writes routed to shards by primary-key hash, reads at a guarantee timestamp
(DESIGN §3) scattered over growing and sealed segments and reduced to top-k. It implements
:class:`gpuvec.runtime.base.Runtime`; its data-node duties (index builds, compactions and
their swaps) are the composed :class:`gpuvec.runtime.duties.DataNodeDuties`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog
from gpuvec.coord.compaction import Compactor
from gpuvec.coord.imports import ImportJobs
from gpuvec.coord.indexing import IndexBuilder
from gpuvec.coord.tso import TSO
from gpuvec.datanode.runtime import DataNodeRuntime
from gpuvec.errors import (
    DeadlineExceededError,
    GpuvecError,
    InvalidArgumentError,
    PartitionNotFoundError,
)
from gpuvec.observability import engines
from gpuvec.observability.metrics import observe_write
from gpuvec.ops import check_requested
from gpuvec.pipelines.common import StoreSpec
from gpuvec.proxy.router import split_write
from gpuvec.query.node import QueryNode
from gpuvec.query.residency import DeviceResidency
from gpuvec.records import DEFAULT_PARTITION, CollectionMeta, CollectionView
from gpuvec.runtime.duties import DataNodeDuties
from gpuvec.runtime.reads import ReadMethods
from gpuvec.schema import CollectionSchema
from gpuvec.storage.meta.election import Election
from gpuvec.storage.meta.sqlite import SqliteMetaStore
from gpuvec.storage.objects.stores import open_store
from gpuvec.storage.wal.local import LocalWAL
from gpuvec.streaming.shard import Shard

log = logging.getLogger(__name__)


class Collection(CollectionView):
    """Runtime state of one collection: its catalog record and its shards."""

    def __init__(self, meta: CollectionMeta, shards: list[Shard]) -> None:
        super().__init__(meta)
        self.shards = shards

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold every shard's lock (in shard order): no write, seal or segment swap of the
        collection runs meanwhile."""
        if len(self.shards) == 1:  # the common case, without an ExitStack per read
            with self.shards[0].lock:
                yield
            return
        with ExitStack() as stack:
            for shard in self.shards:
                stack.enter_context(shard.lock)
            yield


class Engine(ReadMethods):
    kind = "embedded"

    def __init__(self, directory: str | Path, config: Config | None = None) -> None:
        check_requested()  # GPUVEC_DEVICE=gpu without a usable GPU: refused before anything
        self.root = Path(directory)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config or Config.load()
        self.meta = SqliteMetaStore(self.root / "meta.db")
        # a stall past the TTL loses the lease; the engine then reclaims it (Election.reclaim)
        # and guarded transactions wait for that rather than failing
        self.election = Election(
            self.meta, "coordinator", ttl=3, on_lost=self._lease_lapsed, wait_s=15.0
        )
        try:
            self.election.campaign(f"embedded:{self.root}".encode(), timeout=15)
        except DeadlineExceededError:
            self.meta.close()
            raise InvalidArgumentError(
                f"data directory {str(self.root)!r} is in use by another gpuvec process"
            ) from None
        self.catalog = Catalog(self.meta, guard=self.election.guarded_txn)
        self.tso = TSO(self.meta, guard=self.election.guarded_txn)
        self.wal = LocalWAL(
            self.root / "wal",
            fsync=self.config.wal_fsync,  # type: ignore[arg-type]
            group_commit_ms=self.config.wal_group_commit_ms,
        )
        self.store = open_store(self.root / "objects")
        self.query = QueryNode(self.store, DeviceResidency(self.config.gpu_memory_budget))
        self.duties = DataNodeDuties(self)
        self.datanodes = DataNodeRuntime(
            self.config.scheduler_address,
            workers=self.config.datanode_workers,
            processes=self.config.datanode_processes,
            dashboard_address=self.config.dashboard_address,
        )
        self.indexer = IndexBuilder(
            self.catalog,
            self.datanodes,
            StoreSpec(str(self.root / "objects")),
            self.duties.index_built,
            min_rows=self.config.index_min_rows,
        )
        self.compactor = Compactor(
            self.catalog,
            self.datanodes,
            StoreSpec(str(self.root / "objects")),
            self.store,
            self.config,
            self.query.deleted_fraction,
            self.duties.compacted,
            builds=self.indexer,
        )
        self.imports = ImportJobs(self.catalog, self.tso, self.datanodes,
                                  StoreSpec(str(self.root / "objects")), self.store,
                                  self.config, self.duties.publish_import)  # fmt: skip
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        for meta in self.catalog.list():
            self._start(meta)
            if meta.loaded:
                self._load(self.collections[meta.name])
        self._stop = threading.Event()
        self._maint = threading.Thread(target=self._maintain, name="gpuvec-seal", daemon=True)
        self._maint.start()
        self._ticker = threading.Thread(target=self._tick, name="gpuvec-timetick", daemon=True)
        self._ticker.start()
        self.duties.start()
        self.imports.resume()  # jobs a killed process left unfinished run again
        if self.datanodes.dashboard_pinned:  # a fixed dashboard port: up now, not lazily
            try:  # (the runtime logs the page's URL)
                self.datanodes.client  # noqa: B018 - starts the scheduler and its dashboard
            except Exception as e:  # the data nodes start on first use instead
                log.warning("could not start the data nodes' dashboard at open: %s", e)
        engines.register(self)

    # --- lifecycle ---------------------------------------------------------------------------
    def _start(self, meta: CollectionMeta) -> Collection:
        shards = [
            Shard(
                meta,
                ch,
                wal=self.wal,
                tso=self.tso,
                catalog=self.catalog,
                store=self.store,
                config=self.config,
                on_sealed=lambda segs, cid=meta.id: self.query.adopt(cid, segs),
                on_delete=lambda pks, ts, cid=meta.id: self.query.delete(cid, pks, ts),
            )
            for ch in meta.channels
        ]
        coll = self.collections[meta.name] = Collection(meta, shards)
        return coll

    def _maintain(self) -> None:
        while not self._stop.wait(1.0):
            for coll in list(self.collections.values()):
                for shard in coll.shards:
                    try:
                        if shard.should_seal():
                            shard.seal()
                        else:
                            shard.release_idle_wal()
                    except Exception:  # a dropped collection's shard; retried next round
                        log.debug("maintenance of %s failed", shard.channel, exc_info=True)

    def _tick(self) -> None:
        """Every shard appends a TimeTick to its channel every ``time_tick_ms``."""
        while not self._stop.wait(self.config.time_tick_ms / 1000.0):
            for coll in list(self.collections.values()):
                for shard in coll.shards:
                    try:
                        shard.tick()
                    except Exception:  # closed by a concurrent drop
                        log.debug("time tick of %s failed", shard.channel, exc_info=True)

    def _lease_lapsed(self) -> None:
        """Called by the lease thread once the lease is gone: reclaim it in the background."""
        threading.Thread(target=self._reclaim, name="gpuvec-reclaim", daemon=True).start()

    def _reclaim(self) -> None:
        try:
            self.election.reclaim(timeout=15.0)
        except GpuvecError as e:
            log.error("gpuvec engine on %s stopped serving: %s", self.root, e)

    def open_dashboard(self) -> str | None:
        """Start the data nodes (and their Dask dashboard) now; the gpuvec page's URL."""
        self.datanodes.client  # noqa: B018 - starts the scheduler and its dashboard
        return self.dashboard_link

    # --- indexes and compaction (the data-node duties) -------------------------------------
    def index_progress(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        return self.duties.index_progress(coll, definition)

    def index_serving(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        return self.duties.index_serving(coll, definition)

    def wait_for_indexes(self, name: str, timeout: float = 60.0) -> bool:
        return self.duties.wait_for_indexes(name, timeout)

    def compact(self, meta: CollectionMeta, manual: bool = False) -> int | None:
        return self.compactor.compact(meta, manual=manual)

    # --- bulk import (gpuvec.coord.imports) -----------------------------------------------
    def import_files(self, meta: CollectionMeta, files: Any, partition: str | None = None,
                     **options: Any) -> int:  # fmt: skip
        return self.imports.submit(meta, files, partition, **options)

    def import_state(self, job_id: int) -> dict[str, Any]:
        return self.imports.state(job_id)

    def import_state_after(self, job_id: int, seen: float, timeout: float) -> dict[str, Any]:
        return self.imports.state_after(job_id, seen, timeout)

    def import_jobs(self, collection: str = "", limit: int = 0) -> list[dict[str, Any]]:
        return self.imports.list(collection, limit)

    def compaction_state(self, job: int) -> str:
        return self.compactor.state(job)

    def compaction_plans(self, job: int) -> list[tuple[list[int], int]]:
        return self.compactor.merges(job)

    @property
    def dashboard_link(self) -> str | None:
        """The gpuvec page on the data nodes' Dask dashboard (``http://…/gpuvec``), once
        they started (at open with a fixed ``dashboard_address`` port, else on the first
        index build or compaction); None before, or with an external scheduler."""
        return self.datanodes.page_link

    def health(self) -> str:
        """'' while this engine leads its data directory; otherwise the reason it does not
        (for CheckHealth / GetComponentStates)."""
        if self.election.is_leader:
            return ""
        return self.election.lost_reason or "this process does not lead its data directory"

    def close(self) -> None:
        engines.unregister(self)
        self._stop.set()
        self._maint.join(timeout=5)
        self._ticker.join(timeout=5)
        self.imports.close()
        self.duties.stop()
        self.datanodes.close()
        self.imports.join()
        for coll in self.collections.values():
            for shard in coll.shards:
                shard.close()
        self.wal.close()
        self.election.resign()
        self.meta.close()

    # --- DDL ---------------------------------------------------------------------------------
    def get(self, name: str) -> Collection:
        coll = self.collections.get(name)
        if coll is None:
            self.catalog.get(name)  # raises CollectionNotFoundError with Milvus's wording
            raise AssertionError("catalog and runtime disagree")  # pragma: no cover
        return coll

    def create_collection(
        self,
        name: str,
        schema: CollectionSchema,
        *,
        num_shards: int,
        consistency_level: str,
        index_params: list[dict[str, Any]],
        load: bool,
    ) -> Collection:
        with self.lock:
            meta = self.catalog.create(
                name,
                schema,
                num_shards=num_shards,
                consistency_level=consistency_level,
                index_params=index_params,
            )
            coll = self._start(meta)
            if load:
                self.load(name)
            return coll

    def drop_collection(self, name: str) -> None:
        with self.lock:
            coll = self.get(name)
            self.catalog.drop(name)
            self.query.release(coll.meta.id)
            for shard in coll.shards:
                shard.close()
                self.wal.drop_channel(shard.channel)
            del self.collections[name]

    def rename_collection(self, old: str, new: str, compare: Any = (), ops: Any = ()) -> None:
        """Rename; ``compare``/``ops`` join the catalog transaction (alias re-pointing)."""
        with self.lock:
            coll = self.get(old)
            self.catalog.rename(old, new, compare, ops)
            coll.meta = self.catalog.get(new)
            self.collections[new] = self.collections.pop(old)

    def truncate_collection(self, name: str) -> None:
        """Remove every row, keeping the collection's definition (``Catalog.truncate``):
        the old shards, WAL channels and served segments go, new empty ones start."""
        with self.lock:
            coll = self.get(name)
            loaded = self.query.loaded(coll.meta.id)
            meta = self.catalog.truncate(name)
            self.query.release(coll.meta.id)
            for shard in coll.shards:
                shard.close()
                self.wal.drop_channel(shard.channel)
            fresh = self._start(meta)
            if loaded:
                self._load(fresh)

    def update_meta(self, name: str, change: Any) -> None:
        with self.lock:
            coll = self.get(name)
            coll.meta = self.catalog.update(name, change)
            coll.schema = coll.meta.collection_schema()  # a field may have been added
            for shard in coll.shards:
                shard.meta = coll.meta

    def load(self, name: str) -> None:
        with self.lock:
            coll = self.get(name)
            with coll.locked():
                self._load(coll)
            if not coll.meta.loaded:
                self.update_meta(name, lambda m: setattr(m, "loaded", True))

    def _load(self, coll: Collection) -> None:
        self.query.load(coll.meta, self.catalog)
        self.query.attach_indexes(coll.meta, self.catalog)
        for shard in coll.shards:  # deletes not yet in a delta log
            for pks, ts in shard.pending_deletes():
                self.query.delete(coll.meta.id, pks, ts)

    def release(self, name: str) -> None:
        with self.lock:
            coll = self.get(name)
            self.query.release(coll.meta.id)
            if coll.meta.loaded:
                self.update_meta(name, lambda m: setattr(m, "loaded", False))

    def is_loaded(self, collection_id: int) -> bool:
        return self.query.loaded(collection_id)

    def segment_stats(self, collection_id: int) -> dict[str, int]:
        return self.query.stats(collection_id)

    def serves(self, name: str) -> bool:
        return name in self.collections

    def guarded_txn(self, compare: Any, success: Any, failure: Any = ()) -> Any:
        return self.election.guarded_txn(compare, success, failure)

    # --- writes ------------------------------------------------------------------------------
    def write(
        self,
        coll: Collection,
        *,
        inserts: pa.Table | None,
        delete_pks: np.ndarray | None,
        partition: str | None,
    ) -> int:
        """Route rows and deletes to shards; return the write's timestamp. A write that
        spans shards takes one timestamp for all of them, under every shard lock, so a read
        sees all of it or none of it (as Milvus stamps a request once)."""
        pname = partition or DEFAULT_PARTITION
        if pname not in coll.meta.partitions:
            raise PartitionNotFoundError(f"partition not found[partition={pname}]")
        pid = coll.meta.partitions[pname]
        pk_name = coll.schema.primary_field.name  # type: ignore[union-attr]
        parts = split_write(pk_name, len(coll.shards), inserts, delete_pks)
        if not parts:
            return 0
        if len(parts) == 1:
            ((i, ins, dels),) = parts
            ts = coll.shards[i].write(inserts=ins, deletes=dels, partition_id=pid)
        else:
            with coll.locked():
                ts = self.tso.allocate()
                for i, ins, dels in parts:
                    coll.shards[i].write(inserts=ins, deletes=dels, partition_id=pid, ts=ts)
        observe_write(
            coll.meta.name,
            0 if inserts is None else inserts.num_rows,
            0 if delete_pks is None else len(delete_pks),
        )
        return ts

    def flush(self, name: str) -> None:
        for shard in self.get(name).shards:
            shard.seal()
