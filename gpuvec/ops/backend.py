"""The array backend: CuPy on a usable CUDA device, NumPy otherwise, picked once.

Owns the choice of device and the transfers between host and device. Nothing outside
``gpuvec.ops`` imports CuPy; other modules ask this one (``is_gpu()``, ``to_device``...).

The choice is made lazily on first use and cached for the process:

* ``GPUVEC_DEVICE=auto`` (default): CuPy when it imports *and* a CUDA device answers a
  tiny allocation, else NumPy;
* ``GPUVEC_DEVICE=cpu``: NumPy, even where a GPU exists;
* ``GPUVEC_DEVICE=gpu``: CuPy or a :class:`~gpuvec.errors.DeviceUnavailableError` saying why not.

Invariants: importing this module never imports CuPy; ``to_host`` always returns a NumPy
array; ``to_device`` returns an array of the chosen backend without copying when the input
already lives there.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpuvec.errors import DeviceUnavailableError, InvalidArgumentError

__all__ = [
    "array_module",
    "backend_name",
    "device_memory",
    "gpu_unavailable_reason",
    "is_cupy_array",
    "is_gpu",
    "reset_backend",
    "resolved_gpu",
    "to_device",
    "to_host",
    "xp",
]

_MODES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class _Backend:
    xp: ModuleType
    name: str
    gpu: bool


_lock = threading.Lock()
_backend: _Backend | None = None


def gpu_unavailable_reason() -> str | None:
    """Why CuPy cannot be used here, or None when a CUDA device is usable."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA library behind it
        return f"cupy is not importable ({type(e).__name__}: {e})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "cupy found no CUDA device"
        if float(cupy.ones(4, dtype=cupy.float32).sum()) != 4.0:  # a real round trip
            return "a CuPy test computation returned a wrong result"
    except Exception as e:  # driver missing, device busy/broken, ...
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    return None


def _device_label() -> str:
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return f"cuda:{name}"


def _resolve() -> _Backend:
    mode = os.environ.get("GPUVEC_DEVICE", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise InvalidArgumentError(f"GPUVEC_DEVICE={mode!r} is not one of {', '.join(_MODES)}")
    if mode == "cpu":
        return _Backend(np, "cpu:numpy", False)
    reason = gpu_unavailable_reason()
    if reason is None:
        import cupy

        return _Backend(cupy, _device_label(), True)
    if mode == "gpu":
        raise DeviceUnavailableError(
            f"GPUVEC_DEVICE=gpu but the GPU backend is unavailable: {reason}"
        )
    return _Backend(np, "cpu:numpy", False)


def _get() -> _Backend:
    global _backend
    b = _backend
    if b is None:
        with _lock:
            if _backend is None:
                _backend = _resolve()
            b = _backend
    return b


def check_requested() -> None:
    """Choose the backend now when ``GPUVEC_DEVICE`` is set to anything but ``auto``: a GPU
    asked for and unusable (or a misspelt mode) is an error when a runtime opens, not in
    the middle of a flush. ``auto`` stays lazy (nothing imports CuPy before it is needed)."""
    mode = os.environ.get("GPUVEC_DEVICE", "auto").strip().lower() or "auto"
    if mode != "auto":
        _get()


def reset_backend() -> None:
    """Forget the cached choice; the next call resolves again (tests, env changes)."""
    global _backend
    with _lock:
        _backend = None


def xp() -> ModuleType:
    """The array module of the chosen backend (``cupy`` or ``numpy``)."""
    return _get().xp


def is_gpu() -> bool:
    """True when the chosen backend is CuPy on a CUDA device."""
    return _get().gpu


def chosen() -> _Backend | None:
    """The backend if it was already chosen, else None (never chooses it)."""
    return _backend


def resolved_gpu() -> bool:
    """True when the backend was already chosen and is CuPy on a device; never resolves
    it (a metrics scrape must not be what first touches the GPU)."""
    b = _backend
    return b is not None and b.gpu


def backend_name() -> str:
    """``"cuda:<device name>"`` or ``"cpu:numpy"``."""
    return _get().name


def is_cupy_array(a: object) -> bool:
    """True for a CuPy ndarray, without importing CuPy."""
    return type(a).__module__.split(".", 1)[0] == "cupy"


def array_module(a: object) -> ModuleType:
    """``cupy`` for a CuPy array, else ``numpy`` (like ``cupy.get_array_module``)."""
    if is_cupy_array(a):
        import cupy

        return cupy
    return np


def to_device(a: Any, dtype: Any = None) -> Any:
    """``a`` as an array of the chosen backend (no copy when already there and typed)."""
    if _get().gpu:
        import cupy

        return cupy.asarray(a, dtype=dtype)
    if is_cupy_array(a):
        a = a.get()
    return np.asarray(a, dtype=dtype)


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array (one device-to-host copy for CuPy arrays)."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def _host_memory() -> tuple[int, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    free = os.sysconf("SC_AVPHYS_PAGES") * page
    try:  # MemAvailable counts reclaimable cache, unlike SC_AVPHYS_PAGES
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return free, total


def device_memory() -> tuple[int, int]:
    """``(free, total)`` bytes of the chosen device (host RAM for the NumPy backend).

    On the GPU, ``free`` is the driver's free memory plus what CuPy's pool holds unused
    (that memory is reusable by gpuvec without another allocation).
    """
    if not _get().gpu:
        return _host_memory()
    import cupy

    free, total = cupy.cuda.runtime.memGetInfo()
    pool = cupy.get_default_memory_pool()
    return int(free) + int(pool.free_bytes()), int(total)
