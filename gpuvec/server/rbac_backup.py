"""Backup and restore of the access-control meta (Milvus's BackupRBAC / RestoreRBAC).

:func:`backup` reads what an operator would need to rebuild access control elsewhere:
every user but ``root`` with its stored password record (a salted hash, never the
password) and roles, the custom roles, every grant and the custom privilege groups.
:func:`restore` writes such a snapshot into this server's meta in **one** transaction:
a role, a privilege group or a user that exists already refuses the whole restore
(``role [r] already exists``, as Milvus words it) and nothing is written; so does a
grant or a user role naming a role neither restored nor existing, a grant that
:meth:`Rbac.check_grant` refuses, or a user name ``create_user`` would refuse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gpuvec.errors import AlreadyExistsError, InvalidArgumentError
from gpuvec.server.auth import ROOT_USER, Credentials, check_username
from gpuvec.server.rbac import BUILTIN_ROLES, Grant, Rbac, check_name
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import Compare, Op, Put

__all__ = ["RbacSnapshot", "UserRecord", "backup", "restore"]


@dataclass
class UserRecord:
    name: str
    password_record: str  # the stored salted-hash record (JSON text)
    roles: list[str] = field(default_factory=list)


@dataclass
class RbacSnapshot:
    users: list[UserRecord] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)


def backup(rbac: Rbac, credentials: Credentials) -> RbacSnapshot:
    """The users (but root), custom roles, grants and custom privilege groups."""
    snap = RbacSnapshot()
    for user in credentials.users():
        if user == ROOT_USER:
            continue
        record = credentials.record(user)
        if record is None:  # dropped while we read
            continue
        snap.users.append(UserRecord(user, record, rbac.roles_of(user)))
    snap.roles = [r for r in rbac.roles() if r not in BUILTIN_ROLES]
    for role in rbac.roles():
        snap.grants.extend(rbac.grants(role))
    snap.groups = rbac.groups()
    return snap


def _check_record(user: str, text: str) -> None:
    try:
        rec = json.loads(text)
        ok = isinstance(rec, dict) and {"salt", "hash"} <= rec.keys()
        if ok:
            bytes.fromhex(rec["salt"])
            bytes.fromhex(rec["hash"])
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise InvalidArgumentError(
            f"user [{user}]: the password is not a password record this server stores "
            "(restore takes what BackupRBAC returned)"
        )


def restore(rbac: Rbac, credentials: Credentials, snap: RbacSnapshot) -> None:
    """Write ``snap`` in one transaction, or nothing (module docstring)."""
    existing_roles = set(rbac.roles())
    for role in snap.roles:
        check_name("role", role)
        if role in existing_roles:
            raise AlreadyExistsError(f"role [{role}] already exists")
    groups = rbac.groups()
    for name in snap.groups:
        check_name("privilege group", name)
        if name in groups:
            raise AlreadyExistsError(f"privilege group [{name}] already exists")
    users = set(credentials.users())
    for u in snap.users:
        check_username(u.name)
        if u.name in users:
            raise AlreadyExistsError(f"user [{u.name}] already exists")
        _check_record(u.name, u.password_record)
    roles = existing_roles | set(snap.roles)
    for role in [r for u in snap.users for r in u.roles] + [g.role for g in snap.grants]:
        if role not in roles:
            raise InvalidArgumentError(f"role not found[role={role}]")
    for g in snap.grants:
        rbac.check_grant(g, {*groups, *snap.groups})
    cmps: list[Compare] = []
    ops: list[Op] = []

    def put_new(key: str, value: bytes) -> None:
        cmps.append(Compare(key, "version", "==", 0))
        ops.append(Put(key, value))

    for role in snap.roles:
        put_new(K.ROLES + role, b"{}")
    for name, privileges in snap.groups.items():
        put_new(K.PRIVILEGE_GROUPS + name, json.dumps(sorted(privileges)).encode())
    for u in snap.users:
        put_new(K.USERS + u.name, u.password_record.encode())
        ops.extend(Put(f"{K.USER_ROLES}{u.name}/{r}", b"") for r in u.roles)
    for g in snap.grants:
        ops.append(Put(rbac.grant_key(g), json.dumps({"grantor": g.grantor}).encode()))
    if ops and not rbac.txn(cmps, ops).succeeded:
        raise AlreadyExistsError("restore raced with another change of access control; retry")
    rbac.changed()
