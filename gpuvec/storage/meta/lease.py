"""``LeaseKeeper``: a lease plus the background thread that keeps it alive.

The keeper refreshes every ``ttl/3`` seconds. Transient ``UnavailableError`` s are retried
until the lease would have expired; after that, or on ``LeaseExpiredError``, the keeper
marks itself ``lost`` and calls ``on_lost`` once. Whoever holds something under the lease
(a session key, leadership) must treat ``lost`` as losing it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from gpuvec.errors import GpuvecError, LeaseExpiredError, UnavailableError
from gpuvec.storage.meta.base import MetaStore


class LeaseKeeper:
    def __init__(
        self, meta: MetaStore, ttl: int, on_lost: Callable[[], None] | None = None
    ) -> None:
        self.meta = meta
        self.ttl = ttl
        self.id = meta.grant_lease(ttl).id
        self._on_lost = on_lost
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpuvec-lease", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def _run(self) -> None:
        deadline = time.monotonic() + self.ttl
        while not self._stop.wait(max(self.ttl / 3.0, 0.2)):
            try:
                self.meta.keepalive(self.id)
                deadline = time.monotonic() + self.ttl
            except UnavailableError:
                if time.monotonic() < deadline:
                    continue
                self._mark_lost()
                return
            except (LeaseExpiredError, GpuvecError):
                self._mark_lost()
                return

    def _mark_lost(self) -> None:
        if not self._lost.is_set():
            self._lost.set()
            if self._on_lost is not None:
                self._on_lost()

    def close(self, revoke: bool = True) -> None:
        """Stop refreshing; by default also revoke the lease (deleting its keys)."""
        self._stop.set()
        self._thread.join(timeout=5)
        if revoke and not self._lost.is_set():
            with contextlib.suppress(GpuvecError):
                self.meta.revoke_lease(self.id)
