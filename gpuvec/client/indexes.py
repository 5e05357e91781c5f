"""The index and compaction part of ``MilvusClient`` (pymilvus names and behaviour):
``create_index`` / ``drop_index`` / ``list_indexes`` / ``describe_index`` /
``wait_for_index`` and ``compact`` / ``get_compaction_state``. A part of ``MilvusClient``
(a base class of it): the client provides ``_engine`` (its
:class:`~gpuvec.runtime.base.Runtime`) and ``_coll`` (a collection or alias name of the
current database → the runtime's collection)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gpuvec import vectors
from gpuvec.errors import (
    DeadlineExceededError,
    IndexNotFoundError,
    InvalidArgumentError,
    NotSupportedYetError,
)
from gpuvec.index import scalar
from gpuvec.index.params import IndexParams, check_vector_kind
from gpuvec.records import index_id
from gpuvec.runtime.base import Runtime
from gpuvec.schema import CollectionSchema


class IndexMethods:
    _engine: Runtime
    _coll: Callable[[str], Any]

    def create_index(
        self,
        collection_name: str,
        index_params: IndexParams,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Define indexes; sealed segments get them built by the data nodes. As in Milvus, a
        field holds one index: the same definition again is a no-op, another is an error
        (``drop_index`` it first). As pymilvus, it then waits until the builds finish
        (:meth:`wait_for_index`: ``IndexBuildError`` if one fails, ``DeadlineExceededError``
        after ``timeout`` seconds); ``_async=True`` or ``sync=False`` return at once."""
        coll = self._coll(collection_name)
        new = _check_index_fields(coll.schema, index_params)
        have = {i["field_name"]: i for i in coll.meta.index_params}
        fresh = []
        for idx in new:
            old = have.get(idx["field_name"])
            if old is None:
                fresh.append(idx)
            elif index_id(old) != index_id(idx) or old["index_name"] != idx["index_name"]:
                raise InvalidArgumentError(
                    f"CreateIndex failed: at most one distinct index is allowed per field "
                    f"(field {idx['field_name']!r} has index {old['index_name']!r} "
                    f"{old['index_type']}); drop_index it first"
                )
        if fresh:
            self._engine.update_meta(
                coll.meta.name, lambda m: setattr(m, "index_params", m.index_params + fresh)
            )
        if not kwargs.get("_async", False) and kwargs.get("sync", True):
            self.wait_for_index(collection_name, timeout=timeout)

    def drop_index(self, collection_name: str, index_name: str, **kwargs: Any) -> None:
        """Drop an index definition and its built files' records (Milvus: the collection
        must be released first)."""
        coll = self._coll(collection_name)
        found = [i for i in coll.meta.index_params if i["index_name"] == index_name]
        if not found:  # a harmless repeat in Milvus
            return
        if self._engine.is_loaded(coll.meta.id):
            raise InvalidArgumentError(
                f"index {index_name!r} cannot be dropped: collection {collection_name!r} is "
                "loaded, release it first"
            )
        self._engine.update_meta(
            coll.meta.name,
            lambda m: setattr(
                m, "index_params", [i for i in m.index_params if i["index_name"] != index_name]
            ),
        )
        self._engine.catalog.drop_indexes(coll.meta.id, found[0]["field_name"])

    def list_indexes(self, collection_name: str, field_name: str = "", **kwargs: Any) -> list[str]:
        return [
            i["index_name"]
            for i in self._coll(collection_name).meta.index_params
            if not field_name or i["field_name"] == field_name
        ]

    def describe_index(
        self, collection_name: str, index_name: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """pymilvus's fields (with Milvus's build progress: ``total_rows``,
        ``indexed_rows``, ``pending_index_rows``, ``state``), plus how the index is served:
        ``indexed_segments`` of
        ``sealed_segments`` use the built index (its ``backend``); the rest (small or
        not yet built segments, growing data) are brute force on ``search_backend``.
        None when the collection has no index of that name (as pymilvus answers)."""
        coll = self._coll(collection_name)
        for i in coll.meta.index_params:
            if i["index_name"] == index_name:
                return {
                    **dict(i),
                    **dict(i.get("properties") or {}),  # mmap.enabled..., as Milvus lists them
                    **self._engine.index_progress(coll, i),
                    **self._engine.index_serving(coll, i),
                }
        return None

    def wait_for_index(
        self,
        collection_name: str,
        field_name: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Block until every sealed segment that needs a built index has one being served
        (``field_name`` only checks that the field has an index; builds are per collection).
        Raises ``IndexBuildError`` naming the reason when a build failed, and
        ``DeadlineExceededError`` after ``timeout`` seconds (None: no limit). Growing rows
        need no index: they are searched exactly until they are sealed."""
        coll = self._coll(collection_name)
        if field_name and not any(i["field_name"] == field_name for i in coll.meta.index_params):
            raise IndexNotFoundError(f"index not found[field={field_name}]")
        limit = math.inf if timeout is None else float(timeout)
        if not self._engine.wait_for_indexes(coll.meta.name, timeout=limit):
            raise DeadlineExceededError(
                f"index builds of collection {collection_name!r} did not finish within "
                f"{timeout} s (describe_index shows their progress)"
            )

    def compact(self, collection_name: str, is_clustering: bool = False, **kwargs: Any) -> int:
        """Start a manual compaction (merge sealed segments, drop deleted rows) as Dask
        data-node tasks; returns a job id for ``get_compaction_state``."""
        if is_clustering:
            raise NotSupportedYetError("clustering compaction is not supported")
        coll = self._coll(collection_name)
        job = self._engine.compact(coll.meta, manual=True)
        if job is None:
            raise InvalidArgumentError(
                f"a compaction of collection {collection_name!r} is already running"
            )
        return job

    def get_compaction_plans(self, job_id: int, timeout: float | None = None,
                             **kwargs: Any) -> Any:  # fmt: skip
        """pymilvus's ``CompactionPlans`` of a job: its state and each plan's source
        segments and target segment."""
        from pymilvus.client.types import CompactionPlans, Plan
        from pymilvus.grpc_gen import common_pb2

        state = self._engine.compaction_state(int(job_id))
        wire = {"Completed": common_pb2.Completed, "Executing": common_pb2.Executing}
        out = CompactionPlans(int(job_id), wire.get(state, common_pb2.UndefiedState))
        out.plans = [Plan(src, dst) for src, dst in self._engine.compaction_plans(int(job_id))]
        return out

    def get_compaction_state(self, job_id: int, **kwargs: Any) -> str:
        """``Completed``, ``Executing`` or ``Failed`` (pymilvus's state names)."""
        return self._engine.compaction_state(int(job_id))


def _check_index_fields(
    schema: CollectionSchema, index_params: IndexParams
) -> list[dict[str, Any]]:
    """The definitions to store, each checked against its field: a vector index on a
    vector field (dim-dependent params valid), a scalar index (INVERTED, STL_SORT, Trie,
    BITMAP, or AUTOINDEX — no metric) on a scalar field that type fits, as Milvus checks."""
    out = []
    for idx in index_params.to_list():
        f = schema.field(idx["field_name"])
        if f.is_vector:
            if scalar.is_scalar_type(idx["index_type"]):
                scalar.check_field(idx["index_type"], f, idx["params"])
            bm25 = f.name in schema.function_outputs()
            if bm25 and not idx["metric_type"]:
                idx["metric_type"] = "BM25"  # a BM25 function's output is scored by BM25
            if (idx["metric_type"] == "BM25") != bm25:
                raise InvalidArgumentError(
                    f"metric type {idx['metric_type']} does not fit field {f.name!r}: BM25 is "
                    "the metric of a BM25 function's output field, and of no other field"
                )
            index_params.validate_for_field(f.name, int(f.dim or 0), vectors.kind(f.dtype))
            check_vector_kind(idx, vectors.kind(f.dtype))  # this copy: the default metric
        elif idx["index_type"] == "AUTOINDEX" or scalar.is_scalar_type(idx["index_type"]):
            idx = {**idx, "metric_type": "", "params": scalar.check_params("", idx["params"])}
            scalar.check_field(scalar.auto_type(f) if idx["index_type"] == "AUTOINDEX"
                               else idx["index_type"], f, idx["params"])  # fmt: skip
        else:
            raise InvalidArgumentError(
                f"data type {scalar.milvus_name(f.dtype)} can't build with this index "
                f"{idx['index_type']} (field {f.name!r}: a vector index type on a scalar field)"
            )
        out.append(idx)
    return out
