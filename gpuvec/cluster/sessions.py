"""Node sessions and assignments in meta storage (DESIGN §6: discovery through etcd).

Keys (under the cluster's etcd root)::

    cluster/sessions/<role>/<node id>   {"address": "host:port", "pid": …} under the node's
                                        lease: it vanishes ttl seconds after the node dies
    cluster/channels/<channel>          the streaming node that owns the WAL channel
    cluster/segments/<cid>/<sid>        JSON list of the query nodes that serve the segment

Only the active coordinator writes the assignment keys (leader-guarded transactions);
nodes and proxies read and watch them.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from gpuvec.errors import InvalidArgumentError
from gpuvec.storage.meta import keys as K
from gpuvec.storage.meta.base import MetaStore, Put
from gpuvec.storage.meta.lease import LeaseKeeper

SESSIONS = K.SESSIONS
CHANNELS = K.CHANNELS
SEGMENTS = K.ASSIGNED
ROLES = ("coordinator", "streamingnode", "querynode", "proxy")


def new_node_id(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Session:
    """A node's registration: a leased key that lives as long as the node does."""

    def __init__(
        self,
        meta: MetaStore,
        role: str,
        node_id: str,
        info: dict[str, Any],
        ttl: int = 5,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        if role not in ROLES:
            raise InvalidArgumentError(f"unknown role {role!r}; roles: {ROLES}")
        self.meta, self.role, self.node_id = meta, role, node_id
        self.key = f"{SESSIONS}{role}/{node_id}"
        self.keeper = LeaseKeeper(meta, ttl, on_lost=on_lost)
        body = {"node_id": node_id, "pid": os.getpid(), **info}
        meta.txn([], [Put(self.key, json.dumps(body).encode(), self.keeper.id)])

    @property
    def lost(self) -> bool:
        return self.keeper.lost

    def close(self) -> None:
        self.keeper.close(revoke=True)


def sessions(meta: MetaStore, role: str) -> dict[str, dict[str, Any]]:
    """Live nodes of ``role``: node id → session info."""
    kvs, _ = meta.range(f"{SESSIONS}{role}/")
    return {kv.key.rsplit("/", 1)[1]: json.loads(kv.value) for kv in kvs}


def channel_owners(meta: MetaStore) -> dict[str, str]:
    kvs, _ = meta.range(CHANNELS)
    return {kv.key[len(CHANNELS) :]: kv.value.decode() for kv in kvs}


def segment_servers(meta: MetaStore, collection_id: int | None = None) -> dict[int, list[str]]:
    """segment id → query nodes (of one collection, or of all)."""
    prefix = SEGMENTS if collection_id is None else f"{SEGMENTS}{collection_id}/"
    kvs, _ = meta.range(prefix)
    return {int(kv.key.rsplit("/", 1)[1]): json.loads(kv.value) for kv in kvs}


def segment_key(collection_id: int, segment_id: int) -> str:
    return f"{SEGMENTS}{collection_id}/{segment_id}"
