"""The proxy's scatter/gather of one read over a collection's nodes (DESIGN §1, §6).

One read at timestamp R: (1) each streaming node owning a channel of the collection syncs
the channel to R, returns the WAL position it reached and its answer over the growing and
handed-off segments it holds (per segment); (2) the committed sealed segments not already
answered are read from meta and asked of their query nodes, with those positions, so each
node first applies every delete written before R; (3) every committed segment must have
been answered exactly once, else the read is retried (a node moved, a compaction swapped
segments) until ``max_serviceable_wait_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuvec.arrays import one_array, take_columns
from gpuvec.cluster.rpc import ClientPool, Tables
from gpuvec.cluster.sessions import channel_owners, segment_servers, sessions
from gpuvec.cluster.wire import table_array
from gpuvec.coord.catalog import Catalog
from gpuvec.errors import FencedError, UnavailableError
from gpuvec.records import CollectionMeta
from gpuvec.storage.meta.base import MetaStore

_T = TypeVar("_T")


class _Incomplete(Exception):
    pass


@dataclass
class Gathered:
    streaming: list[pa.Table]  # per streaming node: per-segment answers (``_seg`` column)
    sealed: list[pa.Table]  # per query node: one answer over its segments


class Scatter:
    def __init__(self, meta: MetaStore, catalog: Catalog, wait_s: float, cache: Any = None) -> None:
        """``cache``: a watched copy of the ``cluster/`` keys (a
        :class:`~gpuvec.cluster.metacache.MetaCache`) read on first tries; retries read
        meta directly. The committed segment list is always read directly: it is what
        proves a read complete."""
        self.meta, self.catalog, self.wait_s = meta, catalog, wait_s
        self.cache = cache
        self.pool = ClientPool()
        self.executor = ThreadPoolExecutor(32, thread_name_prefix="gpuvec-scatter")
        self._rr = 0

    def address(self, role: str, node: str, live: dict[str, dict[str, Any]]) -> str:
        info = live.get(node)
        if info is None:
            raise _Incomplete(f"{role} {node} has no session")
        return str(info["address"])

    def channel_call(
        self, meta: CollectionMeta, channels: list[str], method: str, args: dict[str, Any],
        tables: Tables | None = None,
    ) -> list[tuple[dict[str, Any], Tables]]:  # fmt: skip
        """Call ``method`` on the owners of ``channels`` (one call per owner), retrying
        while channels move; returns the replies."""
        return self._retry(
            lambda fresh: self._channel_call_once(channels, method, args, tables, fresh),
            f"{method} on collection {meta.name!r}: channels not served",
        )

    def _retry(self, attempt: Callable[[bool], _T], failure: str) -> _T:
        """Run ``attempt(fresh)`` until it succeeds or ``wait_s`` passes; the first try
        may read the cache (``fresh=False``), retries read meta directly."""
        deadline = time.monotonic() + self.wait_s
        fresh = False
        while True:
            try:
                return attempt(fresh)
            except (_Incomplete, FencedError, UnavailableError) as e:
                fresh = True
                if time.monotonic() >= deadline:
                    raise UnavailableError(f"{failure} within {self.wait_s:g} s: {e}") from None
                time.sleep(0.1)

    def _source(self, fresh: bool) -> Any:
        return self.meta if fresh or self.cache is None else self.cache

    def _channel_call_once(
        self,
        channels: list[str],
        method: str,
        args: dict[str, Any],
        tables: Tables | None,
        fresh: bool = True,
    ) -> list[tuple[dict[str, Any], Tables]]:
        src = self._source(fresh)
        owners = channel_owners(src)
        live = sessions(src, "streamingnode")
        by_node: dict[str, list[str]] = {}
        for ch in channels:
            node = owners.get(ch)
            if node is None:
                raise _Incomplete(f"channel {ch} has no streaming node yet")
            by_node.setdefault(self.address("streaming node", node, live), []).append(ch)
        futs = [
            self.executor.submit(
                self.pool.get(addr).call, method, {**args, "channels": chs}, tables
            )
            for addr, chs in by_node.items()
        ]
        return [f.result() for f in futs]

    def gather(
        self,
        meta: CollectionMeta,
        method: str,
        args: dict[str, Any],
        tables: Tables,
        partitions: set[int] | None,
        reply: str,
    ) -> Gathered:
        """One read over the whole collection (see the module docstring)."""
        args = {**args, "partitions": None if partitions is None else sorted(partitions)}
        return self._retry(
            lambda fresh: self._gather_once(meta, method, args, tables, partitions, reply, fresh),
            f"{method} on collection {meta.name!r} could not reach every segment",
        )

    def _gather_once(
        self,
        meta: CollectionMeta,
        method: str,
        args: dict[str, Any],
        tables: Tables,
        partitions: set[int] | None,
        reply: str,
        fresh: bool = True,
    ) -> Gathered:
        streaming = self._channel_call_once(meta.channels, method, args, tables, fresh)
        positions: dict[str, int] = {}
        answered: set[int] = set()
        handed_off: set[int] = set()
        for out, _ in streaming:
            positions.update(out["positions"])
            answered.update(out["served"])
            handed_off.update(out.get("sealed", ()))
        committed = self.catalog.segments(meta.id)
        stale = handed_off - {s.id for s in committed}  # compacted away meanwhile
        answered -= stale
        wanted = [
            s.id
            for s in committed
            if s.id not in answered and (partitions is None or s.partition_id in partitions)
        ]
        sealed: list[pa.Table] = []
        if wanted:
            src = self._source(fresh)
            servers = segment_servers(src, meta.id)
            live = sessions(src, "querynode")
            by_node: dict[str, list[int]] = {}
            self._rr += 1
            for sid in wanted:
                nodes = [n for n in servers.get(sid, []) if n in live]
                if not nodes:
                    raise _Incomplete(f"segment {sid} has no live query node")
                node = nodes[self._rr % len(nodes)]
                by_node.setdefault(self.address("query node", node, live), []).append(sid)
            calls = {
                addr: self.executor.submit(
                    self.pool.get(addr).call,
                    method,
                    {**args, "collection_id": meta.id, "segments": sids, "positions": positions},
                    tables,
                )
                for addr, sids in by_node.items()
            }
            for addr, fut in calls.items():
                out, got = fut.result()
                missing = set(by_node[addr]) - set(out["served"])
                if missing:
                    raise _Incomplete(f"query node {addr} does not hold segments {sorted(missing)}")
                sealed.append(got[reply])
        replies = [t[reply] for _, t in streaming]
        if stale:  # their rows are in the compacted segment a query node answered for
            keep = pa.array(sorted(stale), pa.int64())
            replies = [
                t.filter(pc.invert(pc.is_in(t.column("_seg"), value_set=keep))) for t in replies
            ]
        return Gathered(replies, sealed)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


class RowsSegment:
    """Rows a node returned, with the part of :class:`~gpuvec.query.segdata.SegmentData`'s
    interface the proxy's output-field fetch uses (``pks``, ``take``, ``vectors``)."""

    def __init__(self, table: pa.Table, pk_name: str) -> None:
        self.table = table
        col = one_array(table.column(pk_name))
        self.pks = (
            col.to_numpy() if pa.types.is_integer(col.type) else np.array(col.to_pylist(), object)
        )

    def take(self, rows: np.ndarray, fields: list[str]) -> pa.Table:
        return take_columns(self.table, np.asarray(rows, np.int64), fields)

    def vectors(self, field: str) -> np.ndarray:
        return table_array(self.table, field)
