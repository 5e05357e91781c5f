"""Records every role shares: a collection's and a sealed segment's catalog entries, the
handle the read and write paths pass around, per-segment search hits, the identity of an
index definition, and the rule that routes a primary key to its shard.

This module sits one level above :mod:`gpuvec.schema` and :mod:`gpuvec.errors` and imports
nothing else of gpuvec, so storage, streaming, query, coordinator, data-node, proxy and
client code may all use it. The catalog (:mod:`gpuvec.coord.catalog`) stores these records
in meta storage; their keys are in :mod:`gpuvec.storage.meta.keys`.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuvec.errors import PartitionNotFoundError
from gpuvec.schema import CollectionSchema

DEFAULT_DB = "default"
DEFAULT_PARTITION = "_default"
CONSISTENCY = ("Strong", "Bounded", "Session", "Eventually")
NO_BUILD = ("FLAT", "GPU_BRUTE_FORCE")  # index types searched exactly: nothing to build


# id(schema dict) -> (that dict, its parsed CollectionSchema): CollectionMeta.collection_schema
_SCHEMAS: dict[int, tuple[dict[str, Any], CollectionSchema]] = {}


@dataclass
class CollectionMeta:
    """A collection's catalog record (``catalog/collections/<name>``)."""

    id: int
    name: str
    schema: dict[str, Any]
    num_shards: int
    consistency_level: str
    partitions: dict[str, int]
    created_ts: int
    properties: dict[str, Any] = field(default_factory=dict)
    index_params: list[dict[str, Any]] = field(default_factory=list)
    loaded: bool = False
    # while ``loaded``: None = every partition (also ones created later, as Milvus does
    # after load_collection), else the names passed to load_partitions
    loaded_partitions: list[str] | None = None

    @property
    def channels(self) -> list[str]:
        """The collection's WAL channels, one per shard."""
        return [f"c{self.id}_dml_{i}" for i in range(self.num_shards)]

    def collection_schema(self) -> CollectionSchema:
        """The parsed schema, shared by every record holding the same schema dict (nodes
        ask for it per request; a changed schema is a new dict, so never a stale entry).
        Callers must not mutate it."""
        hit = _SCHEMAS.get(id(self.schema))
        if hit is not None and hit[0] is self.schema:
            return hit[1]
        parsed = CollectionSchema.from_dict(self.schema)
        if len(_SCHEMAS) >= 256:
            _SCHEMAS.pop(next(iter(_SCHEMAS)), None)
        _SCHEMAS[id(self.schema)] = (self.schema, parsed)  # holding the dict pins its id
        return parsed


@dataclass
class SegmentMeta:
    """A committed sealed segment's catalog record (``catalog/segments/<cid>/<sid>``)."""

    id: int
    collection_id: int
    partition_id: int
    channel: str
    path: str
    rows: int
    ts_min: int
    ts_max: int
    checkpoint: int  # WAL position after the last record the segment covers


class CollectionView:
    """A collection as a runtime hands it to the client facade: its catalog record and
    schema (the embedded runtime's :class:`~gpuvec.runtime.embedded.Collection` adds its
    shards)."""

    def __init__(self, meta: CollectionMeta) -> None:
        self.meta = meta
        self.schema = meta.collection_schema()

    def partition_ids(self, names: list[str] | None) -> set[int] | None:
        """The ids of the named partitions (None: no restriction); an unknown name raises
        ``PartitionNotFoundError`` with Milvus's wording."""
        if not names:
            return None
        out = set()
        for p in names:
            if p not in self.meta.partitions:
                raise PartitionNotFoundError(f"partition not found[partition={p}]")
            out.add(self.meta.partitions[p])
        return out


@dataclass
class Hits:
    """Per-query best rows of one segment: distances and row offsets ([nq, k], -1 = none)."""

    distances: np.ndarray
    rows: np.ndarray


def is_scalar_index(definition: dict[str, Any]) -> bool:
    """Whether an index definition is a scalar index (those have no metric)."""
    return not definition.get("metric_type")


def index_id(definition: dict[str, Any]) -> str:
    """A stable id of an index definition: another type, metric or params → another id."""
    keep = {k: definition.get(k) for k in ("field_name", "index_type", "metric_type", "params")}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def shard_of(pks: np.ndarray, num_shards: int) -> np.ndarray:
    """Shard index of each primary key (int64 keys: Fibonacci hash; strings: CRC32)."""
    if num_shards == 1:
        return np.zeros(len(pks), np.int64)
    if pks.dtype.kind in "iu":
        with np.errstate(over="ignore"):
            h = pks.astype(np.uint64) * _GOLDEN
        return ((h >> np.uint64(33)) % np.uint64(num_shards)).astype(np.int64)
    return np.fromiter(
        (zlib.crc32(str(p).encode()) % num_shards for p in pks), np.int64, count=len(pks)
    )
