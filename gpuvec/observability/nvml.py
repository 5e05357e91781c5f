"""GPU utilisation and memory of this host's devices through NVML (``pynvml``), for the
dashboard page and ``/metrics``.

NVML is the driver's management library: reading it never creates a CUDA context, so a
scrape or a page refresh never initialises the device (the search backend chooses that).
:func:`gpus` answers the devices this process may use (``CUDA_VISIBLE_DEVICES`` when it
names device indexes, else every device), each with its ``index``, ``name``,
``utilization`` (percent of time a kernel ran over the driver's last sample period),
``memory_used`` and ``memory_total`` (bytes, every process on the device); or no devices
and the reason why (``pynvml`` missing, no NVIDIA driver, no device). NVML is initialised
once per process; a failed initialisation is remembered, not retried per call.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "nvml": None, "reason": None}


def _init() -> tuple[Any, str | None]:
    """(the initialised pynvml module, None) or (None, why NVML is unavailable)."""
    with _lock:
        if _state["pid"] == os.getpid():
            return _state["nvml"], _state["reason"]
        nvml, reason = None, None
        try:
            import pynvml

            pynvml.nvmlInit()
            nvml = pynvml
        except ImportError:
            reason = "pynvml is not installed"
        except Exception as e:  # NVMLError_LibraryNotFound, _DriverNotLoaded, …
            reason = f"NVML unavailable: {e}"
        _state.update(pid=os.getpid(), nvml=nvml, reason=reason)
        return nvml, reason


def _visible(count: int) -> list[int]:
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(count))
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.lstrip("-").isdigit():  # UUIDs / MIG names: report every device
            return list(range(count))
        if int(part) < 0:
            break  # CUDA stops at the first invalid index
        if int(part) < count:
            out.append(int(part))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpus() -> tuple[list[dict[str, Any]], str | None]:
    """``(devices, reason)``: the visible GPUs' utilisation and memory, or ``([], why)``."""
    nvml, reason = _init()
    if nvml is None:
        return [], reason
    try:
        indexes = _visible(int(nvml.nvmlDeviceGetCount()))
        out = []
        for i in indexes:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:  # not supported (e.g. a MIG instance): memory only
                util = None
            out.append({"index": i, "name": _text(nvml.nvmlDeviceGetName(handle)),
                        "utilization": util, "memory_used": int(mem.used),
                        "memory_total": int(mem.total)})  # fmt: skip
    except Exception as e:
        return [], f"NVML query failed: {e}"
    if not out:
        return [], "NVML sees no visible GPU"
    return out, None
