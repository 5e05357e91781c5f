"""``gpuvec streamingnode``: the streaming node process (DESIGN §1, §3).

It owns the WAL channels the coordinator binds to it (``cluster/channels/<ch>``): for each
it runs the same :class:`~gpuvec.streaming.shard.Shard` as the embedded runtime, over the
Kafka WAL, the coordinator's TSO and the catalog (whose writes the coordinator commits,
guarded by this node still owning the channel). Taking a channel over opens its Kafka
transactional writer — fencing the previous owner — and replays the channel from the
checkpoint in etcd. Time ticks, sealing and idle-WAL release run as in the embedded
runtime.

Sealed segments stay served here (*handoff*) until a query node reports it serves them
(``cluster/served/<cid>/<sid>/<node>``), so searches never miss them; the proxy takes each
segment from one holder only, so they are never counted twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpuvec.cluster.coordclient import CoordinatorClient, RemoteTSO
from gpuvec.cluster.rpc import Tables
from gpuvec.cluster.serving import bm25_stats_table, match_table, search_table, stale
from gpuvec.cluster.sessions import CHANNELS, channel_owners
from gpuvec.cluster.settings import ClusterSettings
from gpuvec.cluster.wire import query_matrix, table_array
from gpuvec.cluster.worker import WorkerNode
from gpuvec.coord.catalog import Catalog
from gpuvec.errors import NotOwnerError
from gpuvec.query.segdata import SegmentData
from gpuvec.records import CollectionMeta
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Op, TxnResult
from gpuvec.streaming.shard import Shard

log = logging.getLogger("gpuvec.streamingnode")
SERVED = K.SERVED
_CHANNEL = re.compile(r"^c(\d+)_dml_(\d+)$")


def channel_collection(channel: str) -> int:
    m = _CHANNEL.match(channel)
    if m is None:
        raise ValueError(f"not a collection channel: {channel!r}")
    return int(m.group(1))


class StreamingNode(WorkerNode):
    role = "streamingnode"

    def __init__(
        self,
        settings: ClusterSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise: str | None = None,
    ) -> None:
        self._open_node(settings)
        self.coord = CoordinatorClient(self.meta)
        self.tso = RemoteTSO(self.coord)
        self.catalog = Catalog(self.meta, guard=self.coord.guard)
        self.shards: dict[str, Shard] = {}
        self.handoff: dict[str, dict[int, SegmentData]] = {}
        self._serve(
            {"write": self._write, "search": self._search, "match": self._match,
             "bm25_stats": self._bm25_stats, "seal": self._seal, "status": self._status},
            [(self._sync_assignments, 0.25, "gpuvec-sn-assign"),
             (self._tick, self.config.time_tick_ms / 1000.0, "gpuvec-sn-tick"),
             (self._maintain, 1.0, "gpuvec-sn-seal")],
            host, port, advertise,
        )  # fmt: skip

    # --- channel ownership ---------------------------------------------------------------
    def _owner_guard(self, channel: str) -> Any:
        """Catalog writes of a shard commit only while this node still owns its channel."""
        own = Compare(CHANNELS + channel, "value", "==", self.node_id.encode())

        def guard(
            compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
        ) -> TxnResult:
            return self.coord.guard([own, *compare], success, failure)

        return guard

    def _sync_assignments(self) -> None:
        owners = channel_owners(self.meta)
        mine = sorted(ch for ch, node in owners.items() if node == self.node_id)
        metas = {m.id: m for m in self.catalog.list()}
        for ch in list(self.shards):
            cid = channel_collection(ch)
            if ch not in mine or cid not in metas:
                self._drop(ch, dropped=cid not in metas)
        for ch in mine:
            cid = channel_collection(ch)
            meta = metas.get(cid)
            if meta is None:
                continue
            if ch in self.shards:
                self.shards[ch].meta = meta
                continue
            log.info("taking over channel %s", ch)
            shard = Shard(
                meta,
                ch,
                wal=self.wal,
                tso=self.tso,
                catalog=Catalog(self.meta, guard=self._owner_guard(ch)),
                store=self.store,
                config=self.config,
                on_sealed=lambda segs, ch=ch: self._sealed(ch, segs),
                on_delete=lambda pks, ts, ch=ch: self._deleted(ch, pks, ts),
            )
            with self.lock:
                self.shards[ch] = shard
                self.handoff.setdefault(ch, {})

    def _drop(self, channel: str, dropped: bool) -> None:
        with self.lock:
            shard = self.shards.pop(channel, None)
            self.handoff.pop(channel, None)
        if shard is not None:
            log.info("releasing channel %s", channel)
            shard.close()
            if dropped:
                try:
                    self.wal.drop_channel(channel)
                except Exception as e:  # already gone, or the broker is away
                    log.debug("dropping channel %s: %s", channel, e)

    def _shard(self, channel: str) -> Shard:
        shard = self.shards.get(channel)
        if shard is None:
            raise NotOwnerError(f"streaming node {self.node_id} does not own channel {channel}")
        return shard

    # --- handoff to query nodes -----------------------------------------------------------
    def _sealed(self, channel: str, segs: list[SegmentData]) -> None:
        with self.lock:
            held = self.handoff.setdefault(channel, {})
            for seg in segs:
                seg.sealed = True
                held[seg.segment_id] = seg

    def _deleted(self, channel: str, pks: np.ndarray, ts: int) -> None:
        for seg in list(self.handoff.get(channel, {}).values()):
            seg.delete(pks, ts)

    def _release_handoff(self) -> None:
        """Forget sealed segments a query node now serves, or that nobody will load."""
        for ch, held in list(self.handoff.items()):
            if not held:
                continue
            shard = self.shards.get(ch)
            loaded = shard is not None and shard.meta.loaded
            cid = channel_collection(ch)
            served: set[int] = set()
            committed: set[int] = set()
            if loaded:
                kvs, _ = self.meta.range(K.served_of(cid))
                served = {int(kv.key.split("/")[-2]) for kv in kvs}
                committed = {s.id for s in self.catalog.segments(cid)}
            with self.lock:
                for sid in list(held):  # served elsewhere, or compacted away
                    if not loaded or sid in served or sid not in committed:
                        del held[sid]

    # --- background work -----------------------------------------------------------------
    def _tick(self) -> None:
        for shard in list(self.shards.values()):
            shard.tick()

    def _maintain(self) -> None:
        for shard in list(self.shards.values()):
            if shard.should_seal():
                shard.seal()
            else:
                shard.release_idle_wal()
        self._release_handoff()

    # --- RPC handlers --------------------------------------------------------------------
    def _write(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        (channel,) = args["channels"]  # the proxy sends each shard's part on its own
        shard = self._shard(channel)
        ts = shard.write(
            inserts=tables.get("inserts"),
            deletes=tables.get("deletes"),
            partition_id=int(args["partition_id"]),
        )
        return {"ts": ts}, {}

    def _segments(self, args: dict[str, Any]) -> tuple[CollectionMeta, list[SegmentData], dict]:
        """Sync every requested channel to the read timestamp; its growing and handoff
        segments in the requested partitions; per channel, the WAL position just after
        the last delete at or before the read (query nodes must have read that far: only
        deletes change what they serve)."""
        read_ts, parts = int(args["read_ts"]), args.get("partitions")
        segs, positions, meta = [], {}, None
        for ch in args["channels"]:
            shard = self._shard(ch)
            meta = shard.meta
            with shard.lock:
                shard.sync(read_ts)
                positions[ch] = shard.delete_position
                held = [s for s in shard.growing.values() if s.n]
                held += list(self.handoff.get(ch, {}).values())
            segs += [s for s in held if parts is None or s.partition_id in parts]
        assert meta is not None
        if stale(meta, args):  # a field was added since the last channel sync
            meta = self.catalog.get(meta.name)
            for ch in args["channels"]:
                self._shard(ch).meta = meta
        return meta, segs, positions

    def _search(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        meta, segs, positions = self._segments(args)
        queries = query_matrix(tables["queries"])
        hits = search_table(meta, segs, args, queries, int(args["read_ts"]), per_segment=True)
        return self._reply(segs, positions), {"hits": hits}

    def _bm25_stats(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        _, segs, positions = self._segments(args)
        dims = table_array(tables["dims"], "d").astype(np.uint32)
        return self._reply(segs, positions), {"stats": bm25_stats_table(segs, args, dims)}

    def _match(self, args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
        meta, segs, positions = self._segments(args)
        rows = match_table(meta, segs, args, int(args["read_ts"]))
        return self._reply(segs, positions), {"rows": rows}

    @staticmethod
    def _reply(segs: list[SegmentData], positions: dict[str, int]) -> dict[str, Any]:
        """Which segments were answered, and which of them are sealed (handed off): the
        proxy keeps a sealed one only while it is still committed (not compacted away)."""
        return {
            "positions": positions,
            "served": [s.segment_id for s in segs],
            "sealed": [s.segment_id for s in segs if s.sealed],
        }

    def _seal(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        n = 0
        for ch in args["channels"]:
            n += len(self._shard(ch).seal())
        return {"sealed": n}, {}

    def _status(self, args: dict[str, Any], _: Tables) -> tuple[dict[str, Any], Tables]:
        return {
            "node_id": self.node_id,
            "channels": sorted(self.shards),
            "handoff": {ch: sorted(h) for ch, h in self.handoff.items()},
        }, {}

    def close(self) -> None:
        self._stop_serving()
        for ch in list(self.shards):
            self._drop(ch, dropped=False)
        self._close_storage()
