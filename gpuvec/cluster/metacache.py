"""A proxy's watched copy of meta keys it reads on every request (DESIGN §9: no per-request
work that can be avoided): collection records, channel owners, node sessions and segment
holders. One background watch per prefix keeps it current within milliseconds.

A cached value may be briefly stale; every use tolerates that: a node that no longer owns a
channel or holds a segment says so and the proxy retries with direct reads, and after its
own catalog writes the proxy refreshes the keys it wrote (:meth:`MetaCache.refresh`), so
it reads its own writes. Each entry keeps its ``mod_revision``: an older event never
overwrites a newer value.
"""

from __future__ import annotations

import logging
import threading

from gpuvec.storage.meta.base import EventType, KeyValue, MetaStore

log = logging.getLogger(__name__)


class MetaCache:
    def __init__(
        self, meta: MetaStore, prefixes: tuple[str, ...], ignore: tuple[str, ...] = ()
    ) -> None:
        """Follow ``prefixes``; keys under ``ignore`` (e.g. the nodes' dashboard reports,
        rewritten every few seconds) are not kept."""
        self.meta, self.prefixes, self.ignore = meta, prefixes, ignore
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, int]] = {}
        self._gone: dict[str, int] = {}  # deleted key → revision of the delete
        self._stop = threading.Event()
        self._threads = []
        for prefix in prefixes:
            ready = threading.Event()
            t = threading.Thread(
                target=self._follow, args=(prefix, ready), name="gpuvec-metacache", daemon=True
            )
            t.start()
            ready.wait(10)
            self._threads.append(t)

    def _put(self, key: str, value: bytes | None, revision: int) -> None:
        if self.ignore and key.startswith(self.ignore):
            return
        with self._lock:
            current = self._data.get(key)
            newest = max(current[1] if current else 0, self._gone.get(key, 0))
            if revision < newest:
                return
            if value is None:
                self._data.pop(key, None)
                self._gone[key] = revision
            else:
                self._data[key] = (value, revision)
                self._gone.pop(key, None)

    def _follow(self, prefix: str, ready: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                kvs, rev = self.meta.range(prefix)
                with self._lock:
                    for k in [k for k in self._data if k.startswith(prefix)]:
                        del self._data[k]
                for kv in kvs:
                    self._put(kv.key, kv.value, kv.mod_revision)
                ready.set()
                watch = self.meta.watch(prefix, start_revision=rev + 1)
                try:
                    while not self._stop.is_set():
                        for ev in watch.get(timeout=0.5):
                            if ev.type == EventType.RESET:
                                raise _Relist
                            value = ev.value if ev.type == EventType.PUT else None
                            self._put(ev.key, value, ev.revision)
                finally:
                    watch.cancel()
            except _Relist:
                continue
            except Exception as e:  # etcd away: keep serving what we have, retry
                log.debug("meta cache of %s: %s", prefix, e)
                ready.set()
                self._stop.wait(0.5)

    def refresh(self, keys: list[str]) -> None:
        """Read ``keys`` directly (after this process wrote them)."""
        for key in keys:
            if not key.startswith(self.prefixes):
                continue
            kv = self.meta.get(key)
            if kv is None:
                self._put(key, None, self.meta.revision())
            else:
                self._put(key, kv.value, kv.mod_revision)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
        return None if item is None else item[0]

    def items(self, prefix: str) -> dict[str, bytes]:
        with self._lock:
            return {k: v for k, (v, _) in self._data.items() if k.startswith(prefix)}

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """The cached keys under ``prefix``, shaped as ``MetaStore.range`` returns them
        (so readers of meta can read the cache instead)."""
        with self._lock:
            kvs = [
                KeyValue(k, v, rev, rev, 1)
                for k, (v, rev) in sorted(self._data.items())
                if k.startswith(prefix)
            ]
        return kvs, 0

    def forget_prefix(self, prefix: str, revision: int) -> None:
        with self._lock:
            for k in [k for k in self._data if k.startswith(prefix)]:
                del self._data[k]
                self._gone[k] = revision

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)


class _Relist(Exception):
    pass
