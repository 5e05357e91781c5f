"""The live-engine registry: weak sets of the runtimes open in this process.

* engines — the ``Engine`` (embedded) and ``ClusterEngine`` (cluster proxy) objects: each
  calls :func:`register` at the end of its ``__init__`` and :func:`unregister` when it
  closes; :func:`live` lists them.
* nodes — the cluster role objects of a role process (coordinator, streaming node, query
  node), registered by ``gpuvec.cluster.roles_cli`` with :func:`register_node`;
  :func:`live_nodes` lists them.

Readers that compute values on demand (the Prometheus collector in :mod:`.collector`, the
dashboard pages) call these. The sets hold weak references only, so registering never
keeps a runtime alive. Registering also makes sure the collector is registered (once per
process) in ``prometheus_client``'s default registry.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()
_NODES: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


def _ensure_collector() -> None:
    from gpuvec.observability.collector import register_collector

    register_collector()


def register(engine: Any) -> None:
    """Remember *engine* (weakly) as live in this process."""
    with _LOCK:
        _ENGINES.add(engine)
    _ensure_collector()


def unregister(engine: Any) -> None:
    """Forget *engine* (closing it); a no-op if it was never registered."""
    with _LOCK:
        _ENGINES.discard(engine)


def live() -> list[Any]:
    """The engines registered, alive and not closed, in no particular order."""
    with _LOCK:
        return list(_ENGINES)


def register_node(node: Any) -> None:
    """Remember a cluster role object (coordinator, streaming or query node) weakly."""
    with _LOCK:
        _NODES.add(node)
    _ensure_collector()


def unregister_node(node: Any) -> None:
    with _LOCK:
        _NODES.discard(node)


def live_nodes() -> list[Any]:
    """The cluster role objects registered and still alive."""
    with _LOCK:
        return list(_NODES)
