"""The proxy's scatter/gather of one read over a collection's nodes (DESIGN §1, §6).

One read at timestamp R: (1) each streaming node owning a channel of the collection syncs
the channel to R, returns the WAL position it reached and its answer over the growing and
handed-off segments it holds (per segment); (2) the committed sealed segments not already
answered are read from meta and asked of their query nodes, with those positions, so each
node first applies every delete written before R; (3) every committed segment must have
been answered exactly once, else the read is retried (a node moved, a compaction swapped
segments) until ``max_serviceable_wait_s``.

Steps (2) and (1) overlap where they can: the committed segment list is read while the
streaming nodes answer, and the query nodes are asked *speculatively* at the same time,
with what the previous read of the collection learnt (its committed list, the segments
its streaming nodes answered, their WAL positions). Once the streaming nodes reply and
the list is read, the guess is checked: the query nodes' answer is kept only when it was
asked for exactly the segments and positions step (2) would ask for now, so it is the
answer the sequential read would get; otherwise step (2) runs as above. In a read-mostly
collection the guess holds, and a read costs one round trip to the nodes, not two.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
class _LastRead:
    """What one complete read of a collection learnt: the next read's guess."""

    positions: dict[str, int]  # the streaming nodes' WAL positions
    held: frozenset[int]  # the segments the streaming nodes answered
    committed: list[tuple[int, int]]  # the committed (segment, partition) pairs
    guess_held: bool  # whether the guess made from the read before held for this one:
    # reads guess only while guesses hold (a write-heavy collection stops guessing)


def _wanted(last: _LastRead, partitions: set[int] | None) -> list[int]:
    """The segments a read would ask query nodes for, were ``last`` still true."""
    return sorted(
        sid
        for sid, pid in last.committed
        if sid not in last.held and (partitions is None or pid in partitions)
    )


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
        self._last: dict[int, _LastRead] = {}  # collection id -> its last complete read
        self.speculation = {"kept": 0, "redone": 0}  # counts, for benchmarks and tests

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
        if len(by_node) == 1:  # one owner: called from this thread (no hand-off)
            ((addr, chs),) = by_node.items()
            return [self.pool.get(addr).call(method, {**args, "channels": chs}, tables)]
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
        # every task handed to the executor is a leaf call (no task waits on another)
        committed_f = self.executor.submit(self.catalog.segments, meta.id)
        last = None if fresh else self._last.get(meta.id)
        guess = None if last is None else (last.positions, _wanted(last, partitions))
        speculative = None
        if guess is not None and last is not None and last.guess_held:
            with contextlib.suppress(_Incomplete):
                speculative = self._ask_query_nodes(
                    meta, method, args, tables, guess[1], guess[0], fresh
                )
        streaming = self._channel_call_once(meta.channels, method, args, tables, fresh)
        positions: dict[str, int] = {}
        answered: set[int] = set()
        handed_off: set[int] = set()
        for out, _ in streaming:
            positions.update(out["positions"])
            answered.update(out["served"])
            handed_off.update(out.get("sealed", ()))
        committed = committed_f.result()
        stale = handed_off - {s.id for s in committed}  # compacted away meanwhile
        held = frozenset(answered)
        answered -= stale
        wanted = [
            s.id
            for s in committed
            if s.id not in answered and (partitions is None or s.partition_id in partitions)
        ]
        held_guess = guess is not None and guess[0] == positions and guess[1] == sorted(wanted)
        calls = speculative if held_guess else None
        if speculative is not None:
            self.speculation["kept" if held_guess else "redone"] += 1
        if calls is None:
            calls = self._ask_query_nodes(meta, method, args, tables, wanted, positions, fresh)
        sealed = self._collect(calls, reply)
        replies = [t[reply] for _, t in streaming]
        if stale:  # their rows are in the compacted segment a query node answered for
            keep = pa.array(sorted(stale), pa.int64())
            replies = [
                t.filter(pc.invert(pc.is_in(t.column("_seg"), value_set=keep))) for t in replies
            ]
        pairs = [(s.id, s.partition_id) for s in committed]
        self._last[meta.id] = _LastRead(positions, held, pairs, held_guess or last is None)
        return Gathered(replies, sealed)

    def _ask_query_nodes(
        self, meta: CollectionMeta, method: str, args: dict[str, Any], tables: Tables,
        wanted: list[int], positions: dict[str, int], fresh: bool,
    ) -> dict[str, tuple[list[int], Future]]:  # fmt: skip
        """Start the calls asking query nodes for ``wanted`` segments at ``positions``:
        query node address → (its segments, the call's future)."""
        if not wanted:
            return {}
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
        return {
            addr: (sids, self.executor.submit(
                self.pool.get(addr).call, method,
                {**args, "collection_id": meta.id, "segments": sids, "positions": positions},
                tables))
            for addr, sids in by_node.items()
        }  # fmt: skip

    @staticmethod
    def _collect(calls: dict[str, tuple[list[int], Future]], reply: str) -> list[pa.Table]:
        sealed = []
        for addr, (sids, fut) in calls.items():
            out, got = fut.result()
            missing = set(sids) - set(out["served"])
            if missing:
                raise _Incomplete(f"query node {addr} does not hold segments {sorted(missing)}")
            sealed.append(got[reply])
        return sealed

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
