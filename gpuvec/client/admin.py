"""The administration part of ``MilvusClient`` (pymilvus names, parameters and result
shapes): databases, aliases (and the collection DDL they constrain: drop and rename),
collection properties, truncation, and load state of collections and partitions.

Databases and aliases are records of :mod:`gpuvec.coord.namespaces`; the client resolves
names through :mod:`gpuvec.proxy.names`. Load state: a collection is loaded whole
(``load_collection``: every partition, also ones created later) or partly
(``load_partitions``: ``CollectionMeta.loaded_partitions``). The query node serves a
loaded collection's segments; which partitions a read may touch is decided here
(``_parts``): a read of a released partition raises ``PartitionNotLoadedError``, of a
released collection ``CollectionNotLoadedError`` (from the engine).

A part of ``MilvusClient`` (a base class of it): the client provides ``_engine`` (its
:class:`~gpuvec.runtime.base.Runtime`), ``_db``, ``_ns`` (Namespaces), ``_names``
(NameResolver) and ``_coll``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from gpuvec.coord.namespaces import Namespaces
from gpuvec.errors import (
    AliasNotFoundError,
    CollectionAlreadyExistsError,
    CollectionNotFoundError,
    CollectionNotLoadedError,
    IndexNotFoundError,
    InvalidArgumentError,
    PartitionNotFoundError,
    PartitionNotLoadedError,
)
from gpuvec.proxy.names import NameResolver, check_db_name, qualify, split, user_name
from gpuvec.runtime.base import Runtime
from gpuvec.schema import validate_name


class LoadState(enum.IntEnum):
    NotExist = 0
    NotLoad = 1
    Loading = 2
    Loaded = 3

    def __repr__(self) -> str:
        return f"<LoadState: {self.name}>"

    __str__ = __repr__


def _props(properties: Any, what: str) -> dict[str, str]:
    """Milvus keeps properties as string pairs (pymilvus sends ``str(value)``)."""
    if not isinstance(properties, dict):
        raise InvalidArgumentError(f"{what} properties must be a dict, got {properties!r}")
    return {str(k): str(v) for k, v in properties.items()}


def _keys(property_keys: Any, what: str) -> list[str]:
    if isinstance(property_keys, str) or not isinstance(property_keys, list | tuple):
        raise InvalidArgumentError(f"{what} property_keys must be a list, got {property_keys!r}")
    return [str(k) for k in property_keys]


def _names_list(partition_names: Any) -> list[str]:
    names = [partition_names] if isinstance(partition_names, str) else list(partition_names or [])
    if not names:
        raise InvalidArgumentError("partition_names should not be empty")
    return names


class AdminMethods:
    _engine: Runtime
    _db: str
    _ns: Namespaces
    _names: NameResolver
    _coll: Callable[[str], Any]

    # --- databases ---------------------------------------------------------------------------
    def create_database(
        self,
        db_name: str,
        properties: dict | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        validate_name("database", db_name)
        self._ns.create_database(db_name, _props(properties or {}, f"database {db_name!r}"))

    def drop_database(self, db_name: str, **kwargs: Any) -> None:
        """Drop an empty database (a missing one is a no-op, as in Milvus)."""
        db = check_db_name(db_name)
        with self._engine.lock:  # the emptiness check and the drop as one step
            if not self._ns.database_exists(db):
                return
            if db != "default":
                left = self._names.collections(db)
                if left:
                    raise InvalidArgumentError(
                        f"database:{db} not empty, must drop all collections before drop "
                        f"database (collections: {left})"
                    )
            self._ns.drop_database(db)

    def list_databases(self, timeout: float | None = None, **kwargs: Any) -> list[str]:
        return self._ns.list_databases()

    def describe_database(self, db_name: str, **kwargs: Any) -> dict[str, Any]:
        """``{"name": ..., **properties}``, pymilvus's shape."""
        db = self._ns.get_database(self._names.require_db(db_name))
        return {"name": db.name, **db.properties}

    def alter_database_properties(self, db_name: str, properties: dict, **kwargs: Any) -> None:
        db = self._names.require_db(db_name)
        self._ns.alter_database(db, _props(properties, f"database {db!r}"))

    def drop_database_properties(
        self, db_name: str, property_keys: list[str], **kwargs: Any
    ) -> None:
        db = self._names.require_db(db_name)
        self._ns.alter_database(db, {}, _keys(property_keys, f"database {db!r}"))

    def use_database(self, db_name: str, **kwargs: Any) -> None:
        """Work inside ``db_name`` from now on (it must exist)."""
        self._db = self._names.require_db(db_name)

    def using_database(self, db_name: str, **kwargs: Any) -> None:
        self.use_database(db_name, **kwargs)

    def for_database(self, db_name: str) -> Any:
        """A client working in ``db_name`` that shares this one's engine (the gRPC server
        keeps one per database); closing it leaves the engine open."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._db = self._names.require_db(db_name)
        view._owns_engine = False
        return view

    # --- collections with aliases ------------------------------------------------------------
    def drop_collection(self, collection_name: str, **kwargs: Any) -> None:
        """Drop a collection (a missing one is a no-op, as in Milvus); refused via an
        alias and while aliases point at it."""
        with self._engine.lock:
            try:
                name = self._names.resolve_collection(
                    self._db, collection_name, "drop the collection"
                )
            except CollectionNotFoundError:
                return
            aliases = self._names.aliases_of(name)
            if aliases:
                raise InvalidArgumentError(
                    f"unable to drop the collection [{collection_name}] because it has "
                    f"associated aliases {aliases}, please remove all aliases before dropping "
                    "the collection"
                )
            self._engine.drop_collection(name)

    def rename_collection(
        self,
        old_name: str,
        new_name: str,
        target_db: str | None = "",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Rename (into ``target_db`` when given). Aliases keep pointing at the collection,
        re-pointed in the rename's own transaction; a collection with aliases cannot move
        to another database."""
        with self._engine.lock:
            old = self._names.resolve_collection(self._db, old_name, "rename collection")
            db = self._names.require_db(target_db) if target_db else self._db
            new = self._names.check_free(db, new_name)
            if self._engine.catalog.exists(new):
                raise CollectionAlreadyExistsError(
                    f"duplicated new collection name {new_name} in database {db} with other "
                    "collection name or alias"
                )
            aliases = self._ns.list_aliases(split(old)[0], old)
            if aliases and db != self._db:
                raise InvalidArgumentError(
                    f"cannot rename collection {old_name!r} into database {db!r}: it has "
                    f"aliases {[a.alias for a in aliases]}, drop them first"
                )
            compare, ops = self._ns.repoint_ops(aliases, new)
            self._engine.rename_collection(old, new, compare, ops)

    # --- aliases -----------------------------------------------------------------------------
    def _set_alias(self, collection_name: str, alias: str, *, new: bool) -> None:
        validate_name("alias", alias)
        action = "create alias" if new else "alter alias"
        with self._engine.lock:
            target = self._names.resolve_collection(self._db, collection_name, action)
            self._ns.set_alias(self._db, alias, target, qualify(self._db, alias), new=new)

    def create_alias(
        self, collection_name: str, alias: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        """Point a new alias of the current database at a collection of it; the same
        alias again is a no-op, an alias of another collection an error."""
        self._set_alias(collection_name, alias, new=True)

    def alter_alias(
        self, collection_name: str, alias: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        """Re-point an existing alias at another collection of the current database."""
        self._set_alias(collection_name, alias, new=False)

    def drop_alias(self, alias: str, timeout: float | None = None, **kwargs: Any) -> None:
        validate_name("alias", alias)
        self._ns.drop_alias(self._names.require_db(self._db), alias)

    def describe_alias(self, alias: str, timeout: float | None = None, **kwargs: Any) -> dict:
        validate_name("alias", alias)
        db = self._names.require_db(self._db)
        rec = self._ns.get_alias(db, alias)
        if rec is None:
            raise AliasNotFoundError(f"alias not found[database={db}][alias={alias}]")
        return {"alias": alias, "collection_name": user_name(rec.collection), "db_name": db}

    def list_aliases(
        self, collection_name: str = "", timeout: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """``{"aliases": [...], "collection_name": ..., "db_name": ...}`` (pymilvus's
        shape): the aliases of one collection, or of the whole database."""
        db = self._names.require_db(self._db)
        if not collection_name:
            return {"aliases": [a.alias for a in self._ns.list_aliases(db)], "db_name": db}
        target = self._names.resolve(db, collection_name)
        return {
            "aliases": self._names.aliases_of(target),
            "collection_name": user_name(target),
            "db_name": db,
        }

    # --- collection administration -----------------------------------------------------------
    def truncate_collection(
        self, collection_name: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        """Remove every row; schema, partitions, indexes, properties, aliases and load
        state stay (the collection gets a new id)."""
        self._engine.truncate_collection(self._names.resolve(self._db, collection_name))

    def alter_collection_properties(
        self, collection_name: str, properties: dict, timeout: float | None = None, **kwargs: Any
    ) -> None:
        props = _props(properties, f"collection {collection_name!r}")
        self._engine.update_meta(
            self._names.resolve(self._db, collection_name), lambda m: m.properties.update(props)
        )

    def drop_collection_properties(
        self,
        collection_name: str,
        property_keys: list[str],
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        keys = _keys(property_keys, f"collection {collection_name!r}")

        def drop(m: Any) -> None:
            for k in keys:
                m.properties.pop(k, None)

        self._engine.update_meta(self._names.resolve(self._db, collection_name), drop)

    # --- load state --------------------------------------------------------------------------
    def _check_indexed(self, coll: Any) -> None:
        indexed = {i["field_name"] for i in coll.meta.index_params}
        for f in coll.schema.vector_fields:
            if f.name not in indexed:
                raise IndexNotFoundError(
                    f"there is no vector index on field: [{f.name}], please create index firstly"
                )

    def _set_loaded_partitions(self, coll: Any, names: list[str] | None) -> None:
        if coll.meta.loaded_partitions != names:
            self._engine.update_meta(
                coll.meta.name, lambda m: setattr(m, "loaded_partitions", names)
            )

    def load_collection(
        self, collection_name: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        coll = self._coll(collection_name)
        self._check_indexed(coll)
        with self._engine.lock:
            self._set_loaded_partitions(coll, None)
            self._engine.load(coll.meta.name)

    def release_collection(
        self, collection_name: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        coll = self._coll(collection_name)
        with self._engine.lock:
            self._engine.release(coll.meta.name)
            self._set_loaded_partitions(coll, None)

    def refresh_load(
        self, collection_name: str, timeout: float | None = None, **kwargs: Any
    ) -> None:
        """Reload a loaded collection's sealed segments from the catalog."""
        coll = self._coll(collection_name)
        if not self._engine.is_loaded(coll.meta.id):
            raise CollectionNotLoadedError(
                f"collection not loaded[collection={collection_name}]: load it before refresh_load"
            )
        self._engine.load(coll.meta.name)

    def _loaded_names(self, coll: Any) -> list[str]:
        """Partitions a loaded collection serves."""
        lp = coll.meta.loaded_partitions
        return list(coll.meta.partitions) if lp is None else list(lp)

    def _check_partitions(self, coll: Any, names: list[str]) -> None:
        for p in names:
            if p not in coll.meta.partitions:
                raise PartitionNotFoundError(f"partition not found[partition={p}]")

    def load_partitions(
        self,
        collection_name: str,
        partition_names: str | list[str],
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Load partitions (added to those already loaded)."""
        names = _names_list(partition_names)
        coll = self._coll(collection_name)
        self._check_partitions(coll, names)
        self._check_indexed(coll)
        with self._engine.lock:
            loaded = self._engine.is_loaded(coll.meta.id)
            if loaded and coll.meta.loaded_partitions is None:
                return  # the whole collection is loaded
            have = set(coll.meta.loaded_partitions or []) if loaded else set()
            want = [p for p in coll.meta.partitions if p in have or p in names]
            self._set_loaded_partitions(coll, want)
            self._engine.load(coll.meta.name)

    def release_partitions(
        self,
        collection_name: str,
        partition_names: str | list[str],
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Release partitions; releasing the last loaded one releases the collection."""
        names = _names_list(partition_names)
        coll = self._coll(collection_name)
        self._check_partitions(coll, names)
        with self._engine.lock:
            if not self._engine.is_loaded(coll.meta.id):
                return
            keep = [p for p in self._loaded_names(coll) if p not in names]
            if keep:
                self._set_loaded_partitions(coll, keep)
            else:
                self._engine.release(coll.meta.name)
                self._set_loaded_partitions(coll, None)

    def get_load_state(
        self,
        collection_name: str,
        partition_name: str | None = "",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> dict[str, LoadState]:
        try:
            coll = self._coll(collection_name)
        except CollectionNotFoundError:
            return {"state": LoadState.NotExist}
        if partition_name and partition_name not in coll.meta.partitions:
            return {"state": LoadState.NotExist}
        loaded = self._engine.is_loaded(coll.meta.id)
        if loaded and partition_name:
            loaded = partition_name in self._loaded_names(coll)
        return {"state": LoadState.Loaded if loaded else LoadState.NotLoad}

    def _parts(self, coll: Any, names: list[str] | None) -> set[int] | None:
        """Partition ids a read may touch: the named ones (each must exist and be loaded)
        or every loaded one (None: all of them)."""
        lp = coll.meta.loaded_partitions
        if lp is None or not coll.meta.loaded:
            return coll.partition_ids(names)
        if not names:
            return {coll.meta.partitions[p] for p in lp if p in coll.meta.partitions}
        ids = coll.partition_ids(names)
        for p in names:
            if p not in lp:
                raise PartitionNotLoadedError(
                    f"partition not loaded[partition={p}]: load_partitions it first"
                )
        return ids

    def _row_count(self, coll: Any, partition_ids: set[int]) -> int:
        """Live rows of the given partitions over served sealed and growing segments; for a
        collection that is not loaded, the rows of its flushed segments (as Milvus counts
        them: whether loaded or not, deletes not subtracted before a compaction)."""
        if not self._engine.is_loaded(coll.meta.id):
            segs = self._engine.catalog.segments(coll.meta.id)
            return sum(s.rows for s in segs if s.partition_id in partition_ids)
        return int(self._engine.row_count(coll, partition_ids))

    def get_partition_stats(
        self, collection_name: str, partition_name: str, timeout: float | None = None, **kwargs: Any
    ) -> dict[str, int]:
        if not isinstance(partition_name, str):
            raise TypeError(
                "wrong type of argument 'partition_name', str expected, got "
                f"'{type(partition_name).__name__}'"
            )
        coll = self._coll(collection_name)
        self._check_partitions(coll, [partition_name])
        return {"row_count": self._row_count(coll, {coll.meta.partitions[partition_name]})}
