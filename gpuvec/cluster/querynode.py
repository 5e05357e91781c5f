"""``gpuvec querynode``: the query node process (DESIGN §1, §5).

It serves the sealed segments the coordinator binds to it (``cluster/segments/<cid>/<sid>``
lists their nodes): each is loaded from the object store with the collection's delta logs
and the deletes this node has read from the WAL since, and its committed index builds
attached; the segments live in GPU memory within the budget (CPU otherwise), through the
same :class:`~gpuvec.query.node.QueryNode` as the embedded runtime. Once a segment is
served the node says so under its session lease (``cluster/served/<cid>/<sid>/<node>``), so
the streaming node can stop serving its copy.

Deletes of sealed rows arrive through the WAL: the node tails every channel of the
collections it serves (Kafka, from the channel checkpoint it saw before reading the delta
logs), applying delete records to its segments. A read carries, per channel, the WAL
position the streaming node had reached at the read timestamp; the node answers once it has
read that far, so a delete acknowledged before the read is always applied. Nothing here is
state that the object store, meta and WAL cannot rebuild.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import numpy as np

from gpuvec.cluster.rpc import Tables
from gpuvec.cluster.serving import bm25_stats_table, match_table, search_table, stale
from gpuvec.cluster.sessions import SEGMENTS
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.cluster.wire import query_matrix, table_array
from gpuvec.cluster.worker import WorkerNode
from gpuvec.coord.catalog import Catalog
from gpuvec.errors import CompactedError, DeadlineExceededError, GpuvecError, NotOwnerError
from gpuvec.query.node import QueryNode, load_segment
from gpuvec.query.residency import DeviceResidency
from gpuvec.query.segdata import SegmentData
from gpuvec.records import CollectionMeta
from gpuvec.schema import DataType
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Delete, Put
from gpuvec.storage.wal.record import RecordKind

log = logging.getLogger("gpuvec.querynode")


class DeleteTail:
    """Reads one channel's WAL for deletes, from a position; remembers what it read."""

    def __init__(self, node: QueryNodeProcess, cid: int, channel: str, start: int) -> None:
        self.node, self.cid, self.channel = node, cid, channel
        self.position = start
        self.deletes: list[tuple[int, np.ndarray, int]] = []  # (position, pks, ts)
        self.reader = node.wal.reader(channel, start)
        self.cond = threading.Condition()

    def poll(self, pk_is_int: bool, pk_name: str) -> None:
        try:
            batch = self.reader.poll(timeout=0.05, max_records=256)
        except CompactedError:
            self._skip_truncated()
            return
        for pos, rec in batch:
            if rec.kind == RecordKind.DELETE and rec.payload:
                col = rec.table().column(pk_name).combine_chunks()
                pks = col.to_numpy() if pk_is_int else np.array(col.to_pylist(), object)
                with self.cond:
                    self.deletes.append((pos, pks, rec.ts_begin))
                self.node.query.delete(self.cid, pks, rec.ts_begin)
        if batch:
            with self.cond:
                self.position = batch[-1][0] + 1
                self.cond.notify_all()

    def _skip_truncated(self) -> None:
        """The streaming node sealed and released WAL this node had not read yet: those
        deletes are in delta logs now, so apply the collection's delta logs to every held
        segment and go on from the first readable position."""
        low = self.node.wal.low_watermark(self.channel)
        self.reader.close()
        self.reader = self.node.wal.reader(self.channel, low)
        meta = self.node.metas.get(self.cid)
        if meta is not None:
            held = self.node.query.segments(self.cid)
            self.node.query.apply_deltas(meta, self.node.catalog, held)
        with self.cond:
            self.position = max(self.position, low)
            self.cond.notify_all()
        log.info("channel %s: skipped to %d (truncated); delta logs applied", self.channel, low)

    def prune(self, checkpoint: int) -> None:
        """Forget deletes below the channel checkpoint: delta logs hold them now."""
        with self.cond:
            self.deletes = [d for d in self.deletes if d[0] >= checkpoint]

    def wait(self, position: int, deadline: float) -> None:
        with self.cond:
            while self.position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceededError(
                        f"query node read channel {self.channel} to {self.position}, "
                        f"a read needs {position}"
                    )
                self.cond.wait(min(left, 0.05))

    def close(self) -> None:
        self.reader.close()


class QueryNodeProcess(WorkerNode):
    role = "querynode"

    def __init__(
        self,
        settings: ClusterSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise: str | None = None,
    ) -> None:
        self._open_node(settings)
        self.catalog = Catalog(self.meta)  # read-only here
        self.query = QueryNode(self.store, DeviceResidency(self.config.gpu_memory_budget))
        self.metas: dict[int, CollectionMeta] = {}
        self.tails: dict[str, DeleteTail] = {}
        self._reported: dict[int, float] = {}  # segment id → deleted fraction reported
        self._serve(
            {"search": self._search, "match": self._match, "bm25_stats": self._bm25_stats,
             "status": self._status},
            [(self._sync_assignments, 0.25, "gpuvec-qn-assign"),
             (self._tail, 0.0, "gpuvec-qn-wal"),
             (self._attach_indexes, 1.0, "gpuvec-qn-index")],
            host, port, advertise,
        )  # fmt: skip

    # --- assignments ---------------------------------------------------------------------
    def _sync_assignments(self) -> None:
        mine = self._mine()
        metas = {m.id: m for m in self.catalog.list()}
        for cid, sids in mine.items():
            meta = metas.get(cid)
            if meta is None:
                continue
            self.metas[cid] = meta
            self._open(meta)
            held = {s.segment_id for s in self.query.segments(cid)}
            committed = {s.id: s for s in self.catalog.segments(cid)}
            for sid in sorted(sids - held):
                if sid in committed:
                    self._load(meta, committed[sid])
            gone = held - sids
            if gone:  # after loading the new ones: a compaction's swap never leaves a gap
                self.query.replace(cid, sorted(gone), None)
                self.meta.txn([], [Delete(K.served_key(cid, sid, self.node_id)) for sid in gone])
        for cid in [c for c in list(self.metas) if c not in mine]:
            self._close_collection(cid)

    def _mine(self) -> dict[int, set[int]]:
        """collection id → the segment ids assigned to this node."""
        kvs, _ = self.meta.range(SEGMENTS)
        out: dict[int, set[int]] = {}
        for kv in kvs:
            cid, sid = (int(x) for x in kv.key[len(SEGMENTS) :].split("/"))
            if self.node_id in json.loads(kv.value):
                out.setdefault(cid, set()).add(sid)
        return out

    def _open(self, meta: CollectionMeta) -> None:
        """Start serving a collection: tail its channels from their checkpoints (read
        before any delta log, so no delete falls between the two)."""
        if self.query.loaded(meta.id):
            return
        with self.lock:
            for ch in meta.channels:
                start = max(self.catalog.checkpoint(ch), self.wal.low_watermark(ch))
                self.tails[ch] = DeleteTail(self, meta.id, ch, start)
        self.query.open(meta.id)

    def _load(self, meta: CollectionMeta, sm: Any) -> None:
        seg = load_segment(self.store, sm.path, sm.id, sm.partition_id, meta)
        with self.lock:  # no WAL delete and no buffer pruning between these steps
            self.query.apply_deltas(meta, self.catalog, [seg])
            for ch in meta.channels:
                tail = self.tails.get(ch)
                if tail is not None:
                    for _, pks, ts in list(tail.deletes):
                        seg.delete(pks, ts)
            self.query.adopt(meta.id, [seg])
        for (sid, field), rec in self.catalog.segment_indexes(meta.id).items():
            if sid == sm.id:
                self._attach(meta, sid, field, rec)
        self.meta.txn(
            [], [Put(K.served_key(meta.id, sm.id, self.node_id), b"0", self.session.keeper.id)]
        )
        log.info("serving segment %s of %s (%d rows)", sm.id, meta.name, sm.rows)

    def _attach(self, meta: CollectionMeta, sid: int, field: str, rec: dict[str, Any]) -> None:
        from gpuvec.records import index_id

        if any(index_id(d) == rec.get("index_id") for d in meta.index_params):
            self.query.attach_index(meta.id, sid, field, rec)

    def _attach_indexes(self) -> None:
        """Attach newly built indexes; report deleted fractions (the coordinator's
        compaction policy reads them); prune delete buffers the delta logs now cover."""
        for meta in list(self.metas.values()):
            self.query.attach_indexes(meta, self.catalog)
        self._report_deleted()
        with self.lock:
            for ch, tail in list(self.tails.items()):
                tail.prune(self.catalog.checkpoint(ch))

    def _report_deleted(self) -> None:
        """Each served segment's deleted fraction, as the value of its served key, when
        it moved by a percent or more since the last report."""
        ops = []
        for cid in list(self.metas):
            for seg in self.query.segments(cid):
                frac = round(self.query.deleted_fraction(cid, seg.segment_id), 2)
                if abs(frac - self._reported.get(seg.segment_id, 0.0)) >= 0.01:
                    self._reported[seg.segment_id] = frac
                    key = K.served_key(cid, seg.segment_id, self.node_id)
                    ops.append(Put(key, str(frac).encode(), self.session.keeper.id))
        if ops:
            self.meta.txn([], ops)

    def _close_collection(self, cid: int) -> None:
        meta = self.metas.pop(cid)
        held = [s.segment_id for s in self.query.segments(cid)]
        self.query.release(cid)
        with self.lock:
            for ch in meta.channels:
                tail = self.tails.pop(ch, None)
                if tail is not None:
                    tail.close()
        if held:
            self.meta.txn([], [Delete(K.served_key(cid, sid, self.node_id)) for sid in held])

    def _tail(self) -> None:
        with self.lock:
            tails = list(self.tails.values())
            if not tails:
                time.sleep(0.05)
            for tail in tails:
                meta = self.metas.get(tail.cid)
                if meta is None:
                    continue
                pk = meta.collection_schema().primary_field
                assert pk is not None
                tail.poll(pk.dtype == DataType.INT64, pk.name)

    # --- RPC handlers --------------------------------------------------------------------
    def _read_segments(self, args: dict[str, Any]) -> tuple[CollectionMeta, list[SegmentData]]:
        cid = int(args["collection_id"])
        meta = self.metas.get(cid)
        if meta is None:
            raise NotOwnerError(f"query node {self.node_id} serves no segment of {cid}")
        if stale(meta, args):  # a field was added since the last assignment sync
            meta = self.metas[cid] = self.catalog.get(meta.name)
        deadline = time.monotonic() + self.config.max_serviceable_wait_s
        for ch, pos in (args.get("positions") or {}).items():
            tail = self.tails.get(ch)
            if tail is not None:
                tail.wait(int(pos), deadline)
        wanted = set(args["segments"])
        segs = [s for s in self.query.segments(cid) if s.segment_id in wanted]
        return meta, segs

    def _search(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        meta, segs = self._read_segments(args)
        queries = query_matrix(tables["queries"])
        hits = search_table(meta, segs, args, queries, int(args["read_ts"]), per_segment=False)
        return {"served": [s.segment_id for s in segs]}, {"hits": hits}

    def _bm25_stats(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        _, segs = self._read_segments(args)
        dims = table_array(tables["dims"], "d").astype(np.uint32)
        return {"served": [s.segment_id for s in segs]}, {"stats": bm25_stats_table(segs, args,
                                                                                   dims)}

    def _match(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        meta, segs = self._read_segments(args)
        rows = match_table(meta, segs, args, int(args["read_ts"]))
        return {"served": [s.segment_id for s in segs]}, {"rows": rows}

    def _status(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        held = {cid: [s.segment_id for s in self.query.segments(cid)] for cid in self.metas}
        return {"node_id": self.node_id, "segments": held, "backend": self.query.backend()}, {}

    def close(self) -> None:
        self._stop_serving()
        for tail in self.tails.values():
            with contextlib.suppress(GpuvecError):
                tail.close()
        self._close_storage()
