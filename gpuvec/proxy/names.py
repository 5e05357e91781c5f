"""Database and alias resolution: user-facing names ↔ the engine's collection names.

The engine, the catalog's collection records and every other role see one flat
namespace of *engine names*. A database is a namespace the proxy resolves here:

- in the ``default`` database a collection's engine name is its plain name (so
  collections created before databases existed keep working unchanged);
- in any other database it is ``<db>.<collection>``.

User names follow Milvus's rule ``[A-Za-z_][A-Za-z0-9_]*`` (checked by
``validate_name`` before anything is qualified), so they never contain ``.``: a plain
engine name can never equal a qualified one, and ``split`` inverts ``qualify``.

An alias (``gpuvec.coord.namespaces``) belongs to a database and points at the engine
name of a collection in it. Everywhere a collection name is accepted, an alias of the
current database is too; results show user-facing names.
"""

from __future__ import annotations

from collections.abc import Callable

from gpuvec.coord.catalog import Catalog
from gpuvec.coord.namespaces import Namespaces
from gpuvec.errors import (
    AliasCollectionConflictError,
    CollectionNotFoundError,
    DatabaseNotFoundError,
    InvalidArgumentError,
)
from gpuvec.records import DEFAULT_DB
from gpuvec.schema import validate_name

SEP = "."


def qualify(db: str, name: str) -> str:
    """The engine name of collection ``name`` in database ``db`` (both validated)."""
    return name if db == DEFAULT_DB else f"{db}{SEP}{name}"


def split(engine_name: str) -> tuple[str, str]:
    """``(database, collection)`` of an engine name; inverse of :func:`qualify`."""
    db, sep, name = engine_name.partition(SEP)
    return (db, name) if sep else (DEFAULT_DB, engine_name)


def user_name(engine_name: str) -> str:
    """The collection name a user of its database sees."""
    return split(engine_name)[1]


def check_db_name(db: str) -> str:
    """Validate a database name ("" means ``default``, as in pymilvus)."""
    if db == "":
        return DEFAULT_DB
    return validate_name("database", db)


class NameResolver:
    """Resolves names within a database against the catalog and alias records.

    ``live(name)`` says whether the runtime serves a collection of that engine name
    (``Runtime.serves``); a name it knows needs no meta read (the hot path of every data
    call)."""

    def __init__(
        self, catalog: Catalog, namespaces: Namespaces, live: Callable[[str], bool]
    ) -> None:
        self.catalog, self.namespaces, self.live = catalog, namespaces, live

    def _exists(self, engine_name: str) -> bool:
        return self.live(engine_name) or self.catalog.exists(engine_name)

    def require_db(self, db: str) -> str:
        db = check_db_name(db)
        if not self.namespaces.database_exists(db):
            raise DatabaseNotFoundError(f"database not found[database={db}]")
        return db

    def resolve(self, db: str, name: str) -> str:
        """Engine name of collection or alias ``name`` in ``db``."""
        validate_name("collection", name)
        engine_name = qualify(db, name)
        if self._exists(engine_name):
            return engine_name
        alias = self.namespaces.get_alias(db, name)
        if alias is not None:
            return alias.collection
        self.require_db(db)
        raise CollectionNotFoundError(f"collection not found[database={db}][collection={name}]")

    def resolve_collection(self, db: str, name: str, action: str) -> str:
        """Engine name of collection ``name`` itself; an alias is refused (Milvus does
        for drop, rename and alias targets)."""
        validate_name("collection", name)
        engine_name = qualify(db, name)
        if self._exists(engine_name):
            return engine_name
        if self.namespaces.get_alias(db, name) is not None:
            raise InvalidArgumentError(f"cannot {action} via alias = {name}: name the collection")
        self.require_db(db)
        raise CollectionNotFoundError(f"collection not found[database={db}][collection={name}]")

    def check_free(self, db: str, name: str) -> str:
        """Engine name for a new collection ``name`` in ``db``: the database must exist
        and no alias there may hold the name."""
        self.require_db(db)
        validate_name("collection", name)
        if self.namespaces.get_alias(db, name) is not None:
            raise AliasCollectionConflictError(
                f"collection name {name!r} conflicts with an existing alias in database {db!r}"
            )
        return qualify(db, name)

    def collections(self, db: str) -> list[str]:
        """User-facing names of the collections in ``db``, sorted."""
        out = []
        for meta in self.catalog.list():
            d, name = split(meta.name)
            if d == db:
                out.append(name)
        return sorted(out)

    def aliases_of(self, engine_name: str) -> list[str]:
        """Alias names pointing at a collection (they live in its database)."""
        db = split(engine_name)[0]
        return [a.alias for a in self.namespaces.list_aliases(db, engine_name)]
