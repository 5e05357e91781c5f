"""Errors on the wire: gpuvec's error tree → Milvus ``common.Status`` and the RPC wrapper that
turns every handler's outcome into a response of the RPC's own type.

Milvus 2.4+ clients read ``Status.code`` (the ``merr`` codes that :class:`GpuvecError`
subclasses carry); older ones and a few pymilvus paths read the legacy
``Status.error_code`` enum (e.g. ``has_collection`` treats ``CollectionNotExists`` as
"False", ``describe_index`` treats ``IndexNotExist`` as "no index"). Both are set.

Invariants: a handler never lets an exception reach gRPC (an unexpected one becomes an
``UnexpectedError`` status naming the RPC and the exception: the last resort for a server
bug, which no input may reach — input is refused with a gpuvec error and its Milvus code);
a wrapped RPC answers with the response type the Milvus service declares for it; every
wrapped call is recorded once in the request metrics (:mod:`gpuvec.observability.metrics`),
and recording never changes an answer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import message_factory
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from gpuvec.errors import GpuvecError
from gpuvec.observability.metrics import collection_label, observe_request, request_scope

__all__ = ["UNEXPECTED", "legacy_code", "ok", "response_type", "rpc", "status_of"]

log = logging.getLogger("gpuvec.server")

_SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]

# merr code → legacy ErrorCode (only the ones clients branch on; the rest: UnexpectedError)
_LEGACY = {
    100: common_pb2.CollectionNotExists,
    101: common_pb2.UnexpectedError,  # collection not loaded
    200: common_pb2.UnexpectedError,  # partition not found
    700: common_pb2.IndexNotExist,
    800: common_pb2.UnexpectedError,  # database not found
    1100: common_pb2.IllegalArgument,
    1700: common_pb2.IllegalArgument,  # field not found
    1800: common_pb2.PermissionDenied,
}


UNEXPECTED = 65535  # merr "unexpected error": a server bug, never an answer to input


def legacy_code(code: int) -> int:
    """The legacy ``ErrorCode`` clients expect beside the merr ``code``."""
    return _LEGACY.get(code, common_pb2.UnexpectedError)


def ok() -> common_pb2.Status:
    return common_pb2.Status(error_code=common_pb2.Success, code=0)


def status_of(exc: BaseException, rpc_name: str = "") -> common_pb2.Status:
    """The Status for an exception: gpuvec errors keep their code and message; anything
    else is an unexpected error naming the RPC (a server bug, logged with its traceback)."""
    if isinstance(exc, GpuvecError):
        code, reason = int(exc.code), str(exc)
    else:
        code = UNEXPECTED
        reason = f"{rpc_name}: unexpected {type(exc).__name__}: {exc}"
        log.exception("unexpected error in %s", rpc_name, exc_info=exc)
    return common_pb2.Status(error_code=legacy_code(code), code=code, reason=reason)


@functools.cache
def response_type(rpc_name: str) -> type:
    """The protobuf message class the Milvus service declares as ``rpc_name``'s response."""
    return message_factory.GetMessageClass(_SERVICE.methods_by_name[rpc_name].output_type)


def error_response(rpc_name: str, status: common_pb2.Status) -> Any:
    """A response of ``rpc_name``'s type carrying only ``status``."""
    cls = response_type(rpc_name)
    if cls is common_pb2.Status:
        return status
    resp = cls()
    resp.status.CopyFrom(status)
    return resp


def _succeeded(resp: Any) -> bool:
    """Whether a response's Milvus status is a success."""
    st = resp if isinstance(resp, common_pb2.Status) else getattr(resp, "status", None)
    return st is None or (st.code == 0 and st.error_code == common_pb2.Success)


def _collection_label(servicer: Any, request: Any, context: Any) -> str:
    """The ``collection_name`` metrics label of a request (database-qualified)."""
    name = getattr(request, "collection_name", "")
    if not name or not isinstance(name, str):
        return ""
    db_name = getattr(servicer, "db_name", None)
    return collection_label(db_name(request, context) if db_name else "", name)


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method ``(self, request, context) -> response``: errors become the
    RPC's response type with the mapped status; a handler may return None for "OK, nothing
    else" (a plain success Status or an empty response with it).

    Every call is recorded as one request named after the RPC (success or fail from the
    response's Milvus status), and runs inside :func:`request_scope`, so the client calls
    the handler makes are not counted again."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        start = time.perf_counter()
        authorize = getattr(self, "authorize", None)
        if authorize is not None:  # RBAC: aborts the call (PERMISSION_DENIED) when denied
            authorize(name, request, context)
        with request_scope():
            try:
                resp = fn(self, request, context)
            except Exception as exc:
                resp = error_response(name, status_of(exc, name))
            else:
                if resp is None:
                    resp = error_response(name, ok())
        try:
            good = _succeeded(resp)
            label = _collection_label(self, request, context) if good else ""
            observe_request(name, good, time.perf_counter() - start, label)
        except Exception:  # metrics never change an answer
            log.debug("metrics of %s not recorded", name, exc_info=True)
        return resp

    return wrapper
