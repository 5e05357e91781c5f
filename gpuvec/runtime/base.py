"""The runtime interface: what the client facade (:class:`gpuvec.MilvusClient`) and the
Milvus gRPC server built on it need from whatever runs the database underneath.

Two runtimes implement :class:`Runtime`:

* :class:`gpuvec.runtime.embedded.Engine` — every role in this process over the embedded
  storage layers (SQLite meta, local WAL, a Zarr directory);
* :class:`gpuvec.cluster.proxy.ClusterEngine` — a cluster proxy: DDL through the active
  coordinator, writes to the streaming nodes, reads scattered over streaming and query nodes.

The facade resolves names (databases, aliases) and checks arguments; a runtime owns the
data. Collections travel as :class:`~gpuvec.records.CollectionView` handles (catalog record
and schema). Every method may raise the errors of :mod:`gpuvec.errors`; none returns a
partial result on failure. ``tests/unit/test_runtime_protocol.py`` checks that both
runtimes provide every member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from gpuvec.config import Config
from gpuvec.coord.catalog import Catalog
from gpuvec.proxy.filters import CompiledFilter
from gpuvec.records import CollectionMeta, CollectionView
from gpuvec.schema import CollectionSchema
from gpuvec.storage.meta.base import Compare, MetaStore, Op, TxnResult


class Timestamps(Protocol):
    def allocate(self, count: int = 1) -> int: ...


@runtime_checkable
class Runtime(Protocol):
    """See the module docstring. Attributes: ``kind`` (``embedded`` / ``cluster``),
    ``config`` (engine options), ``meta`` (the
    meta store), ``catalog`` (collections, partitions, segments, index records), ``tso``
    (timestamps), ``lock`` (held by the facade around check-then-act DDL so two threads of
    one process cannot interleave it), ``dashboard_link`` (the gpuvec page, or None)."""

    kind: str  # "embedded" | "cluster"
    config: Config
    meta: MetaStore
    catalog: Catalog
    tso: Timestamps
    lock: AbstractContextManager[Any]

    @property
    def dashboard_link(self) -> str | None: ...

    # --- collections ------------------------------------------------------------------------
    def get(self, name: str) -> CollectionView:
        """The collection ``name`` (engine name); ``CollectionNotFoundError`` if absent."""
        ...

    def serves(self, name: str) -> bool:
        """Whether the runtime knows collection ``name`` without reading meta (a hint:
        False means "ask the catalog")."""
        ...

    def create_collection(
        self, name: str, schema: CollectionSchema, *, num_shards: int, consistency_level: str,
        index_params: list[dict[str, Any]], load: bool,
    ) -> CollectionView: ...  # fmt: skip

    def drop_collection(self, name: str) -> None: ...

    def rename_collection(
        self, old: str, new: str, compare: Sequence[Compare] = (), ops: Sequence[Op] = ()
    ) -> None:
        """Rename; ``compare``/``ops`` join the catalog transaction (alias re-pointing)."""
        ...

    def truncate_collection(self, name: str) -> None: ...

    def update_meta(self, name: str, change: Callable[[CollectionMeta], Any]) -> None:
        """Apply ``change`` to the collection's record in one catalog transaction."""
        ...

    def load(self, name: str) -> None:
        """Serve the collection's sealed segments (returns once they are served)."""
        ...

    def release(self, name: str) -> None: ...

    def is_loaded(self, collection_id: int) -> bool: ...

    def segment_stats(self, collection_id: int) -> dict[str, int]:
        """``sealed_segments``, ``sealed_rows``, ``gpu_resident`` (for describe/stats)."""
        ...

    def guarded_txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """A meta transaction under the leader's guard (fails if this runtime's leader
        lost its term): the way anything outside the catalog writes meta (users)."""
        ...

    # --- writes -----------------------------------------------------------------------------
    def write(
        self, coll: CollectionView, *, inserts: pa.Table | None, delete_pks: np.ndarray | None,
        partition: str | None,
    ) -> int:  # fmt: skip
        """Apply inserts and deletes (an upsert is both) atomically; return the write's
        timestamp, once it is durable."""
        ...

    def flush(self, name: str) -> None:
        """Seal the growing segments (returns once they are committed)."""
        ...

    # --- reads ------------------------------------------------------------------------------
    def read_ts(self, coll: CollectionView, level: str | None, session_ts: int) -> int:
        """The timestamp a read at consistency ``level`` runs at (see DESIGN §3)."""
        ...

    def search(
        self, coll: CollectionView, field: str, queries: np.ndarray, k: int, metric: str,
        partitions: set[int] | None, read_ts: int, flt: CompiledFilter | None = None,
        search_params: dict[str, Any] | None = None, columns: tuple[str, ...] = (),
    ) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Top-k: ``(segments, distances [nq, k], segment index [nq, k], row [nq, k])``;
        the facade fetches output fields from the returned segments' rows."""
        ...

    def match(
        self, coll: CollectionView, flt: CompiledFilter | None, partitions: set[int] | None,
        read_ts: int, columns: tuple[str, ...] = (),
    ) -> list[tuple[Any, np.ndarray]]:  # fmt: skip
        """Rows visible at ``read_ts`` matching the filter: ``[(segment, rows)]``."""
        ...

    def lookup(
        self, coll: CollectionView, pks: np.ndarray, partitions: set[int] | None, read_ts: int,
        columns: tuple[str, ...] = (),
    ) -> list[tuple[Any, np.ndarray]]:  # fmt: skip
        """Visible rows with the given primary keys: ``[(segment, rows)]``."""
        ...

    def row_count(self, coll: CollectionView, partition_ids: set[int]) -> int: ...

    # --- indexes and compaction -------------------------------------------------------------
    def index_progress(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        """Milvus's build progress: ``total_rows``, ``indexed_rows``, ``pending_index_rows``,
        ``state`` (Finished / InProgress / Failed) and ``index_state_fail_reason``."""
        ...

    def index_serving(self, coll: CollectionView, definition: dict[str, Any]) -> dict[str, Any]:
        """How the index is served now (segments, backend) for ``describe_index``."""
        ...

    def wait_for_indexes(self, name: str, timeout: float = 60.0) -> bool:
        """Until every index of ``name`` is built and served (False on timeout);
        ``IndexBuildError`` when a build failed."""
        ...

    def compact(self, meta: CollectionMeta, manual: bool = False) -> int | None:
        """Start a compaction of the collection; its job id (None: nothing to do)."""
        ...

    def compaction_state(self, job: int) -> str:
        """``Executing`` / ``Completed`` / … of a compaction job."""
        ...

    def compaction_plans(self, job: int) -> list[tuple[list[int], int]]:
        """A compaction job's plans: (source segment ids, target segment id) each."""
        ...

    # --- bulk import ------------------------------------------------------------------------
    def import_files(
        self, meta: CollectionMeta, files: Any, partition: str | None = None, **options: Any
    ) -> int:
        """Submit a bulk-import job (:mod:`gpuvec.coord.imports`); its id. The files are
        checked against the schema before it returns."""
        ...

    def import_state(self, job_id: int) -> dict[str, Any]:
        """The job's record: ``state``, ``progress``, ``rows``, ``reason``, …"""
        ...

    def import_state_after(self, job_id: int, seen: float, timeout: float) -> dict[str, Any]:
        """The job's record once its ``updated`` time is no longer ``seen`` (or it
        finished), at the latest after ``timeout`` s: what a waiting client polls."""
        ...

    def import_jobs(self, collection: str = "", limit: int = 0) -> list[dict[str, Any]]: ...

    # --- process ----------------------------------------------------------------------------
    def open_dashboard(self) -> str | None:
        """Start the data nodes' Dask dashboard if needed; the gpuvec page's URL."""
        ...

    def health(self) -> str:
        """'' when healthy, else why not (CheckHealth / GetComponentStates)."""
        ...

    def close(self) -> None: ...
