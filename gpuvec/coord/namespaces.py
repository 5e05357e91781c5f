"""Databases and collection aliases as records in meta storage, beside the catalog.

Keys (JSON values)::

    catalog/databases/<db>          DatabaseMeta: id, properties, creation time. The
                                    "default" database always exists: its record is
                                    written only once its properties change.
    catalog/aliases/<db>/<alias>    AliasMeta: the engine (internal) name of the
                                    collection the alias points at

This module treats collection names as opaque engine names: how a database qualifies a
collection name is the proxy's business (``gpuvec.proxy.names``), which passes the
engine names it needs checked. Every change is one compare-and-swap transaction through
the catalog's (leader-guarded) transaction function, so a failed change leaves nothing
behind: an alias is only written while its collection's record exists and no collection
holds the alias's name; a database is only dropped at the revision that was checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gpuvec.coord.catalog import Catalog
from gpuvec.errors import (
    AliasAlreadyExistsError,
    AliasCollectionConflictError,
    AliasNotFoundError,
    CollectionNotFoundError,
    DatabaseAlreadyExistsError,
    DatabaseLimitExceededError,
    DatabaseNotFoundError,
    InvalidArgumentError,
)
from gpuvec.records import DEFAULT_DB
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Delete, DeletePrefix, Op, Put

MAX_DATABASES = 64  # Milvus's rootCoord.maxDatabaseNum default, "default" included
DB_PREFIX = K.DATABASES
ALIAS_PREFIX = K.ALIASES


@dataclass
class DatabaseMeta:
    name: str
    id: int
    properties: dict[str, str] = field(default_factory=dict)
    created_ts: int = 0


@dataclass
class AliasMeta:
    alias: str
    db_name: str
    collection: str  # the engine name of the target collection


def _dump(obj: Any) -> bytes:
    return json.dumps(asdict(obj), separators=(",", ":")).encode()


_db_key = K.database_key
_alias_key = K.alias_key


class Namespaces:
    """Database and alias records; ``catalog`` supplies meta storage, its transaction
    guard and the id allocator."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.meta = catalog.meta

    def _commit(self, compare: Sequence[Compare], ops: Sequence[Op], what: str) -> None:
        if not self.catalog.txn(compare, ops).succeeded:
            raise InvalidArgumentError(f"{what} raced with another change; retry")

    # --- databases ---------------------------------------------------------------------------
    def _get_db(self, name: str) -> tuple[DatabaseMeta, int]:
        """The record and its mod revision (0: the implicit default database)."""
        kv = self.meta.get(_db_key(name))
        if kv is not None:
            return DatabaseMeta(**json.loads(kv.value)), kv.mod_revision
        if name == DEFAULT_DB:
            return DatabaseMeta(name=DEFAULT_DB, id=0), 0
        raise DatabaseNotFoundError(f"database not found[database={name}]")

    def get_database(self, name: str) -> DatabaseMeta:
        return self._get_db(name)[0]

    def database_exists(self, name: str) -> bool:
        return name == DEFAULT_DB or self.meta.get(_db_key(name)) is not None

    def list_databases(self) -> list[str]:
        kvs, _ = self.meta.range(DB_PREFIX)
        names = sorted(kv.key[len(DB_PREFIX) :] for kv in kvs)
        return [DEFAULT_DB, *(n for n in names if n != DEFAULT_DB)]

    def create_database(self, name: str, properties: dict[str, str]) -> DatabaseMeta:
        if self.database_exists(name):
            raise DatabaseAlreadyExistsError(f"database already exist: {name}")
        if len(self.list_databases()) >= MAX_DATABASES:
            raise DatabaseLimitExceededError(
                f"exceeded the limit number of database: {MAX_DATABASES} databases exist, "
                f"cannot create {name!r}"
            )
        db = DatabaseMeta(
            name=name,
            id=self.catalog.allocate_ids(),
            properties=dict(properties),
            created_ts=int(time.time() * 1000),
        )
        key = _db_key(name)
        if not self.catalog.txn(
            [Compare(key, "version", "==", 0)], [Put(key, _dump(db))]
        ).succeeded:
            raise DatabaseAlreadyExistsError(f"database already exist: {name}")
        return db

    def drop_database(self, name: str) -> None:
        """Delete the record and any alias left in it (the caller checked that no
        collection is left), only at the revision read here."""
        if name == DEFAULT_DB:
            raise InvalidArgumentError("can not drop default database")
        _, rev = self._get_db(name)
        self._commit(
            [Compare(_db_key(name), "mod_revision", "==", rev)],
            [Delete(_db_key(name)), DeletePrefix(K.aliases_of(name))],
            f"drop of database {name!r}",
        )

    def alter_database(
        self, name: str, properties: dict[str, str], delete_keys: Sequence[str] = ()
    ) -> DatabaseMeta:
        """Set ``properties`` and remove ``delete_keys`` with compare-and-swap."""
        db, rev = self._get_db(name)
        db.properties.update(properties)
        for k in delete_keys:
            db.properties.pop(k, None)
        key = _db_key(name)
        self._commit(
            [Compare(key, "mod_revision", "==", rev)],
            [Put(key, _dump(db))],
            f"alter of database {name!r}",
        )
        return db

    # --- aliases -----------------------------------------------------------------------------
    def get_alias(self, db: str, alias: str) -> AliasMeta | None:
        kv = self.meta.get(_alias_key(db, alias))
        return None if kv is None else AliasMeta(**json.loads(kv.value))

    def list_aliases(self, db: str, collection: str | None = None) -> list[AliasMeta]:
        """Aliases of a database (of one collection, given its engine name), by name."""
        kvs, _ = self.meta.range(K.aliases_of(db))
        out = [AliasMeta(**json.loads(kv.value)) for kv in kvs]
        return sorted(
            (a for a in out if collection is None or a.collection == collection),
            key=lambda a: a.alias,
        )

    def set_alias(
        self, db: str, alias: str, collection: str, name_taken: str, *, new: bool
    ) -> None:
        """Create (``new``) or re-point an alias to the collection with engine name
        ``collection``. The transaction requires that collection's record to exist and
        ``name_taken`` (the engine name a collection called ``alias`` would have) to be
        absent; a new alias must be absent, an altered one present at the revision read."""
        akey = _alias_key(db, alias)
        kv = self.meta.get(akey)
        if new and kv is not None:
            old = AliasMeta(**json.loads(kv.value))
            if old.collection == collection:
                return  # Milvus: creating the same alias again is a no-op
            raise AliasAlreadyExistsError(
                f"alias already exist: alias {alias!r} in database {db!r} points at another "
                "collection; use alter_alias to move it"
            )
        if not new and kv is None:
            raise AliasNotFoundError(f"alias not found[database={db}][alias={alias}]")
        rec = AliasMeta(alias=alias, db_name=db, collection=collection)
        res = self.catalog.txn(
            [
                Compare(Catalog.collection_key(collection), "version", ">", 0),
                Compare(Catalog.collection_key(name_taken), "version", "==", 0),
                Compare(akey, "mod_revision", "==", 0 if kv is None else kv.mod_revision),
            ],
            [Put(akey, _dump(rec))],
        )
        if res.succeeded:
            return
        if self.meta.get(Catalog.collection_key(name_taken)) is not None:
            raise AliasCollectionConflictError(
                f"alias and collection name conflict: {alias!r} is a collection in database {db!r}"
            )
        if self.meta.get(Catalog.collection_key(collection)) is None:
            raise CollectionNotFoundError(f"collection not found[collection={collection}]")
        raise InvalidArgumentError(f"alias {alias!r} raced with another change; retry")

    def drop_alias(self, db: str, alias: str) -> None:
        akey = _alias_key(db, alias)
        kv = self.meta.get(akey)
        if kv is None:
            raise AliasNotFoundError(f"alias not found[database={db}][alias={alias}]")
        self._commit(
            [Compare(akey, "mod_revision", "==", kv.mod_revision)],
            [Delete(akey)],
            f"drop of alias {alias!r}",
        )

    def repoint_ops(
        self, aliases: Sequence[AliasMeta], collection: str
    ) -> tuple[list[Compare], list[Op]]:
        """Compares and ops that move ``aliases`` to ``collection`` (an engine name) inside
        another transaction (a rename), each only if unchanged since it was read."""
        compare: list[Compare] = []
        ops: list[Op] = []
        for a in aliases:
            key = _alias_key(a.db_name, a.alias)
            kv = self.meta.get(key)
            compare.append(Compare(key, "mod_revision", "==", kv.mod_revision if kv else 0))
            ops.append(Put(key, _dump(AliasMeta(a.alias, a.db_name, collection))))
        return compare, ops
