"""One shard's streaming node: the single writer of a collection's WAL channel.

Under the shard lock a write takes a timestamp from the TSO, is appended to the WAL (an
upsert's delete and insert in one atomic batch at one timestamp), applied to the growing
segment of its partition, and acknowledged; the shard's *serviceable timestamp* is then
at least that timestamp. Because every write of the channel passes this lock in timestamp
order, :meth:`Shard.sync` can raise the serviceable timestamp to any freshly allocated
timestamp (what a Strong read waits for) without a WAL round trip — in-process readers
use that; readers of the channel in other processes advance on time ticks: the engine
calls :meth:`Shard.tick` every ``time_tick_ms``, which appends ``TimeTick(T)`` at a fresh
timestamp, so every record before it has a smaller timestamp (DESIGN §3).

Sealing writes the growing segments to Zarr sealed segments and the deletes seen since the
last seal to a delta log, then commits both and the channel checkpoint in one meta
transaction; the WAL before the checkpoint is then released. It runs in three phases, so
writers and readers wait on the shard lock only for the two short ones, never for the
object-store write:

1. *Plan* (shard lock): the checkpoint is the next WAL position; every growing segment and
   every pending delete is *frozen* — they hold exactly the records before the checkpoint.
   New inserts go to fresh growing segments (a frozen one gets no more rows).
2. *Write* (no shard lock): the frozen segments and deletes are written to object storage.
   Paths are deterministic; a retry reuses a segment an earlier attempt committed to the
   store, or removes a partial one first.
3. *Commit and swap* (shard lock): the catalog transaction (segments, delta log,
   checkpoint), then ``on_sealed`` hands the segments to the query node, they leave
   ``growing``, the frozen deletes leave the pending list, ``checkpoint`` moves, and only
   then is the WAL before it truncated.

Invariants, as seen by a reader holding the shard lock: ``growing`` holds every segment
not yet handed over — the frozen ones too, until the swap — so no row disappears from
reads and none is served twice (the swap is atomic under the lock); ``_deletes``
(:meth:`Shard.pending_deletes`) holds every delete not yet in a committed delta log. A
delete that arrives while a seal writes is applied at once to every growing segment,
frozen ones included (readers stop seeing the rows), and to the sealed ones
(``on_delete``); it follows the checkpoint, so it stays pending for the *next* delta log
(and in the WAL, which replays it after a restart).

One seal runs at a time per shard (the seal lock, always taken *before* the shard lock;
never call :meth:`Shard.seal` holding the shard lock); a second caller waits, then seals
what was written meanwhile. If the write or the commit fails, nothing changes state: the
frozen segments stay in ``growing`` and the deletes in the pending list, writes go on, and
the next seal retries them. Recovery opens the writer (fencing any older one) and replays
the WAL from the checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from zarr.abc.store import Store

from gpuvec import faults
from gpuvec import vectors as vk
from gpuvec.arrays import one_array
from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog, CollectionMeta, SegmentMeta
from gpuvec.coord.tso import TSO
from gpuvec.errors import GpuvecError
from gpuvec.query.segdata import SegmentData
from gpuvec.schema import DataType
from gpuvec.storage.objects.deltas import write_delta
from gpuvec.storage.objects.paths import delta_path, segment_path
from gpuvec.storage.objects.segment import (
    SegmentInfo,
    SegmentReader,
    segment_columns,
    write_segment,
)
from gpuvec.storage.objects.stores import delete_prefix, exists
from gpuvec.storage.wal.base import WAL
from gpuvec.storage.wal.record import Record, RecordKind
from gpuvec.streaming.pkset import ChannelKeys

log = logging.getLogger(__name__)
_PARTITION = b"gpuvec.partition"


@dataclass
class _SealPlan:
    """What one seal covers, fixed under the shard lock in phase 1."""

    checkpoint: int  # WAL position: every record before it is in the frozen state
    frozen: list[SegmentData]  # every growing segment at the plan (sealed: those with rows)
    deletes: list[tuple[np.ndarray, int]]  # the pending deletes at the plan (a prefix)


class Shard:
    def __init__(
        self,
        meta: CollectionMeta,
        channel: str,
        *,
        wal: WAL,
        tso: TSO,
        catalog: Catalog,
        store: Store,
        config: Config,
        on_sealed: Callable[[list[SegmentData]], None],
        on_delete: Callable[[np.ndarray, int], None],
    ) -> None:
        self.meta, self.channel = meta, channel
        self.wal, self.tso, self.catalog, self.store, self.config = wal, tso, catalog, store, config
        self._on_sealed, self._on_delete = on_sealed, on_delete
        schema = meta.collection_schema()
        pk = schema.primary_field
        assert pk is not None
        self.pk_name, self.pk_is_int = pk.name, pk.dtype == DataType.INT64
        self.dims, self.dtypes = vk.layout(schema)
        self.lock = threading.RLock()
        self._seal_lock = threading.Lock()  # one seal at a time; taken before ``lock``
        # every segment not yet handed to the query node, by segment id: the ones receiving
        # rows and the frozen ones a seal is writing (or failed to write)
        self.growing: dict[int, SegmentData] = {}
        self._active: dict[int, SegmentData] = {}  # partition id → segment receiving rows
        self._deletes: list[tuple[np.ndarray, int]] = []  # not yet in a committed delta log
        self._sealing: _SealPlan | None = None  # the seal between plan and swap
        self._closed = False
        self.serviceable = 0
        self.next_position = 0
        self.delete_position = 0  # WAL position just after the last delete applied
        self.checkpoint = 0
        self.last_write = time.monotonic()
        # every key of the channel: an insert of one that exists deletes the old row
        self.keys = ChannelKeys(self.pk_is_int, self._sealed_segments, self._segment_keys)
        wal.create_channel(channel)
        self.writer = wal.writer(channel)  # fences any older writer, recovers the tail
        self._replay()

    # --- recovery ------------------------------------------------------------------------
    def _replay(self) -> None:
        """Apply the channel from the checkpoint to its end. The end is marked by a time
        tick appended now by this (fencing) writer: once it is read back, every record
        committed before it has been applied — a remote WAL (Kafka) may deliver nothing
        on the first polls, so an empty poll does not mean the end."""
        start = max(self.catalog.checkpoint(self.channel), self.wal.low_watermark(self.channel))
        self.next_position = self.checkpoint = start
        ts = self.tso.allocate()
        end = self.writer.append(Record(RecordKind.TIME_TICK, self.channel, ts, ts))
        reader = self.wal.reader(self.channel, start)
        try:
            while self.next_position <= end:
                for pos, rec in reader.poll(timeout=1.0, max_records=256):
                    self._apply(pos, rec, rec.table() if rec.payload else None)
        finally:
            reader.close()

    def _apply(self, pos: int, rec: Record, table: pa.Table | None) -> None:
        if rec.kind == RecordKind.INSERT and table is not None:
            pid = int((table.schema.metadata or {}).get(_PARTITION, b"0"))
            seg = self._active.get(pid)
            if seg is None:  # the first rows of the partition since the last seal's plan
                sid = self.catalog.allocate_ids()
                # reserve up to the seal size: np.empty only maps pages, they are touched
                # once as rows arrive, and appends never copy the buffers to grow them
                cap = min(self.config.seal_rows, 1 << 21)
                seg = SegmentData(sid, pid, self.dims, self.pk_is_int, capacity=cap,
                                  vector_dtypes=self.dtypes)  # fmt: skip
                self._active[pid] = self.growing[sid] = seg
            pks, vectors, rows = segment_columns(
                self.meta.collection_schema(), table.replace_schema_metadata(None)
            )
            seg.append(pks, np.full(len(pks), rec.ts_begin, np.uint64), vectors, rows)
            self.keys.add(pks)
        elif rec.kind == RecordKind.DELETE and table is not None:
            col = one_array(table.column(self.pk_name))
            pks = col.to_numpy() if self.pk_is_int else np.array(col.to_pylist(), object)
            for seg in self.growing.values():  # frozen ones too: reads see them until the swap
                seg.delete(pks, rec.ts_begin)
            self._on_delete(pks, rec.ts_begin)
            self._deletes.append((pks, rec.ts_begin))
            self.delete_position = pos + 1
        self.next_position = pos + 1
        self.serviceable = max(self.serviceable, rec.ts_end)

    # --- writes ----------------------------------------------------------------------------
    def _records(
        self, ts: int, deletes: pa.Table | None, inserts: pa.Table | None, partition_id: int
    ) -> list[tuple[Record, pa.Table]]:
        """WAL records for one write; large inserts are split into several records (all in
        one atomic append) so each stays well under the WAL's record size limit."""
        out = []
        if deletes is not None:
            out.append(
                (Record.from_arrow(RecordKind.DELETE, self.channel, ts, ts, deletes), deletes)
            )
        if inserts is not None and inserts.num_rows:
            tagged = inserts.replace_schema_metadata({_PARTITION: str(partition_id).encode()})
            per_row = max(1, tagged.nbytes // tagged.num_rows)
            step = max(1, (self.wal.max_record_bytes // 2) // per_row)
            for start in range(0, tagged.num_rows, step):
                part = tagged.slice(start, step)
                out.append((Record.from_arrow(RecordKind.INSERT, self.channel, ts, ts, part), part))
        return out

    def write(
        self,
        *,
        inserts: pa.Table | None = None,
        deletes: pa.Table | None = None,
        partition_id: int = 0,
        ts: int | None = None,
    ) -> int:
        """Append and apply deletes then inserts at one timestamp; return it. ``ts``: a
        timestamp the caller allocated while holding this shard's lock (a write spanning
        shards), so the channel's records stay in timestamp order."""
        with self.lock:
            ts = self.tso.allocate() if ts is None else ts
            if deletes is None and inserts is not None and inserts.num_rows:
                deletes = self._replaced(inserts)  # keys written before: the newest wins
            recs = self._records(ts, deletes, inserts, partition_id)
            positions = self.writer.append_many([r for r, _ in recs])
            faults.pause("shard.after-wal-append")  # crash tests: logged, not acknowledged
            for pos, (rec, table) in zip(positions, recs, strict=True):
                self._apply(pos, rec, table)
            self.last_write = time.monotonic()
            return ts

    def _replaced(self, inserts: pa.Table) -> pa.Table | None:
        """The inserted keys the channel already holds, as a delete table (None: none)."""
        col = one_array(inserts.column(self.pk_name))
        pks = col.to_numpy() if self.pk_is_int else np.array(col.to_pylist(), object)
        old = self.keys.existing(pks)
        if not len(old):
            return None
        arr = pa.array(old, pa.int64()) if self.pk_is_int else pa.array(list(old), pa.string())
        return pa.table({self.pk_name: arr})

    def _sealed_segments(self) -> list[SegmentMeta]:
        return [s for s in self.catalog.segments(self.meta.id) if s.channel == self.channel]

    def _segment_keys(self, seg: SegmentMeta) -> np.ndarray:
        pks = SegmentReader(self.store, seg.path).pk()
        return pks if isinstance(pks, np.ndarray) else np.array(pks.to_pylist(), object)

    def sync(self, ts: int) -> int:
        """Make the shard serviceable at ``ts`` (every earlier write is applied)."""
        with self.lock:
            self.serviceable = max(self.serviceable, ts)
            return self.serviceable

    def tick(self) -> int:
        """Append a TimeTick at a fresh timestamp (all earlier records of the channel have
        smaller ones) and make the shard serviceable there; return the timestamp."""
        with self.lock:
            ts = self.tso.allocate()
            pos = self.writer.append(Record(RecordKind.TIME_TICK, self.channel, ts, ts))
            self.next_position = pos + 1
            self.serviceable = max(self.serviceable, ts)
            return ts

    def release_idle_wal(self) -> bool:
        """With nothing unsealed, only ticks follow the checkpoint: once there are
        ``idle_wal_records`` of them, move the checkpoint past them and release that WAL
        (an idle channel's log stays bounded). Returns whether it did."""
        with self.lock:
            if self._sealing is not None:  # a seal moves the checkpoint itself
                return False
            if any(s.n for s in self.growing.values()) or self._deletes:
                return False
            if self.next_position - self.checkpoint < self.config.idle_wal_records:
                return False
            self.catalog.set_checkpoint(self.channel, self.next_position)
            self.checkpoint = self.next_position
            self.wal.truncate_before(self.channel, self.checkpoint)
            return True

    # --- sealing ---------------------------------------------------------------------------
    def pending_deletes(self) -> list[tuple[np.ndarray, int]]:
        """A copy of the deletes not yet in a committed delta log, as ``(primary keys,
        timestamp)`` batches in WAL order: those a running seal is writing and those that
        arrived after its checkpoint. Whoever loads sealed segments (from the catalog and
        its delta logs) applies these too; call it under the shard lock to keep a seal's
        swap from landing in between."""
        with self.lock:
            return list(self._deletes)

    def should_seal(self) -> bool:
        with self.lock:
            if self._sealing is not None:  # a seal is writing: it took every row so far
                return False
            segs = list(self.growing.values())
            rows = sum(s.n for s in segs)
            if not rows:
                return False
            nbytes = sum(s.nbytes() for s in segs)
            idle = time.monotonic() - self.last_write
        return (
            rows >= self.config.seal_rows
            or nbytes >= self.config.seal_bytes
            or idle >= self.config.seal_idle_s
        )

    def seal(self) -> list[SegmentMeta]:
        """Seal every growing segment and the pending deletes; return the new segments.
        Waits for a seal already running, then seals what was written meanwhile."""
        with self._seal_lock:
            plan = self._plan()
            if plan is None:
                return []
            try:
                metas, delta = self._write(plan)
                with self.lock:
                    self.catalog.commit_seal(
                        self.meta.id, self.channel, plan.checkpoint, metas, delta
                    )
                    self.keys.mark_known(m.id for m in metas)  # their keys went through add
                    self._swap(plan)
            except BaseException:
                with self.lock:  # nothing was swapped: the frozen state stays pending
                    self._sealing = None
                raise
            return metas

    def _plan(self) -> _SealPlan | None:
        """Phase 1, under the shard lock: freeze the growing segments and pending deletes
        at the checkpoint; new inserts go to fresh segments from here on."""
        with self.lock:
            if self._closed or not (any(s.n for s in self.growing.values()) or self._deletes):
                return None
            plan = _SealPlan(self.next_position, list(self.growing.values()), list(self._deletes))
            self._active.clear()
            self._sealing = plan
            return plan

    def _write(self, plan: _SealPlan) -> tuple[list[SegmentMeta], str | None]:
        """Phase 2, without the shard lock: write the frozen segments and deletes. Frozen
        segments get no appends, only deletes (which touch neither their rows nor insert
        timestamps), so what is read here is stable."""
        cid, checkpoint = self.meta.id, plan.checkpoint
        metas = []
        for seg in plan.frozen:
            n = seg.n
            if not n:
                continue
            path = segment_path(cid, seg.segment_id)
            info = self._write_segment(seg, path, checkpoint)
            metas.append(
                SegmentMeta(
                    seg.segment_id,
                    cid,
                    seg.partition_id,
                    self.channel,
                    path,
                    n,
                    info.ts_min,
                    info.ts_max,
                    checkpoint,
                )
            )
        delta = None
        if plan.deletes:
            delta = delta_path(cid, self.channel, checkpoint)
            pks = np.concatenate([p for p, _ in plan.deletes])
            tss = np.concatenate([np.full(len(p), t, np.uint64) for p, t in plan.deletes])
            write_delta(self.store, delta, pks, tss, self.pk_is_int)
        return metas, delta

    def _write_segment(self, seg: SegmentData, path: str, checkpoint: int) -> SegmentInfo:
        if exists(self.store, f"{path}/zarr.json"):  # an earlier attempt of a failed seal
            try:
                info = SegmentReader(self.store, path).info
                # complete: the frozen rows never change (its checkpoint attr is the
                # earlier attempt's; the catalog records this seal's)
                if info.row_count == seg.n:
                    return info
            except GpuvecError:
                pass
            delete_prefix(self.store, path)  # an interrupted write
        n = seg.n
        scalars = seg.table().slice(0, n).drop_columns([self.pk_name])
        return write_segment(
            self.store,
            path,
            pk=seg.pks if self.pk_is_int else pa.array(list(seg.pks)),
            ts=seg.vis.ins_ts,
            vectors={f: seg.vectors(f) for f in self.dims},
            scalars=scalars,
            checkpoint={self.channel: checkpoint},
            chunk_rows=self.config.segment_chunk_rows,
        )

    def _swap(self, plan: _SealPlan) -> None:
        """Phase 3, under the shard lock, once the catalog committed the seal: hand the
        segments over, drop the frozen state, move the checkpoint, release the WAL."""
        self._on_sealed([s for s in plan.frozen if s.n])
        for seg in plan.frozen:
            self.growing.pop(seg.segment_id, None)
        del self._deletes[: len(plan.deletes)]  # later deletes stay for the next delta log
        self.checkpoint = max(self.checkpoint, plan.checkpoint)
        self._sealing = None
        try:
            self.wal.truncate_before(self.channel, plan.checkpoint)
        except Exception as e:  # retention only: the next seal or release truncates again
            log.warning("truncating WAL channel %s failed: %s", self.channel, e)

    def close(self) -> None:
        with self._seal_lock, self.lock:  # after a running seal (the lock order of seal)
            self._closed = True
            self.writer.close()
