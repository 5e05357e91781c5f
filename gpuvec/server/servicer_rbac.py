"""RBAC RPCs of the Milvus service over :class:`gpuvec.server.rbac.Rbac` (CreateRole,
DropRole, OperateUserRole, SelectRole, SelectUser, OperatePrivilege, OperatePrivilegeV2,
SelectGrant, CreatePrivilegeGroup, DropPrivilegeGroup, ListPrivilegeGroups,
OperatePrivilegeGroup; BackupRBAC and RestoreRBAC over :mod:`gpuvec.server.rbac_backup`),
and :meth:`RbacRPCs.authorize`, the check every RPC passes first when the server runs with
authentication (a denied call ends with gRPC ``PERMISSION_DENIED`` and Milvus's message, as
pymilvus expects)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from pymilvus.grpc_gen import milvus_pb2

from gpuvec.errors import NotFoundError
from gpuvec.server.auth import parse_authorization
from gpuvec.server.rbac import Grant, Rbac, needed_privilege
from gpuvec.server.rbac_backup import RbacSnapshot, UserRecord, backup, restore
from gpuvec.server.status import ok, rpc

__all__ = ["RbacRPCs"]

log = logging.getLogger("gpuvec.server")


def _grant_of(e: Any) -> Grant:
    return Grant(e.role.name, e.object.name, e.db_name or "default", e.object_name or "*",
                 e.grantor.privilege.name, e.grantor.user.name)  # fmt: skip


def _grant_entity(g: Grant) -> Any:
    return milvus_pb2.GrantEntity(
        role=milvus_pb2.RoleEntity(name=g.role),
        object=milvus_pb2.ObjectEntity(name=g.object_type),
        object_name=g.object_name,
        db_name=g.db,
        grantor=milvus_pb2.GrantorEntity(
            user=milvus_pb2.UserEntity(name=g.grantor),
            privilege=milvus_pb2.PrivilegeEntity(name=g.privilege),
        ),
    )


class RbacRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer` (uses ``rbac``, set with
    authentication on, and ``credentials``)."""

    rbac: Rbac | None
    credentials: Any
    db_name: Any  # the servicer's: (request, context) -> the request's database

    def _rbac(self) -> Rbac:
        if self.rbac is None:
            raise NotFoundError(
                "role-based access control needs authentication: start the server with --auth"
            )
        return self.rbac

    @staticmethod
    def caller(context: Any) -> str:
        """The authenticated user of a call ("" when none)."""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                parsed = parse_authorization(value)
                return parsed[0] if parsed else ""
        return ""

    def authorize(self, name: str, request: Any, context: Any) -> None:
        """Abort the call with ``PERMISSION_DENIED`` when its user lacks the privilege."""
        if self.rbac is None or not hasattr(request, "DESCRIPTOR"):
            return
        db = self.db_name(request, context)
        try:
            needed = needed_privilege(request, db)
            user = self.caller(context)
            allowed = needed is None or self.rbac.allowed(user, needed, db)
        except Exception:  # a check that cannot run denies, never crashes the call
            log.exception("privilege check of %s failed", name)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name}: privilege check failed")
        if not allowed:
            assert needed is not None
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Privilege{needed.privilege}: permission deny to {user} in the `{db}` database",
            )

    # --- roles -------------------------------------------------------------------------------
    @rpc
    def CreateRole(self, request: Any, context: Any) -> Any:
        self._rbac().create_role(request.entity.name)

    @rpc
    def DropRole(self, request: Any, context: Any) -> Any:
        self._rbac().drop_role(request.role_name, force=request.force_drop)

    @rpc
    def OperateUserRole(self, request: Any, context: Any) -> Any:
        rbac = self._rbac()
        if request.type == milvus_pb2.OperateUserRoleType.AddUserToRole:
            rbac.grant_role(request.username, request.role_name)
        else:
            rbac.revoke_role(request.username, request.role_name)

    @rpc
    def SelectRole(self, request: Any, context: Any) -> Any:
        rbac = self._rbac()
        names = rbac.roles()
        if request.role.name:
            if request.role.name not in names:
                raise NotFoundError(f"role not found[role={request.role.name}]")
            names = [request.role.name]
        results = []
        for role in names:
            users = rbac.users_of(role) if request.include_user_info else []
            results.append(milvus_pb2.RoleResult(
                role=milvus_pb2.RoleEntity(name=role),
                users=[milvus_pb2.UserEntity(name=u) for u in users],
            ))  # fmt: skip
        return milvus_pb2.SelectRoleResponse(status=ok(), results=results)

    @rpc
    def SelectUser(self, request: Any, context: Any) -> Any:
        rbac = self._rbac()
        users = self.credentials.users()
        if request.user.name:
            if request.user.name not in users:
                raise NotFoundError(f"user not found[user={request.user.name}]")
            users = [request.user.name]
        results = []
        for user in users:
            roles = rbac.roles_of(user) if request.include_role_info else []
            results.append(milvus_pb2.UserResult(
                user=milvus_pb2.UserEntity(name=user),
                roles=[milvus_pb2.RoleEntity(name=r) for r in roles],
            ))  # fmt: skip
        return milvus_pb2.SelectUserResponse(status=ok(), results=results)

    # --- grants ------------------------------------------------------------------------------
    @rpc
    def OperatePrivilege(self, request: Any, context: Any) -> Any:
        e = request.entity
        grant = Grant(e.role.name, e.object.name, e.db_name or self.db_name(request, context),
                      e.object_name, e.grantor.privilege.name, self.caller(context))  # fmt: skip
        rbac = self._rbac()
        if request.version != "v2":
            rbac.check_v1(grant)
        rbac.grant(grant, revoke=request.type == milvus_pb2.OperatePrivilegeType.Revoke)

    @rpc
    def OperatePrivilegeV2(self, request: Any, context: Any) -> Any:
        rbac = self._rbac()
        privilege = request.grantor.privilege.name
        otype = rbac.object_type_of(privilege)
        name = request.collection_name or "*"
        if otype == "Global":
            name = "*"
        grant = Grant(request.role.name, otype, request.db_name or "default", name, privilege,
                      self.caller(context))  # fmt: skip
        rbac.grant(grant, revoke=request.type == milvus_pb2.OperatePrivilegeType.Revoke)

    @rpc
    def SelectGrant(self, request: Any, context: Any) -> Any:
        e = request.entity
        rbac = self._rbac()
        if e.role.name not in rbac.roles():
            raise NotFoundError(f"role not found[role={e.role.name}]")
        grants = rbac.grants(e.role.name, e.object.name, e.object_name, e.db_name)
        return milvus_pb2.SelectGrantResponse(
            status=ok(), entities=[_grant_entity(g) for g in grants]
        )

    # --- privilege groups --------------------------------------------------------------------
    @rpc
    def CreatePrivilegeGroup(self, request: Any, context: Any) -> Any:
        self._rbac().create_group(request.group_name)

    @rpc
    def DropPrivilegeGroup(self, request: Any, context: Any) -> Any:
        self._rbac().drop_group(request.group_name)

    @rpc
    def ListPrivilegeGroups(self, request: Any, context: Any) -> Any:
        groups = self._rbac().groups()
        infos = [milvus_pb2.PrivilegeGroupInfo(
                     group_name=name,
                     privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in privileges])
                 for name, privileges in sorted(groups.items())]  # fmt: skip
        return milvus_pb2.ListPrivilegeGroupsResponse(status=ok(), privilege_groups=infos)

    @rpc
    def OperatePrivilegeGroup(self, request: Any, context: Any) -> Any:
        add = request.type == milvus_pb2.OperatePrivilegeGroupType.AddPrivilegesToGroup
        names = [p.name for p in request.privileges]
        self._rbac().alter_group(request.group_name, names, add=add)

    # --- backup and restore ------------------------------------------------------------------
    @rpc
    def BackupRBAC(self, request: Any, context: Any) -> Any:
        snap = backup(self._rbac(), self.credentials)
        meta = milvus_pb2.RBACMeta(
            users=[milvus_pb2.UserInfo(
                       user=u.name, password=u.password_record,
                       roles=[milvus_pb2.RoleEntity(name=r) for r in u.roles])
                   for u in snap.users],
            roles=[milvus_pb2.RoleEntity(name=r) for r in snap.roles],
            grants=[_grant_entity(g) for g in snap.grants],
            privilege_groups=[milvus_pb2.PrivilegeGroupInfo(
                                  group_name=name,
                                  privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in ps])
                              for name, ps in sorted(snap.groups.items())],
        )  # fmt: skip
        return milvus_pb2.BackupRBACMetaResponse(status=ok(), RBAC_meta=meta)

    @rpc
    def RestoreRBAC(self, request: Any, context: Any) -> Any:
        m = request.RBAC_meta
        snap = RbacSnapshot(
            users=[UserRecord(u.user, u.password, [r.name for r in u.roles]) for u in m.users],
            roles=[r.name for r in m.roles],
            grants=[_grant_of(g) for g in m.grants],
            groups={g.group_name: [p.name for p in g.privileges] for g in m.privilege_groups},
        )
        restore(self._rbac(), self.credentials, snap)
