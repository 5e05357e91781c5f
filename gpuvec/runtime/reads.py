"""The read path of the embedded runtime (a base class of
:class:`gpuvec.runtime.embedded.Engine`): the timestamp a read runs at for each
consistency level, the segments a read sees (sealed and growing, taken under the shard
locks), and search — BM25 included —, filter match, primary-key lookup and row counts
over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gpuvec.coord.tso import compose, now_ts, physical_ms
from gpuvec.errors import CollectionNotLoadedError, InvalidArgumentError
from gpuvec.proxy.filters import CompiledFilter
from gpuvec.proxy.reduce import reduce_hits
from gpuvec.query.bm25 import bm25_params, weighted_queries
from gpuvec.query.fanout import map_segments
from gpuvec.query.segdata import SegmentData, visible_matches, visible_rows_of
from gpuvec.records import CONSISTENCY

if TYPE_CHECKING:
    from gpuvec.runtime.embedded import Collection

__all__ = ["ReadMethods"]


class ReadMethods:
    config: Any
    tso: Any
    query: Any

    def read_ts(self, coll: Collection, level: str | None, session_ts: int) -> int:
        """The timestamp a read runs at, once every shard is serviceable there.

        Each level sets a guarantee timestamp G (Strong: fresh TSO; Session: the client's
        last write; Bounded: now − staleness; Eventually: 1). Embedded shards apply every
        write before acknowledging it, so a shard can be made serviceable at a fresh
        timestamp at once (``Shard.sync``); the read runs there, which satisfies any G."""
        level = level or coll.meta.consistency_level
        if level not in CONSISTENCY:
            raise InvalidArgumentError(f"consistency_level must be one of {CONSISTENCY}: {level!r}")
        if level == "Session":
            guarantee = session_ts
        elif level == "Bounded":
            guarantee = compose(max(0, physical_ms(now_ts()) - self.config.bounded_staleness_ms))
        elif level == "Eventually":
            guarantee = 1
        else:  # Strong: the read timestamp itself is fresh, so it is its own guarantee
            guarantee = 0
        read = self.tso.allocate()
        if guarantee > read:  # only a caller's guarantee_timestamp can be ahead of the TSO
            raise InvalidArgumentError(
                f"guarantee_timestamp {guarantee} is ahead of the timestamp oracle ({read})"
            )
        for shard in coll.shards:
            shard.sync(read)
        return read

    def segments(self, coll: Collection, partitions: set[int] | None) -> list[SegmentData]:
        """Growing and sealed segments of the given (default: all live) partitions; rows of
        dropped partitions are never served. Taken under the shard locks, so a seal (growing
        → sealed) or a compaction swap is seen wholly or not at all: no segment missing,
        none twice."""
        if partitions is None:
            partitions = set(coll.meta.partitions.values())
        if not self.query.loaded(coll.meta.id):
            raise CollectionNotLoadedError(f"collection not loaded[collection={coll.meta.name}]")
        return self._all_segments(coll, partitions)

    def _all_segments(self, coll: Collection, partitions: set[int]) -> list[SegmentData]:
        with coll.locked():
            segs = self.query.segments(coll.meta.id, partitions)
            for shard in coll.shards:
                segs += [s for s in shard.growing.values() if s.n and s.partition_id in partitions]
        return segs

    def search(
        self,
        coll: Collection,
        field: str,
        queries: np.ndarray,
        k: int,
        metric: str,
        partitions: set[int] | None,
        read_ts: int,
        flt: CompiledFilter | None = None,
        search_params: dict[str, Any] | None = None,
        columns: tuple[str, ...] = (),
    ) -> tuple[list[SegmentData], np.ndarray, np.ndarray, np.ndarray]:
        """Top-k over every served segment; a filter restricts the brute force exactly
        (a pre-filter: rows outside it are never candidates)."""
        segs = self.segments(coll, partitions)
        if not segs:
            nq = len(queries)
            empty = -np.ones((nq, k), np.int64)
            return segs, np.zeros((nq, k), np.float32), empty, empty
        if metric == "BM25":  # the collection's statistics weight the query terms
            k1, b = bm25_params(coll.meta.index_params, field)
            queries, extra = weighted_queries(segs, field, queries, read_ts, k1, b)
            search_params = {**(search_params or {}), **extra}
        masks = [None if flt is None else s.filter_mask(flt.filter, flt.key) for s in segs]
        key = None if flt is None else flt.key
        parts = map_segments(
            lambda i: segs[i].search(field, queries, k, metric, read_ts, masks[i],
                                     search_params, key),
            len(segs), lambda i: segs[i].search_work(field, len(queries)), len(queries),
        )  # fmt: skip
        dist, seg, row = reduce_hits(parts, k, metric)
        return segs, dist, seg, row

    def match(
        self,
        coll: Collection,
        flt: CompiledFilter | None,
        partitions: set[int] | None,
        read_ts: int,
        columns: tuple[str, ...] = (),
    ) -> list[tuple[SegmentData, np.ndarray]]:
        """Rows visible at ``read_ts`` that match the filter (all visible rows for None),
        per segment; a ``pk in [...]`` filter takes the point-lookup path."""
        if flt is not None:
            keys = flt.filter.pk_values()
            if keys is not None:
                if not keys:
                    return []
                pks = np.array(keys, object) if isinstance(keys[0], str) else np.asarray(keys)
                return self.lookup(coll, pks, partitions, read_ts)
        segs = self.segments(coll, partitions)
        if flt is None:
            return visible_matches(segs, None, None, read_ts)
        return visible_matches(segs, flt.filter, flt.key, read_ts)

    def lookup(
        self,
        coll: Collection,
        pks: np.ndarray,
        partitions: set[int] | None,
        read_ts: int,
        columns: tuple[str, ...] = (),
    ) -> list[tuple[SegmentData, np.ndarray]]:
        """Visible rows with the given primary keys, per segment."""
        return visible_rows_of(self.segments(coll, partitions), pks, read_ts)

    def row_count(self, coll: Collection, partition_ids: set[int]) -> int:
        """Live rows of the given partitions over served sealed and growing segments."""
        return sum(s.vis.live_count() for s in self._all_segments(coll, partition_ids))
