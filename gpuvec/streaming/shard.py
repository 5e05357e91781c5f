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

Sealing writes each growing segment to a Zarr sealed segment and the deletes seen since the
last seal to a delta log, then commits both and the channel checkpoint in one meta
transaction; the WAL before the checkpoint is then released. Recovery opens the writer
(fencing any older one) and replays the WAL from the checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from zarr.abc.store import Store

from gpuvec import faults
from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog, CollectionMeta, SegmentMeta
from gpuvec.coord.tso import TSO
from gpuvec.query.segdata import SegmentData
from gpuvec.schema import DataType
from gpuvec.storage.objects.deltas import delta_path, write_delta
from gpuvec.storage.objects.segment import write_segment
from gpuvec.storage.wal.base import WAL
from gpuvec.storage.wal.record import Record, RecordKind

_PARTITION = b"gpuvec.partition"


def segment_path(collection_id: int, segment_id: int) -> str:
    return f"collections/{collection_id}/segments/{segment_id}/v1"


def split_columns(
    meta: CollectionMeta, table: pa.Table
) -> tuple[np.ndarray, dict[str, np.ndarray], pa.Table]:
    """(primary keys, vector buffers, the scalar rows kept for output fields)."""
    schema = meta.collection_schema()
    pk = schema.primary_field
    assert pk is not None
    col = table.column(pk.name).combine_chunks()
    pks = col.to_numpy() if pa.types.is_integer(col.type) else np.array(col.to_pylist(), object)
    vectors = {}
    for f in schema.vector_fields:
        arr = table.column(f.name).combine_chunks()
        vectors[f.name] = arr.flatten().to_numpy().reshape(len(arr), f.dim)
    rows = table.drop_columns([f.name for f in schema.vector_fields])
    return pks, vectors, rows


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
        self.dims = {f.name: int(f.dim) for f in schema.vector_fields}  # type: ignore[arg-type]
        self.lock = threading.RLock()
        self.growing: dict[int, SegmentData] = {}
        self._deletes: list[tuple[np.ndarray, int]] = []
        self.serviceable = 0
        self.next_position = 0
        self.delete_position = 0  # WAL position just after the last delete applied
        self.checkpoint = 0
        self.last_write = time.monotonic()
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
            seg = self.growing.get(pid)
            if seg is None:
                sid = self.catalog.allocate_ids()
                # reserve up to the seal size: np.empty only maps pages, they are touched
                # once as rows arrive, and appends never copy the buffers to grow them
                cap = min(self.config.seal_rows, 1 << 21)
                seg = self.growing[pid] = SegmentData(
                    sid, pid, self.dims, self.pk_is_int, capacity=cap
                )
            pks, vectors, rows = split_columns(self.meta, table.replace_schema_metadata(None))
            seg.append(pks, np.full(len(pks), rec.ts_begin, np.uint64), vectors, rows)
        elif rec.kind == RecordKind.DELETE and table is not None:
            col = table.column(self.pk_name).combine_chunks()
            pks = col.to_numpy() if self.pk_is_int else np.array(col.to_pylist(), object)
            for seg in self.growing.values():
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
            recs = self._records(ts, deletes, inserts, partition_id)
            positions = self.writer.append_many([r for r, _ in recs])
            faults.pause("shard.after-wal-append")  # crash tests: logged, not acknowledged
            for pos, (rec, table) in zip(positions, recs, strict=True):
                self._apply(pos, rec, table)
            self.last_write = time.monotonic()
            return ts

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
            if any(s.n for s in self.growing.values()) or self._deletes:
                return False
            if self.next_position - self.checkpoint < self.config.idle_wal_records:
                return False
            self.catalog.set_checkpoint(self.channel, self.next_position)
            self.checkpoint = self.next_position
            self.wal.truncate_before(self.channel, self.checkpoint)
            return True

    # --- sealing ---------------------------------------------------------------------------
    def should_seal(self) -> bool:
        rows = sum(s.n for s in self.growing.values())
        if not rows:
            return False
        nbytes = sum(s.nbytes() for s in self.growing.values())
        idle = time.monotonic() - self.last_write
        return (
            rows >= self.config.seal_rows
            or nbytes >= self.config.seal_bytes
            or idle >= self.config.seal_idle_s
        )

    def seal(self) -> list[SegmentMeta]:
        """Seal every growing segment and the pending deletes; return the new segments."""
        with self.lock:
            segs = [s for s in self.growing.values() if s.n]
            if not segs and not self._deletes:
                return []
            checkpoint = self.next_position
            cid = self.meta.id
            metas = []
            for seg in segs:
                path = segment_path(cid, seg.segment_id)
                rows = seg.table()
                scalars = rows.drop_columns([self.pk_name])
                info = write_segment(
                    self.store,
                    path,
                    pk=seg.pks if self.pk_is_int else pa.array(list(seg.pks)),
                    ts=seg.vis.ins_ts,
                    vectors={f: seg.vectors(f) for f in self.dims},
                    scalars=scalars,
                    checkpoint={self.channel: checkpoint},
                    chunk_rows=self.config.segment_chunk_rows,
                )
                metas.append(
                    SegmentMeta(
                        seg.segment_id,
                        cid,
                        seg.partition_id,
                        self.channel,
                        path,
                        seg.n,
                        info.ts_min,
                        info.ts_max,
                        checkpoint,
                    )
                )
            delta = None
            if self._deletes:
                delta = delta_path(cid, self.channel, checkpoint)
                pks = np.concatenate([p for p, _ in self._deletes])
                tss = np.concatenate([np.full(len(p), t, np.uint64) for p, t in self._deletes])
                write_delta(self.store, delta, pks, tss, self.pk_is_int)
            self.catalog.commit_seal(cid, self.channel, checkpoint, metas, delta)
            self._on_sealed(segs)
            self.growing.clear()
            self._deletes.clear()
            self.checkpoint = checkpoint
            self.wal.truncate_before(self.channel, checkpoint)
            return metas

    def close(self) -> None:
        with self.lock:
            self.writer.close()
