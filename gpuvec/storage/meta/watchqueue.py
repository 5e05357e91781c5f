"""A queue-backed :class:`~gpuvec.storage.meta.base.Watch` shared by the implementations.

A producer thread (SQLite poller, etcd stream reader) ``push`` es events; consumers ``get``
or iterate. ``last_revision`` tracks the revision of the last event handed to a consumer,
which is what a producer resumes from after a stream error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from gpuvec.errors import ClosedError, GpuvecError
from gpuvec.storage.meta.base import WatchEvent

_STOP = object()


class QueueWatch:
    """Thread-safe event queue with cancel; ``on_cancel`` stops the producer."""

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._q: queue.Queue[object] = queue.Queue()
        self._on_cancel = on_cancel
        self._cancelled = threading.Event()
        self._last = 0
        self.pushed_revision = 0  # producer side: revision of the last event queued

    # producer side
    def push(self, events: list[WatchEvent]) -> None:
        if events:
            self.pushed_revision = events[-1].revision
            self._q.put(events)

    def fail(self, error: GpuvecError) -> None:
        """Deliver a terminal error to the consumer."""
        self._q.put(error)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # consumer side
    @property
    def last_revision(self) -> int:
        return self._last

    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        if self._cancelled.is_set() and self._q.empty():
            raise ClosedError("watch was cancelled")
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return []
        if item is _STOP:
            raise ClosedError("watch was cancelled")
        if isinstance(item, GpuvecError):
            raise item
        events: list[WatchEvent] = item  # type: ignore[assignment]
        # drain what else is ready, so callers see batches
        while True:
            try:
                more = self._q.get_nowait()
            except queue.Empty:
                break
            if more is _STOP or isinstance(more, GpuvecError):
                self._q.put(more)
                break
            events.extend(more)  # type: ignore[arg-type]
        self._last = events[-1].revision
        return events

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            try:
                batch = self.get(timeout=None)
            except ClosedError:
                return
            yield from batch

    def cancel(self) -> None:
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        self._q.put(_STOP)
        if self._on_cancel is not None:
            self._on_cancel()
