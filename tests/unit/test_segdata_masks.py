"""The device-mask bookkeeping of SegmentData (alive bitmap and cached filter masks, re-sent
only after deletes), exercised on the NumPy backend by placing the 'device' copies by hand:
the resident search path must return what the host path returns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gpuvec import ops
from gpuvec.query.segdata import SegmentData

DIM = 6


def make(n: int = 400) -> tuple[SegmentData, np.ndarray]:
    rng = np.random.default_rng(3)
    vec = rng.standard_normal((n, DIM)).astype(np.float32)
    seg = SegmentData(1, 0, {"v": DIM}, True, capacity=n)
    seg.append(np.arange(n), np.full(n, 10, np.uint64), {"v": vec}, pa.table({"id": np.arange(n)}))
    seg.sealed = True
    return seg, vec


def resident(seg: SegmentData) -> None:
    seg._device["v"] = ops.to_device(seg.vectors("v"))  # NumPy backend: host arrays
    seg._device["v/sq"] = ops.to_device(ops.sq_norms(seg.vectors("v")))


def host_hits(seg: SegmentData, q: np.ndarray, ts: int, mask: np.ndarray | None) -> np.ndarray:
    saved = dict(seg._device)
    seg._device.clear()
    try:
        return seg.search("v", q, 9, "L2", ts, mask).rows
    finally:
        seg._device.update(saved)


def test_resident_path_tracks_deletes_and_filters() -> None:
    seg, vec = make()
    resident(seg)
    q = vec[:4] + 0.01
    even = np.arange(seg.n) % 2 == 0
    for ts in (20, 20):
        got = seg.search("v", q, 9, "L2", ts, even, mask_key="even").rows
        np.testing.assert_array_equal(got, host_hits(seg, q, ts, even))
    assert "even" in seg._device_masks  # cached for the sealed segment
    assert seg.delete(np.arange(0, 200, 2), ts=30) == 100  # hide rows of the filter
    stale = seg._device_alive
    assert stale is None or stale[0] != seg.vis.version  # the device copy is stale
    got = seg.search("v", q, 9, "L2", 40, even, mask_key="even").rows
    np.testing.assert_array_equal(got, host_hits(seg, q, 40, even))
    assert not set(got.ravel()) & set(range(0, 200, 2))
    assert seg._device_alive is not None and seg._device_alive[0] == seg.vis.version
    old = seg.search("v", q, 9, "L2", 25, even, mask_key="even").rows  # before the delete
    np.testing.assert_array_equal(old, host_hits(seg, q, 25, even))
    assert set(old.ravel()) & set(range(0, 200, 2))
    none = seg.search("v", q, 9, "L2", 40).rows
    np.testing.assert_array_equal(none, host_hits(seg, q, 40, None))
    seg.unpin_device()
    assert not seg._device and not seg._device_masks
