"""The user and access-control part of ``MilvusClient`` on the embedded runtime: pymilvus's
method names (``create_user``, ``create_role``, ``grant_privilege_v2``, ...) exist and
refuse with one clear error. The embedded runtime has no users — whoever opens the directory
owns it, as with Milvus Lite — while ``gpuvec serve --auth`` and the cluster proxy enforce
users, roles and privileges (:mod:`gpuvec.server.rbac`) for any pymilvus client. A part of
``MilvusClient`` (a base class of it)."""

from __future__ import annotations

from typing import Any, NoReturn

from gpuvec.errors import NotSupportedYetError

__all__ = ["AccessMethods"]

_METHODS = (
    "create_user", "drop_user", "update_password", "list_users", "describe_user",
    "create_role", "drop_role", "describe_role", "list_roles", "grant_role", "revoke_role",
    "grant_privilege", "revoke_privilege", "grant_privilege_v2", "revoke_privilege_v2",
    "create_privilege_group", "drop_privilege_group", "list_privilege_groups",
    "add_privileges_to_group", "remove_privileges_from_group",
)  # fmt: skip


def _refuse(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotSupportedYetError(
            f"{name}: the embedded runtime has no users or roles (whoever opens the directory "
            "owns it); run `gpuvec serve --auth` (or a cluster proxy with --auth) and connect "
            "with pymilvus to manage users, roles and privileges"
        )

    method.__name__ = name
    method.__doc__ = f"pymilvus's ``{name}``: refused on the embedded runtime (module docstring)."
    return method


class AccessMethods:
    pass


for _name in _METHODS:
    setattr(AccessMethods, _name, _refuse(_name))
