"""DeviceResidency: the GPU memory budget with least-recently-used fallback to the host
(DESIGN §5), checked with stand-in segments so it runs without a GPU."""

from __future__ import annotations

import pytest

from gpuvec import ops
from gpuvec.query import residency as res_mod
from gpuvec.query.residency import DeviceResidency


class FakeSeg:
    def __init__(self, name: str, nbytes: int, fail: bool = False) -> None:
        self.name, self.nbytes, self.fail, self.pinned = name, nbytes, fail, False

    def device_bytes(self) -> int:
        return self.nbytes

    def pin_device(self) -> bool:
        if self.fail:
            raise MemoryError("out of device memory")
        self.pinned = True
        return True

    def unpin_device(self) -> None:
        self.pinned = False


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(res_mod.ops, "is_gpu", lambda: True)


def test_lru_eviction_within_budget(gpu: None) -> None:
    r = DeviceResidency(budget_bytes=100)
    a, b, c = FakeSeg("a", 40), FakeSeg("b", 40), FakeSeg("c", 40)
    assert r.admit(a) and r.admit(b)
    r.touch(a)  # b is now the least recently used
    assert r.admit(c)
    assert (a.pinned, b.pinned, c.pinned) == (True, False, True)
    assert r.used == 80 and r.evictions == 1
    r.touch(b)  # does not fit without evicting: stays on the host
    assert not b.pinned and r.used == 80
    r.drop(a)
    assert not a.pinned and r.used == 40
    r.touch(b)  # fits now: pinned again
    assert b.pinned and r.used == 80 and r.resident(b)


def test_too_big_or_failing_segments_stay_on_host(gpu: None) -> None:
    r = DeviceResidency(budget_bytes=100)
    small = FakeSeg("s", 30)
    assert r.admit(small)
    assert not r.admit(FakeSeg("huge", 101))
    assert small.pinned and r.used == 30  # nothing evicted for a hopeless segment
    bad = FakeSeg("bad", 10, fail=True)
    assert not r.admit(bad) and not r.resident(bad) and r.used == 30


def test_no_gpu_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(res_mod.ops, "is_gpu", lambda: False)
    r = DeviceResidency()
    seg = FakeSeg("a", 1)
    assert not r.admit(seg)
    r.touch(seg)
    assert not seg.pinned and r.budget == 0 and r.used == 0
    assert ops is res_mod.ops
