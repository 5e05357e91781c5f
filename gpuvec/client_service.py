"""Proxy methods the Milvus gRPC endpoint needs beyond pymilvus's ``MilvusClient`` surface:
a collection's schema object, timestamps, health and the runtime's components and system
info (GetComponentStates, GetMetrics), the meta store (for users), and a flush of every
collection on shutdown. A mixin of :class:`gpuvec.MilvusClient`."""

from __future__ import annotations

from typing import Any

from gpuvec.schema import CollectionSchema
from gpuvec.storage.meta.base import MetaStore

__all__ = ["ServiceMethods"]


class ServiceMethods:
    _engine: Any
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
            self._engine.meta.get("catalog/next_id")
        except Exception as exc:
            reasons.append(f"meta storage: {type(exc).__name__}: {exc}")
        health = getattr(self._engine, "health", None)
        problem = health() if health is not None else ""
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

    def flush_all(self) -> None:
        """Seal every collection of every database (graceful shutdown)."""
        for meta in self._engine.catalog.list():
            self._engine.flush(meta.name)
