"""Role-based access control of the Milvus endpoint, as Milvus does it (with ``--auth``).

Owns :class:`Rbac`: roles, the users' roles, grants and privilege groups in meta storage,
and :meth:`Rbac.allowed`, the check every RPC passes before it runs.

* **Roles.** ``admin`` and ``public`` are built in (not creatable, not droppable); every
  user holds ``public``; ``root`` and the holders of ``admin`` may do everything.
  ``public`` may DescribeCollection, ShowCollections and IndexDetail on every collection
  of every database, as in Milvus.
* **Grants** are ``(role, object type, database, object name, privilege)``: a privilege
  name (``Search``, ``Insert``, ... as pymilvus sends them), ``All``, a built-in privilege
  group (``CollectionReadOnly`` ... ``ClusterAdmin``: Milvus's lists) or a custom group;
  ``*`` stands for every database or object. A grant through ``grant_privilege_v2`` has the
  object type Milvus derives from the privilege's level.
* **The check** (:meth:`Rbac.allowed`): the privilege an RPC needs comes from the
  ``privilege_ext_obj`` option of its request message in Milvus's own protocol files
  (object type, privilege, which request field names the object); an object-less request
  is checked against ``*``. A grant matches when its database is the request's or ``*``,
  its object is the request's or ``*``, and its privilege (expanded through groups) covers
  the needed one. Object types are not compared: a grant of a collection privilege at
  another object type still counts (Milvus is stricter there). A user may always read
  their own user record and change their own password. RPCs without the option (Connect,
  GetVersion, HasCollection, ...) need only authentication.

Meta keys (``storage/meta/keys.py``): ``auth/roles/<role>``,
``auth/user-roles/<user>/<role>``, ``auth/grants/<role>/<type>/<db>/<object>/<privilege>``
(the grantor as value), ``auth/privilege-groups/<group>`` (its privileges, JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gpuvec.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    MetaStore,
    Op,
    Put,
    TxnResult,
)

__all__ = [
    "BUILTIN_GROUPS", "BUILTIN_ROLES", "Grant", "Needed", "Rbac", "check_name", "needed_privilege",
]

ADMIN, PUBLIC, ROOT = "admin", "public", "root"
BUILTIN_ROLES = (ADMIN, PUBLIC)
ANY = "*"
PUBLIC_PRIVILEGES = ("DescribeCollection", "ShowCollections", "IndexDetail")
_COLL_RO = ("Query", "Search", "IndexDetail", "GetFlushState", "GetLoadState",
            "GetLoadingProgress", "HasPartition", "ShowPartitions", "DescribeCollection",
            "DescribeAlias", "GetStatistics", "ListAliases")  # fmt: skip
_COLL_RW = (*_COLL_RO, "Load", "Release", "Insert", "Delete", "Upsert", "Import", "Flush",
            "Compaction", "LoadBalance", "CreateIndex", "DropIndex", "CreatePartition",
            "DropPartition")  # fmt: skip
_DB_RO = ("ShowCollections", "DescribeDatabase")
_CLUSTER_RO = ("ListDatabases", "SelectOwnership", "SelectUser", "DescribeResourceGroup",
               "ListResourceGroups", "ListPrivilegeGroups")  # fmt: skip
_CLUSTER_RW = (*_CLUSTER_RO, "FlushAll", "TransferNode", "TransferReplica",
               "UpdateResourceGroups")  # fmt: skip
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "CollectionReadOnly": _COLL_RO,
    "CollectionReadWrite": _COLL_RW,
    "CollectionAdmin": (*_COLL_RW, "CreateAlias", "DropAlias"),
    "DatabaseReadOnly": _DB_RO,
    "DatabaseReadWrite": (*_DB_RO, "AlterDatabase"),
    "DatabaseAdmin": (*_DB_RO, "AlterDatabase", "CreateCollection", "DropCollection"),
    "ClusterReadOnly": _CLUSTER_RO,
    "ClusterReadWrite": _CLUSTER_RW,
    "ClusterAdmin": (
        *_CLUSTER_RW,
        "BackupRBAC",
        "RestoreRBAC",
        "CreateDatabase",
        "DropDatabase",
        "CreateOwnership",
        "DropOwnership",
        "ManageOwnership",
        "CreateResourceGroup",
        "DropResourceGroup",
        "UpdateUser",
        "RenameCollection",
        "CreatePrivilegeGroup",
        "DropPrivilegeGroup",
        "OperatePrivilegeGroup",
    ),
}
_GROUP_LEVEL = {"Collection": "Collection", "Database": "Global", "Cluster": "Global"}
_CACHE_S = 2.0  # grants are re-read at most this often per process (writes clear it)


def _privileges() -> set[str]:
    """Every single privilege Milvus's protocol names (``PrivilegeX`` → ``X``)."""
    from pymilvus.grpc_gen import common_pb2

    names = common_pb2.ObjectPrivilege.DESCRIPTOR.values_by_name
    return {n.removeprefix("Privilege") for n in names
            if n.startswith("Privilege") and not n.startswith("PrivilegeGroup")}  # fmt: skip


@dataclass(frozen=True)
class Grant:
    role: str
    object_type: str
    db: str
    object_name: str
    privilege: str
    grantor: str = ""


@dataclass(frozen=True)
class Needed:
    """What one RPC call needs: a privilege on objects of a type in a database."""

    privilege: str
    object_type: str
    names: tuple[str, ...]  # the objects named by the request (ANY when none)


_NEEDED: dict[str, Any] = {}


def needed_privilege(request: Any, db: str) -> Needed | None:
    """The privilege a request message needs (its ``privilege_ext_obj`` option), or None
    for requests that need only authentication."""
    desc = request.DESCRIPTOR
    spec = _NEEDED.get(desc.full_name, False)
    if spec is False:
        from pymilvus.grpc_gen import common_pb2

        spec = None
        opts = desc.GetOptions()
        ext = common_pb2.privilege_ext_obj
        if opts.HasExtension(ext):
            e = opts.Extensions[ext]
            number = e.object_name_index if e.object_name_index > 0 else e.object_name_indexs
            fname = next((f.name for f in desc.fields if f.number == number), None)
            if fname is None and "collection_name" in desc.fields_by_name:
                fname = "collection_name"  # Global-typed requests that name a collection
            spec = (common_pb2.ObjectPrivilege.Name(e.object_privilege).removeprefix("Privilege"),
                    common_pb2.ObjectType.Name(e.object_type), fname)  # fmt: skip
        _NEEDED[desc.full_name] = spec
    if spec is None:
        return None
    privilege, otype, fname = spec
    names: tuple[str, ...] = (ANY,)
    if fname is not None:
        value = getattr(request, fname)
        if hasattr(value, "DESCRIPTOR"):  # an entity message (UserEntity, RoleEntity...)
            value = getattr(value, "name", "")
        got = tuple(value) if not isinstance(value, str) else ((value,) if value else ())
        names = got or (ANY,)
    return Needed(privilege, otype, names)


class Rbac:
    """Roles, user roles, grants and privilege groups (module docstring)."""

    def __init__(
        self, meta: MetaStore,
        txn: Callable[[Sequence[Compare], Sequence[Op]], TxnResult] | None = None,
        users: Callable[[], list[str]] | None = None,
    ) -> None:  # fmt: skip
        self.meta, self.txn = meta, txn or meta.txn
        self._users = users or (lambda: [])
        self._lock = threading.Lock()
        self._cache: tuple[float, Any] | None = None  # (expiry, _snapshot's tuple)
        self.known = _privileges()

    # --- roles -------------------------------------------------------------------------------
    def roles(self) -> list[str]:
        kvs, _ = self.meta.range(K.ROLES)
        return sorted({*BUILTIN_ROLES, *(kv.key[len(K.ROLES) :] for kv in kvs)})

    def _check_role(self, role: str) -> None:
        if role not in self.roles():
            raise NotFoundError(f"role not found[role={role}]")

    def create_role(self, role: str) -> None:
        check_name("role", role)
        if role in BUILTIN_ROLES:
            raise AlreadyExistsError(f"role [{role}] already exists")
        key = K.ROLES + role
        if not self.txn([Compare(key, "version", "==", 0)], [Put(key, b"{}")]).succeeded:
            raise AlreadyExistsError(f"role [{role}] already exists")
        self.changed()

    def drop_role(self, role: str, force: bool = False) -> None:
        if role in BUILTIN_ROLES:
            raise InvalidArgumentError(
                f"the role[{role}] is a default role, which can't be dropped"
            )
        self._check_role(role)
        grants = self.grants(role)
        if grants and not force:
            raise InvalidArgumentError(
                f"can not drop the role: {role}, it has privileges ({len(grants)} grants); "
                "revoke them first or drop it with force_drop=True"
            )
        ops: list[Op] = [Delete(K.ROLES + role), DeletePrefix(f"{K.GRANTS}{role}/")]
        ops += [Delete(f"{K.USER_ROLES}{u}/{role}") for u in self.users_of(role)]
        self.txn([], ops)
        self.changed()

    def users_of(self, role: str) -> list[str]:
        kvs, _ = self.meta.range(K.USER_ROLES)
        out = []
        for kv in kvs:
            user, _, r = kv.key[len(K.USER_ROLES) :].partition("/")
            if r == role:
                out.append(user)
        return sorted(out)

    def roles_of(self, user: str) -> list[str]:
        kvs, _ = self.meta.range(f"{K.USER_ROLES}{user}/")
        return sorted(kv.key.rsplit("/", 1)[-1] for kv in kvs)

    def grant_role(self, user: str, role: str) -> None:
        if user not in self._users():
            raise NotFoundError(f"user not found[user={user}]")
        self._check_role(role)
        self.txn([], [Put(f"{K.USER_ROLES}{user}/{role}", b"")])
        self.changed()

    def revoke_role(self, user: str, role: str) -> None:
        if user not in self._users():
            raise NotFoundError(f"user not found[user={user}]")
        self._check_role(role)
        self.txn([], [Delete(f"{K.USER_ROLES}{user}/{role}")])
        self.changed()

    def forget_user(self, user: str) -> None:
        """Drop a deleted user's role bindings."""
        self.txn([], [DeletePrefix(f"{K.USER_ROLES}{user}/")])
        self.changed()

    # --- privilege groups --------------------------------------------------------------------
    def groups(self) -> dict[str, list[str]]:
        kvs, _ = self.meta.range(K.PRIVILEGE_GROUPS)
        return {kv.key[len(K.PRIVILEGE_GROUPS) :]: json.loads(kv.value) for kv in kvs}

    def create_group(self, name: str) -> None:
        check_name("privilege group", name)
        if name in BUILTIN_GROUPS or name in self.known or name == "All":
            raise InvalidArgumentError(
                f"privilege group name [{name}] is defined by built in privileges or "
                "privilege groups in system"
            )
        key = K.PRIVILEGE_GROUPS + name
        if not self.txn([Compare(key, "version", "==", 0)], [Put(key, b"[]")]).succeeded:
            raise AlreadyExistsError(f"privilege group [{name}] already exists")
        self.changed()

    def drop_group(self, name: str) -> None:
        if name in BUILTIN_GROUPS:
            raise InvalidArgumentError(f"privilege group [{name}] is built in and can't be dropped")
        in_use = [g for g in self._all_grants() if g.privilege == name]
        if in_use:
            raise InvalidArgumentError(
                f"privilege group [{name}] is used by role {in_use[0].role}, revoke it first"
            )
        self.txn([], [Delete(K.PRIVILEGE_GROUPS + name)])
        self.changed()

    def alter_group(self, name: str, privileges: list[str], add: bool) -> None:
        groups = self.groups()
        if name not in groups:
            raise NotFoundError(f"privilege group [{name}] does not exist")
        for p in privileges:
            if p not in self.known:
                raise InvalidArgumentError(f"privilege name [{p}] is not defined in system")
        now = set(groups[name])
        now = now | set(privileges) if add else now - set(privileges)
        self.txn([], [Put(K.PRIVILEGE_GROUPS + name, json.dumps(sorted(now)).encode())])
        self.changed()

    # --- grants ------------------------------------------------------------------------------
    def object_type_of(self, privilege: str) -> str:
        """The object type of a v2 grant: a group's level, a privilege's own type."""
        for prefix, otype in _GROUP_LEVEL.items():
            if privilege.startswith(prefix) and privilege in BUILTIN_GROUPS:
                return otype
        types = object_types_of(privilege)
        return "Global" if "Global" in types else min(types)

    def check_v1(self, g: Grant) -> None:
        """Milvus's rules for a v1 grant (an explicit object type): groups are granted by
        v2 only, and a privilege only under its own object type."""
        for kind, names in (("built-in", BUILTIN_GROUPS), ("custom", self.groups())):
            if g.privilege in names:
                raise InvalidArgumentError(
                    f"can not operate the {kind} privilege group [{g.privilege}]"
                )
        if g.privilege not in ("All", ANY) and g.privilege in self.known and (
            g.object_type not in object_types_of(g.privilege)
        ):  # fmt: skip
            raise InvalidArgumentError(
                f"not found the privilege name[{g.privilege}] in object[{g.object_type}]"
            )

    def grant_key(self, g: Grant) -> str:
        return f"{K.GRANTS}{g.role}/{g.object_type}/{g.db}/{g.object_name}/{g.privilege}"

    def check_grant(self, g: Grant, groups: Iterable[str]) -> None:
        """Refuse a grant whose privilege is neither known, ``All``, a built-in group nor
        one of ``groups``, or whose object type Milvus does not have."""
        if g.privilege not in self.known and g.privilege not in BUILTIN_GROUPS and (
            g.privilege != "All" and g.privilege not in groups
        ):  # fmt: skip
            raise InvalidArgumentError(f"not found the privilege name[{g.privilege}]")
        if g.object_type not in ("Collection", "Global", "User"):
            raise InvalidArgumentError(f"not found the object type[name: {g.object_type}]")

    def grant(self, g: Grant, revoke: bool = False) -> None:
        self._check_role(g.role)
        if g.role == ADMIN:
            raise InvalidArgumentError("the role admin holds every privilege: nothing to grant")
        self.check_grant(g, self.groups())
        key = self.grant_key(g)
        if revoke:
            self.txn([], [Delete(key)])
        else:
            self.txn([], [Put(key, json.dumps({"grantor": g.grantor}).encode())])
        self.changed()

    def grants(self, role: str, object_type: str = "", object_name: str = "",
               db: str = "") -> list[Grant]:  # fmt: skip
        out = []
        for g in self._all_grants():
            if g.role != role or (object_type and g.object_type != object_type):
                continue
            if (object_name and g.object_name != object_name) or (db and g.db != db):
                continue
            out.append(g)
        return out

    def _all_grants(self) -> list[Grant]:
        kvs, _ = self.meta.range(K.GRANTS)
        out = []
        for kv in kvs:
            role, otype, db, name, privilege = kv.key[len(K.GRANTS) :].split("/", 4)
            grantor = json.loads(kv.value or b"{}").get("grantor", "")
            out.append(Grant(role, otype, db, name, privilege, grantor))
        return out

    # --- the check ---------------------------------------------------------------------------
    def changed(self) -> None:
        with self._lock:
            self._cache = None

    def _snapshot(self) -> tuple[dict[str, list[Grant]], dict[str, set[str]], dict[str, set[str]]]:
        """(grants by role, privileges by group, roles by user), re-read from meta at most
        every :data:`_CACHE_S` seconds (and after every write here): the check every RPC
        passes reads no meta."""
        now = time.monotonic()
        with self._lock:
            if self._cache is not None and self._cache[0] > now:
                return self._cache[1]
        by_role: dict[str, list[Grant]] = {}
        for g in self._all_grants():
            by_role.setdefault(g.role, []).append(g)
        groups = {k: set(v) for k, v in BUILTIN_GROUPS.items()}
        groups.update({k: set(v) for k, v in self.groups().items()})
        by_user: dict[str, set[str]] = {}
        kvs, _ = self.meta.range(K.USER_ROLES)
        for kv in kvs:
            user, _, role = kv.key[len(K.USER_ROLES) :].partition("/")
            by_user.setdefault(user, set()).add(role)
        snap = (by_role, groups, by_user)
        with self._lock:
            self._cache = (now + _CACHE_S, snap)
        return snap

    def allowed(self, user: str, needed: Needed, db: str) -> bool:
        """Whether ``user`` holds ``needed`` on every object it names in database ``db``."""
        if user == ROOT:
            return True
        by_role, groups, by_user = self._snapshot()
        roles = {PUBLIC, *by_user.get(user, ())}
        if ADMIN in roles:
            return True
        if needed.object_type == "User" and needed.names == (user,):
            return True  # one's own user record and password

        def covers(g: Grant) -> bool:
            if g.privilege in ("All", needed.privilege):  # a privilege counts for its type
                return g.object_type == needed.object_type
            return needed.privilege in groups.get(g.privilege, ())  # a group: its members

        for name in needed.names:
            if PUBLIC in roles and needed.privilege in PUBLIC_PRIVILEGES:
                continue
            if not any(g.db in (db, ANY) and g.object_name in (name, ANY) and covers(g)
                       for r in roles for g in by_role.get(r, ())):  # fmt: skip
                return False
        return True


_TYPES: dict[str, frozenset[str]] = {}


def object_types_of(privilege: str) -> frozenset[str]:
    """The object types ``privilege`` is checked under: those of the requests that need it
    in Milvus's protocol options (most have one), else User for the user privileges,
    Collection for collection data and index privileges, Global for the rest."""
    if not _TYPES:
        from pymilvus.grpc_gen import common_pb2, milvus_pb2

        ext = common_pb2.privilege_ext_obj
        found: dict[str, set[str]] = {}
        for desc in milvus_pb2.DESCRIPTOR.message_types_by_name.values():
            opts = desc.GetOptions()
            if opts.HasExtension(ext):
                e = opts.Extensions[ext]
                name = common_pb2.ObjectPrivilege.Name(e.object_privilege).removeprefix("Privilege")
                found.setdefault(name, set()).add(common_pb2.ObjectType.Name(e.object_type))
        _TYPES.update({k: frozenset(v) for k, v in found.items()})
    got = _TYPES.get(privilege)
    if got:
        return got
    if privilege in ("UpdateUser", "SelectUser"):
        return frozenset({"User"})
    return frozenset({"Collection" if privilege in _COLL_RW else "Global"})


def check_name(what: str, name: str) -> None:
    if not name or len(name) > 255 or not (name[0].isalpha() or name[0] == "_") or not all(
        c.isalnum() or c in "_-" for c in name
    ):  # fmt: skip
        raise InvalidArgumentError(
            f"invalid {what} name [{name}]: the first character must be a letter or an "
            "underscore, the rest letters, digits, underscores or dashes (at most 255)"
        )
