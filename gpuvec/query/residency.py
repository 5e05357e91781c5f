"""Which sealed segments live in GPU memory: a byte budget, least recently used out.

DESIGN §5: a query node keeps sealed segments resident on the device within a configured
budget; the least recently used ones fall back to host memory, where they are searched on
the CPU. :class:`DeviceResidency` owns that choice for one query node.

Policy:

* ``admit`` (a segment was loaded or adopted): pin it, evicting least-recently-used
  segments until it fits; a segment larger than the whole budget stays on the host;
* ``touch`` (a segment is about to be searched): mark it most recently used; a host
  segment is pinned again only if it fits without evicting anything (so a working set
  larger than the budget does not thrash device memory on every search);
* ``drop`` (released or compacted away): unpin it and free its share.

Without a usable GPU nothing is ever pinned and every call is a cheap no-op.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from gpuvec import ops


class Pinnable(Protocol):
    """What residency needs of a segment (``SegmentData`` implements it)."""

    def device_bytes(self) -> int: ...

    def pin_device(self) -> bool: ...

    def unpin_device(self) -> None: ...


class DeviceResidency:
    def __init__(self, fraction: float = 0.8, budget_bytes: int | None = None) -> None:
        """``budget_bytes`` if given, else ``fraction`` of the device's total memory
        (resolved on first use, so constructing one never touches the GPU)."""
        self._fraction, self._budget = fraction, budget_bytes
        self._lock = threading.Lock()
        self._lru: OrderedDict[int, tuple[Pinnable, int]] = OrderedDict()
        self.used = 0
        self.evictions = 0

    @property
    def budget(self) -> int:
        if self._budget is None:
            self._budget = int(self._fraction * ops.device_memory()[1]) if ops.is_gpu() else 0
        return self._budget

    def resident(self, seg: Pinnable) -> bool:
        return id(seg) in self._lru

    def admit(self, seg: Pinnable) -> bool:
        """Pin ``seg``, evicting the least recently used as needed; False if it stays
        on the host (no GPU, or larger than the whole budget)."""
        if not ops.is_gpu():
            return False
        need = seg.device_bytes()
        with self._lock:
            if id(seg) in self._lru:
                self._lru.move_to_end(id(seg))
                return True
            if need > self.budget:
                return False
            while self.used + need > self.budget and self._lru:
                _, (old, size) = self._lru.popitem(last=False)
                old.unpin_device()
                self.used -= size
                self.evictions += 1
            return self._pin(seg, need)

    def touch(self, seg: Pinnable) -> None:
        """Mark ``seg`` most recently used; re-pin it if it fits without evicting."""
        key = id(seg)
        if key in self._lru:
            with self._lock:
                if key in self._lru:
                    self._lru.move_to_end(key)
            return
        if not ops.is_gpu():
            return
        need = seg.device_bytes()
        with self._lock:
            if key not in self._lru and self.used + need <= self.budget:
                self._pin(seg, need)

    def drop(self, seg: Pinnable) -> None:
        with self._lock:
            entry = self._lru.pop(id(seg), None)
            if entry is not None:
                seg.unpin_device()
                self.used -= entry[1]

    def _pin(self, seg: Pinnable, need: int) -> bool:
        try:
            if not seg.pin_device():
                return False
        except Exception:  # out of device memory despite the budget: serve from the host
            seg.unpin_device()
            return False
        self._lru[id(seg)] = (seg, need)
        self.used += need
        return True
