"""The catalog: collections, partitions and sealed segments as records in meta storage.

Its keys are the ``catalog/`` ones of :mod:`gpuvec.storage.meta.keys` (collections,
segments, index builds, delta logs, channel checkpoints, the id allocator); its records
(:class:`~gpuvec.records.CollectionMeta`, :class:`~gpuvec.records.SegmentMeta`) live in
:mod:`gpuvec.records`, which every role may import.

Every change is one compare-and-swap transaction (through the coordinator's leader guard
when one is given), so a failed or concurrent DDL leaves nothing half-applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from gpuvec.errors import (
    CollectionAlreadyExistsError,
    CollectionNotFoundError,
    InvalidArgumentError,
    PartitionNotFoundError,
)
from gpuvec.records import DEFAULT_PARTITION, CollectionMeta, SegmentMeta
from gpuvec.schema import CollectionSchema
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Delete, DeletePrefix, MetaStore, Op, Put, TxnResult

PREFIX = K.CATALOG
MAX_PARTITIONS = 1024

Guard = Callable[[Sequence[Compare], Sequence[Op]], TxnResult]


def _dump(obj: Any) -> bytes:
    return json.dumps(asdict(obj), separators=(",", ":")).encode()


class Catalog:
    def __init__(self, meta: MetaStore, guard: Guard | None = None) -> None:
        self.meta = meta
        self._guard: Guard = guard or (lambda c, s: meta.txn(c, s))

    def txn(self, compare: Sequence[Compare], ops: Sequence[Op]) -> TxnResult:
        """A meta transaction through the catalog's guard (the leader's, when given):
        how the namespace records and anything else of the leader's commit."""
        return self._guard(compare, ops)

    def _commit(self, compare: Sequence[Compare], ops: Sequence[Op], what: str) -> int:
        res = self.txn(compare, ops)
        if not res.succeeded:
            raise InvalidArgumentError(f"{what} raced with another change; retry")
        return res.revision

    def allocate_ids(self, count: int = 1) -> int:
        """Reserve ``count`` ids; return the first."""
        key = K.NEXT_ID
        for _ in range(100):
            kv = self.meta.get(key)
            first = int(kv.value) if kv else 1
            cmp = Compare(key, "mod_revision", "==", kv.mod_revision if kv else 0)
            if self.txn([cmp], [Put(key, str(first + count).encode())]).succeeded:
                return first
        raise InvalidArgumentError("id allocation kept racing; giving up")

    # --- collections -------------------------------------------------------------------------
    @staticmethod
    def _ckey(name: str) -> str:
        return K.collection_key(name)

    collection_key = _ckey  # the record's key, for other modules' compare-and-swap guards

    def get(self, name: str) -> CollectionMeta:
        kv = self.meta.get(self._ckey(name))
        if kv is None:
            raise CollectionNotFoundError(f"collection not found[collection={name}]")
        return CollectionMeta(**json.loads(kv.value))

    def _get_rev(self, name: str) -> tuple[CollectionMeta, int]:
        kv = self.meta.get(self._ckey(name))
        if kv is None:
            raise CollectionNotFoundError(f"collection not found[collection={name}]")
        return CollectionMeta(**json.loads(kv.value)), kv.mod_revision

    def exists(self, name: str) -> bool:
        return self.meta.get(self._ckey(name)) is not None

    def list(self) -> list[CollectionMeta]:
        kvs, _ = self.meta.range(K.COLLECTIONS)
        return [CollectionMeta(**json.loads(kv.value)) for kv in kvs]

    def create(
        self,
        name: str,
        schema: CollectionSchema,
        *,
        num_shards: int,
        consistency_level: str,
        properties: dict[str, Any] | None = None,
        index_params: list[dict[str, Any]] | None = None,
    ) -> CollectionMeta:
        # ``name`` is an engine name: the proxy validated the user's name and qualified it
        # with its database (gpuvec.proxy.names), so only the schema is checked here
        schema.validate()
        if not 1 <= num_shards <= 16:
            raise InvalidArgumentError(f"num_shards must be 1..16, got {num_shards}")
        first = self.allocate_ids(2)
        meta = CollectionMeta(
            id=first,
            name=name,
            schema=schema.to_dict(),
            num_shards=num_shards,
            consistency_level=consistency_level,
            partitions={DEFAULT_PARTITION: first + 1},
            created_ts=int(time.time() * 1000),
            properties=dict(properties or {}),
            index_params=list(index_params or []),
        )
        key = self._ckey(name)
        if not self.txn([Compare(key, "version", "==", 0)], [Put(key, _dump(meta))]).succeeded:
            raise CollectionAlreadyExistsError(f"collection {name!r} already exists")
        return meta

    def update(self, name: str, change: Callable[[CollectionMeta], None]) -> CollectionMeta:
        """Apply ``change`` to the collection record with compare-and-swap."""
        for _ in range(20):
            meta, rev = self._get_rev(name)
            change(meta)
            key = self._ckey(name)
            if self.txn(
                [Compare(key, "mod_revision", "==", rev)], [Put(key, _dump(meta))]
            ).succeeded:
                return meta
        raise InvalidArgumentError(f"update of collection {name!r} kept racing; giving up")

    def drop(self, name: str) -> CollectionMeta:
        meta, rev = self._get_rev(name)
        key = self._ckey(name)
        self._commit(
            [Compare(key, "mod_revision", "==", rev)],
            [
                Delete(key),
                DeletePrefix(K.segments_of(meta.id)),
                DeletePrefix(K.deltas_of(meta.id)),
                DeletePrefix(K.indexes_of(meta.id)),
            ]
            + [Delete(K.checkpoint_key(ch)) for ch in meta.channels],
            f"drop of collection {name!r}",
        )
        return meta

    def rename(
        self, old: str, new: str, compare: Sequence[Compare] = (), ops: Sequence[Op] = ()
    ) -> None:
        """Move the record to ``new``; ``compare``/``ops`` join the same transaction (the
        proxy re-points the collection's aliases with them)."""
        meta, rev = self._get_rev(old)
        meta.name = new
        self._commit(
            [
                Compare(self._ckey(old), "mod_revision", "==", rev),
                Compare(self._ckey(new), "version", "==", 0),
                *compare,
            ],
            [Delete(self._ckey(old)), Put(self._ckey(new), _dump(meta)), *ops],
            f"rename of {old!r} to {new!r} (does {new!r} exist?)",
        )

    def truncate(self, name: str) -> CollectionMeta:
        """Empty a collection in one transaction: the record moves to a fresh collection id
        (so new WAL channels and no segments), keeping name, schema, partitions, indexes,
        properties and load state; the old id's segments, deltas, indexes and checkpoints
        go. Returns the new record (the runtime swaps its shards to it)."""
        meta, rev = self._get_rev(name)
        old = CollectionMeta(**asdict(meta))
        meta.id = self.allocate_ids()
        key = self._ckey(name)
        self._commit(
            [Compare(key, "mod_revision", "==", rev)],
            [
                Put(key, _dump(meta)),
                DeletePrefix(K.segments_of(old.id)),
                DeletePrefix(K.deltas_of(old.id)),
                DeletePrefix(K.indexes_of(old.id)),
            ]
            + [Delete(K.checkpoint_key(ch)) for ch in old.channels],
            f"truncate of collection {name!r}",
        )
        return meta

    # --- partitions --------------------------------------------------------------------------
    def create_partition(self, name: str, partition: str) -> int:
        pid = self.allocate_ids()

        def change(meta: CollectionMeta) -> None:
            if partition in meta.partitions:
                raise InvalidArgumentError(f"partition {partition!r} already exists in {name!r}")
            if len(meta.partitions) >= MAX_PARTITIONS:
                raise InvalidArgumentError(f"collection {name!r} has {MAX_PARTITIONS} partitions")
            meta.partitions[partition] = pid

        self.update(name, change)
        return pid

    def drop_partition(self, name: str, partition: str) -> int:
        if partition == DEFAULT_PARTITION:
            raise InvalidArgumentError("the default partition cannot be dropped")
        dropped: list[int] = []

        def change(meta: CollectionMeta) -> None:
            if partition not in meta.partitions:
                raise PartitionNotFoundError(f"partition not found[partition={partition}]")
            dropped.append(meta.partitions.pop(partition))

        self.update(name, change)
        return dropped[0]

    # --- segments and checkpoints ------------------------------------------------------------
    def segments(self, collection_id: int) -> list[SegmentMeta]:
        kvs, _ = self.meta.range(K.segments_of(collection_id))
        return sorted((SegmentMeta(**json.loads(kv.value)) for kv in kvs), key=lambda s: s.id)

    def commit_seal(
        self,
        collection_id: int,
        channel: str,
        checkpoint: int,
        segments: Sequence[SegmentMeta],
        delta_path: str | None,
    ) -> None:
        """Make a channel's newly sealed segments and delta log visible and move its
        checkpoint, in one transaction (the WAL before ``checkpoint`` is then redundant)."""
        ops: list[Op] = [Put(K.segment_key(collection_id, s.id), _dump(s)) for s in segments]
        if delta_path:
            ops.append(
                Put(
                    K.delta_key(collection_id, channel, checkpoint),
                    delta_path.encode(),
                )
            )
        ops.append(Put(K.checkpoint_key(channel), str(checkpoint).encode()))
        self._commit([], ops, f"seal of channel {channel!r}")

    def commit_compaction(
        self, collection_id: int, old: Sequence[SegmentMeta], new: SegmentMeta | None,
        indexes: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> bool:  # fmt: skip
        """Replace ``old`` segments by ``new`` (None: every row was dropped) in one
        transaction, only if every old segment is still committed (a concurrent compaction
        or drop wins). Their index records go with them; ``new``'s already built indexes
        (``(field, record)``) come with it. Returns whether it committed."""
        keys = [K.segment_key(collection_id, s.id) for s in old]
        ops: list[Op] = [Delete(k) for k in keys]
        ops += [DeletePrefix(K.indexes_of(collection_id, s.id)) for s in old]
        if new is not None:
            ops.append(Put(K.segment_key(collection_id, new.id), _dump(new)))
            ops += [Put(K.index_key(collection_id, new.id, field),
                        json.dumps(record, separators=(",", ":")).encode())
                    for field, record in indexes]  # fmt: skip
        return self.txn([Compare(k, "version", ">", 0) for k in keys], ops).succeeded

    def commit_import(
        self,
        meta: CollectionMeta,
        segments: Sequence[SegmentMeta],
        indexes: Sequence[tuple[int, str, dict[str, Any]]],
        job: tuple[str, bytes],
    ) -> bool:
        """Make a bulk import's segments (and the index builds already done for them)
        visible and record its job as finished, in one transaction: all of it or nothing.
        Only while the collection is still the one imported into (same name and id: a
        dropped or re-created collection gains nothing). Returns whether it committed."""
        ckey = self._ckey(meta.name)
        kv = self.meta.get(ckey)
        if kv is None or CollectionMeta(**json.loads(kv.value)).id != meta.id:
            return False
        ops: list[Op] = [Put(K.segment_key(meta.id, s.id), _dump(s)) for s in segments]
        ops += [Put(K.index_key(meta.id, sid, field), json.dumps(rec, separators=(",", ":"))
                    .encode()) for sid, field, rec in indexes]  # fmt: skip
        ops.append(Put(job[0], job[1]))
        same = Compare(ckey, "create_revision", "==", kv.create_revision)
        return self.txn([same], ops).succeeded

    # --- segment indexes (built by data nodes) ------------------------------------------------
    def commit_index(
        self, collection_id: int, segment_id: int, field: str, record: dict[str, Any]
    ) -> bool:
        """Register a built index file of a segment's field, only while the segment is still
        committed (a compacted-away segment never gains an index). Returns whether it did."""
        seg_key = K.segment_key(collection_id, segment_id)
        key = K.index_key(collection_id, segment_id, field)
        res = self.txn(
            [Compare(seg_key, "version", ">", 0)],
            [Put(key, json.dumps(record, separators=(",", ":")).encode())],
        )
        return res.succeeded

    def segment_indexes(self, collection_id: int) -> dict[tuple[int, str], dict[str, Any]]:
        """``(segment id, field) → index record`` of the collection's built indexes."""
        kvs, _ = self.meta.range(K.indexes_of(collection_id))
        out = {}
        for kv in kvs:
            sid, field_name = kv.key.split("/")[-2:]
            out[(int(sid), field_name)] = json.loads(kv.value)
        return out

    def drop_indexes(self, collection_id: int, field: str | None = None) -> None:
        """Forget the collection's index records (of one field, or all)."""
        if field is None:
            self._commit([], [DeletePrefix(K.indexes_of(collection_id))], "drop index")
            return
        for (sid, f), _ in self.segment_indexes(collection_id).items():
            if f == field:
                self._commit([], [Delete(K.index_key(collection_id, sid, f))], "drop")

    def delta_logs(self, collection_id: int) -> list[str]:
        """Paths of the collection's delta logs, oldest first per channel."""
        kvs, _ = self.meta.range(K.deltas_of(collection_id))
        return [kv.value.decode() for kv in kvs]

    def checkpoint(self, channel: str) -> int:
        kv = self.meta.get(K.checkpoint_key(channel))
        return int(kv.value) if kv else 0

    def set_checkpoint(self, channel: str, position: int) -> None:
        self._commit(
            [],
            [Put(K.checkpoint_key(channel), str(position).encode())],
            f"checkpoint of {channel!r}",
        )
