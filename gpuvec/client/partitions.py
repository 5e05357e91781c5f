"""The partition part of ``MilvusClient`` (a base class of it): ``create_partition``,
``drop_partition``, ``has_partition``, ``list_partitions`` with Milvus's rules (repeats are
harmless, a loaded partition is not dropped, the default one stays)."""

from __future__ import annotations

from typing import Any

from gpuvec.errors import GpuvecError
from gpuvec.records import DEFAULT_PARTITION
from gpuvec.schema import validate_name

__all__ = ["PartitionMethods"]


class PartitionMethods:
    _engine: Any
    _names: Any
    _db: str
    _coll: Any

    def create_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> None:
        """Create a partition; one that exists already is left as it is (Milvus)."""
        validate_name("partition", partition_name)
        name = self._names.resolve(self._db, collection_name)
        if partition_name in self._coll(collection_name).meta.partitions:
            return
        self._engine.catalog.create_partition(name, partition_name)
        self._engine.update_meta(name, lambda m: None)

    def drop_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> None:
        """Drop a partition and its rows. As in Milvus: a missing one is a harmless repeat,
        a loaded one is refused (release it first), the default one cannot be dropped."""
        name = self._names.resolve(self._db, collection_name)
        meta = self._coll(collection_name).meta
        if partition_name not in meta.partitions and partition_name != DEFAULT_PARTITION:
            return
        loaded = meta.loaded_partitions is None or partition_name in meta.loaded_partitions
        if partition_name != DEFAULT_PARTITION and self._engine.is_loaded(meta.id) and loaded:
            raise GpuvecError(
                "partition cannot be dropped, partition is loaded, please release it first"
            )
        self._engine.catalog.drop_partition(name, partition_name)

        def forget(m: Any) -> None:  # no longer among the loaded partitions
            if m.loaded_partitions is not None and partition_name in m.loaded_partitions:
                m.loaded_partitions.remove(partition_name)

        self._engine.update_meta(name, forget)

    def has_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> bool:
        return partition_name in self._coll(collection_name).meta.partitions

    def list_partitions(self, collection_name: str, **kwargs: Any) -> list[str]:
        return list(self._coll(collection_name).meta.partitions)
