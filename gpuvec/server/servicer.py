"""The Milvus gRPC service: ``milvus.proto.milvus.MilvusService`` on top of the proxy role.

The servicer only translates: a request's protobuf fields become the arguments of the
embedded :class:`gpuvec.MilvusClient` (the proxy role in the single-process runtime), its
result becomes the RPC's response (``gpuvec.server.convert`` holds the data conversions,
``gpuvec.server.status`` the error mapping). No engine logic lives here.

The RPCs are grouped by concern in mixins (collections and partitions, data, indexes and
admin); every RPC of the service that none of them implements answers gRPC
``UNIMPLEMENTED`` with a message naming it (pymilvus does not retry that code).

The database of a request is its ``db_name`` field, else the ``dbname`` metadata header
pymilvus sends for a client opened with ``db_name``, else ``default``.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from gpuvec.records import DEFAULT_DB
from gpuvec.server.servicer_admin import AdminRPCs
from gpuvec.server.servicer_ddl import CollectionRPCs
from gpuvec.server.servicer_dml import DataRPCs
from gpuvec.server.servicer_import import ImportRPCs
from gpuvec.server.servicer_rbac import RbacRPCs
from gpuvec.server.servicer_segments import SegmentRPCs
from gpuvec.server.servicer_text import TextRPCs
from gpuvec.server.servicer_users import UserRPCs

__all__ = ["MilvusServicer", "implemented_rpcs"]


class MilvusServicer(
    CollectionRPCs, DataRPCs, AdminRPCs, ImportRPCs, SegmentRPCs, TextRPCs, UserRPCs, RbacRPCs,
    milvus_pb2_grpc.MilvusServiceServicer,
):  # fmt: skip
    """One servicer per server; thread-safe (gRPC runs handlers on a thread pool)."""

    def __init__(self, client: Any, *, version: str) -> None:
        self._root = client
        self._version = version
        self._views: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._next_identifier = 1
        self.credentials: Any = None  # set by the server (gpuvec.server.auth.Credentials)
        self.rbac: Any = None  # set by the server with authentication on (server.rbac.Rbac)

    # --- request context ---------------------------------------------------------------------
    @staticmethod
    def db_name(request: Any, context: grpc.ServicerContext) -> str:
        name = getattr(request, "db_name", "") or ""
        if not name:
            for key, value in context.invocation_metadata() or ():
                if key == "dbname" and value:
                    name = value
                    break
        return name or DEFAULT_DB

    def client(self, request: Any, context: grpc.ServicerContext) -> Any:
        """The proxy for the request's database (a view sharing the one engine)."""
        db = self.db_name(request, context)
        if db == DEFAULT_DB and not hasattr(self._root, "for_database"):
            return self._root
        with self._lock:
            view = self._views.get(db)
            if view is None:
                view = self._root.for_database(db)
                self._views[db] = view
        return view

    def identifier(self) -> int:
        with self._lock:
            self._next_identifier += 1
            return self._next_identifier


def implemented_rpcs() -> set[str]:
    """Names of the service's RPCs that gpuvec implements (the rest answer UNIMPLEMENTED)."""
    names = {m.name for m in milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"].methods}
    return {n for cls in _MIXINS for n in cls.__dict__ if n in names}


def _unimplemented(name: str) -> Any:
    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"gpuvec does not implement the Milvus RPC {name} (see `gpuvec serve --help` "
            "for what the server supports)",
        )

    handler.__name__ = name
    return handler


_MIXINS = (CollectionRPCs, DataRPCs, AdminRPCs, ImportRPCs, SegmentRPCs, TextRPCs, UserRPCs,
           RbacRPCs)
for _name in dir(milvus_pb2_grpc.MilvusServiceServicer):
    if _name.startswith("_") or any(_name in cls.__dict__ for cls in _MIXINS):
        continue
    if _name not in MilvusServicer.__dict__:
        setattr(MilvusServicer, _name, _unimplemented(_name))
