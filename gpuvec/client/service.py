"""Proxy methods the Milvus gRPC endpoint needs beyond pymilvus's ``MilvusClient`` surface:
a collection's schema object, timestamps, health and the runtime's components and system
info (GetComponentStates, GetMetrics), the meta store and its leader guard (for users),
and a flush of every collection on shutdown. A part (base class) of
:class:`gpuvec.MilvusClient`, over its ``_engine`` (:class:`~gpuvec.runtime.base.Runtime`)."""

from __future__ import annotations

from typing import Any

from gpuvec.runtime.base import Runtime
from gpuvec.schema import CollectionSchema
from gpuvec.storage.meta.base import MetaStore
from gpuvec.storage.meta.keys import NEXT_ID

__all__ = ["ServiceMethods"]


class ServiceMethods:
    _engine: Runtime
    _names: Any
    _db: str

    def _coll(self, name: str) -> Any:  # provided by MilvusClient
        raise NotImplementedError

    def collection_schema(self, collection_name: str) -> CollectionSchema:
        """The schema of a collection (or alias target) of the current database."""
        return self._coll(collection_name).schema

    def alloc_timestamp(self) -> int:
        """A fresh hybrid timestamp from the coordinator's TSO."""
        return int(self._engine.tso.allocate())

    def check_health(self) -> tuple[bool, list[str]]:
        """(healthy, reasons): the meta store answers a read, and the runtime leads its data
        (an engine whose lease lapsed and could not be reclaimed says why)."""
        reasons = []
        try:
            self._engine.meta.get(NEXT_ID)
        except Exception as exc:
            reasons.append(f"meta storage: {type(exc).__name__}: {exc}")
        problem = self._engine.health()
        if problem:
            reasons.append(f"coordinator: {problem}")
        return not reasons, reasons

    def components(self, reasons: list[str]) -> list[dict[str, Any]]:
        """The roles behind this proxy with their health (GetComponentStates); ``reasons``
        are :meth:`check_health`'s."""
        from gpuvec.observability.system_info import components

        return components(self._engine, reasons)

    def system_info(self, request: str, version: str) -> dict[str, Any]:
        """GetMetrics: the answer to a JSON request; only ``{"metric_type": "system_info"}``
        is served (anything else raises InvalidArgumentError)."""
        from gpuvec.observability.system_info import parse_request, system_info

        parse_request(request)
        healthy, reasons = self.check_health()
        return system_info(self._engine, version, healthy, reasons)

    def meta_store(self) -> MetaStore:
        """The meta storage the engine runs on (the server keeps its users there)."""
        return self._engine.meta

    def meta_guard(self) -> Any:
        """The runtime's leader-guarded meta transaction (``guarded_txn``): writes outside
        the catalog (the server's users) go through it, so a deposed leader's fail."""
        return self._engine.guarded_txn

    def flush_all(self) -> None:
        """Seal every collection of every database (graceful shutdown)."""
        for meta in self._engine.catalog.list():
            self._engine.flush(meta.name)
