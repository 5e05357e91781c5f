"""User RPCs of the Milvus service (CreateCredential, UpdateCredential, DeleteCredential,
ListCredUsers) over :class:`gpuvec.server.auth.Credentials`. Passwords arrive base64-encoded,
as pymilvus sends them."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pymilvus.grpc_gen import milvus_pb2

from gpuvec.errors import InvalidArgumentError
from gpuvec.server.status import ok, rpc

__all__ = ["UserRPCs"]


def _password(field: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"{field} must be base64 of UTF-8 text: {exc}") from exc


class UserRPCs:
    """Mixin of :class:`gpuvec.server.servicer.MilvusServicer` (uses ``credentials``)."""

    credentials: Any

    @rpc
    def CreateCredential(self, request: Any, context: Any) -> Any:
        self.credentials.create(request.username, _password("password", request.password))

    @rpc
    def UpdateCredential(self, request: Any, context: Any) -> Any:
        self.credentials.update(
            request.username,
            _password("oldPassword", request.oldPassword),
            _password("newPassword", request.newPassword),
        )

    @rpc
    def DeleteCredential(self, request: Any, context: Any) -> Any:
        self.credentials.delete(request.username)
        rbac = getattr(self, "rbac", None)
        if rbac is not None:  # its role bindings go with it
            rbac.forget_user(request.username)

    @rpc
    def ListCredUsers(self, request: Any, context: Any) -> Any:
        return milvus_pb2.ListCredUsersResponse(status=ok(), usernames=self.credentials.users())
