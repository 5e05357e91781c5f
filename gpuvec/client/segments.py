"""The inspection part of ``MilvusClient`` (pymilvus names and result fields): replicas,
the segments a collection has persisted and the ones loaded for search, index properties
(``alter_index_properties`` / ``drop_index_properties``) and the server's version and type.
A part (base class) of :class:`gpuvec.MilvusClient`, over its ``_engine``
(:class:`~gpuvec.runtime.base.Runtime`) and ``_coll``.

gpuvec serves each collection with one replica: its channels are the collection's shards.
Results are pymilvus's own types (``ReplicaInfo``, ``LoadedSegmentInfo``,
``SegmentInfo``), so code written against pymilvus reads them unchanged; segments are
reported as Milvus reports them: state ``Flushed`` for persisted, ``Sealed`` for loaded ones,
level ``L1`` and, loaded, the index names that serve them.
"""

from __future__ import annotations

from typing import Any

from pymilvus.client.types import (
    LoadedSegmentInfo,
    ReplicaInfo,
    ResourceGroupInfo,
    SegmentInfo,
    Shard,
)
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from gpuvec.errors import IndexNotFoundError, InvalidArgumentError, ResourceGroupNotFoundError
from gpuvec.proxy.names import split
from gpuvec.runtime.base import Runtime

__all__ = ["DEFAULT_RESOURCE_GROUP", "INDEX_PROPERTIES", "SegmentMethods"]

DEFAULT_RESOURCE_GROUP = "__default_resource_group"  # Milvus's; gpuvec has no other

# what Milvus lets alter_index_properties set (its ValidateAlterIndexParams); values as text
INDEX_PROPERTIES = ("mmap.enabled",)
NODE = 1  # the one node (the embedded engine, or the cluster as its proxy presents it)


def _flag(key: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise InvalidArgumentError(f"invalid {key} value: {value!r}, expected: true, false")
    return text


class SegmentMethods:
    _engine: Runtime
    _db: str

    def _coll(self, name: str) -> Any:  # provided by MilvusClient
        raise NotImplementedError

    def get_server_version(self, timeout: float | None = None, detail: bool = False,
                           **kwargs: Any) -> str | dict[str, str]:  # fmt: skip
        from gpuvec import __version__

        if not detail:
            return __version__
        return {"version": __version__, "build_time": "", "git_commit": "",
                "go_version": "", "deploy_mode": "STANDALONE"}  # fmt: skip

    def get_server_type(self) -> str:
        """What pymilvus answers for a Milvus server (gpuvec speaks Milvus)."""
        return "milvus"

    def describe_replica(self, collection_name: str, timeout: float | None = None,
                         **kwargs: Any) -> list[ReplicaInfo]:  # fmt: skip
        """The collection's replica (one; none while it is not loaded): its shards (the
        collection's channels) and the node serving them."""
        coll = self._coll(collection_name)
        if not self._engine.is_loaded(coll.meta.id):
            return []
        shards = [Shard(ch, [NODE], NODE) for ch in coll.meta.channels]
        return [ReplicaInfo(coll.meta.id, shards, [NODE], DEFAULT_RESOURCE_GROUP, {})]

    def describe_replica_of(self, collection_id: int) -> list[ReplicaInfo]:
        """:meth:`describe_replica` of the collection with this id (GetReplicas asks by
        id); none when no collection of this database has it."""
        for meta in self._engine.catalog.list():
            db, name = split(meta.name)
            if meta.id == int(collection_id) and db == self._db:
                return self.describe_replica(name)
        return []

    def list_resource_groups(self, timeout: float | None = None, **kwargs: Any) -> list[str]:
        """Milvus's default resource group, the only one gpuvec has."""
        return [DEFAULT_RESOURCE_GROUP]

    def describe_resource_group(self, name: str, timeout: float | None = None,
                                **kwargs: Any) -> ResourceGroupInfo:  # fmt: skip
        """pymilvus's ``ResourceGroupInfo`` of the default group: its node and one loaded
        replica per loaded collection of this database."""
        return ResourceGroupInfo(self.resource_group_proto(name))

    def resource_group_proto(self, name: str) -> Any:
        """The ``ResourceGroup`` message :meth:`describe_resource_group` reads (and the
        server sends); ResourceGroupNotFoundError for any other name, in Milvus's words."""
        if name != DEFAULT_RESOURCE_GROUP:
            raise ResourceGroupNotFoundError(f"resource group not found[rg={name}]")
        loaded = {}
        for meta in self._engine.catalog.list():
            db, coll = split(meta.name)
            if db == self._db and self._engine.is_loaded(meta.id):
                loaded[coll] = 1
        return milvus_pb2.ResourceGroup(
            name=name, capacity=1, num_available_node=1, num_loaded_replica=loaded,
            nodes=[common_pb2.NodeInfo(node_id=NODE, address="", hostname="")],
        )  # fmt: skip

    def list_persistent_segments(self, collection_name: str, timeout: float | None = None,
                                 **kwargs: Any) -> list[SegmentInfo]:  # fmt: skip
        """The collection's flushed segments (Milvus's GetPersistentSegmentInfo)."""
        coll = self._coll(collection_name)
        return [SegmentInfo(s.id, s.collection_id, collection_name, s.rows, False,
                            common_pb2.Flushed, common_pb2.L1, 0, s.partition_id, s.channel)
                for s in self._engine.catalog.segments(coll.meta.id)]  # fmt: skip

    def list_loaded_segments(self, collection_name: str, timeout: float | None = None,
                             **kwargs: Any) -> list[LoadedSegmentInfo]:  # fmt: skip
        """The sealed segments served for search (Milvus's GetQuerySegmentInfo); none while
        the collection is not loaded."""
        coll = self._coll(collection_name)
        if not self._engine.is_loaded(coll.meta.id):
            return []
        built = self._engine.catalog.segment_indexes(coll.meta.id)
        names = {i["field_name"]: i["index_name"] for i in coll.meta.index_params}
        out = []
        for s in self._engine.catalog.segments(coll.meta.id):
            index = ",".join(names[f] for sid, f in built if sid == s.id and f in names)
            out.append(LoadedSegmentInfo(s.id, s.collection_id, collection_name, s.rows, False,
                                         common_pb2.Sealed, common_pb2.L1, 0, s.partition_id,
                                         index, 0, [NODE], 0))  # fmt: skip
        return out

    def alter_index_properties(self, collection_name: str, index_name: str,
                               properties: dict[str, Any], timeout: float | None = None,
                               **kwargs: Any) -> None:  # fmt: skip
        """Set index properties (``mmap.enabled``); they show in ``describe_index``."""
        if not isinstance(properties, dict) or not properties:
            raise InvalidArgumentError("properties must be a non-empty dict")
        unknown = sorted(k for k in properties if k not in INDEX_PROPERTIES)
        if unknown:
            raise InvalidArgumentError(f"{unknown[0]} is not a configable index property")
        values = {k: _flag(k, v) for k, v in properties.items()}
        self._change_index(collection_name, index_name, lambda p: p.update(values))

    def drop_index_properties(self, collection_name: str, index_name: str,
                              property_keys: list[str], timeout: float | None = None,
                              **kwargs: Any) -> None:  # fmt: skip
        keys = list(property_keys or [])
        if not keys:
            raise InvalidArgumentError("property_keys must name at least one property")

        def drop(props: dict[str, str]) -> None:
            for k in keys:
                props.pop(k, None)

        self._change_index(collection_name, index_name, drop)

    def _change_index(self, collection_name: str, index_name: str, change: Any) -> None:
        coll = self._coll(collection_name)
        if not any(i["index_name"] == index_name for i in coll.meta.index_params):
            raise IndexNotFoundError(f"index not found[indexName={index_name}]")

        def apply(meta: Any) -> None:
            for i in meta.index_params:
                if i["index_name"] == index_name:
                    props = dict(i.get("properties") or {})
                    change(props)
                    i["properties"] = props

        self._engine.update_meta(coll.meta.name, apply)
