"""Loader of the CUDA C++ sources in ``kernels/`` (installed as ``gpuvec.kernels``).

Owns reading a ``.cu`` file and compiling it once per device with ``cupy.RawModule``
(NVRTC). Callers get a ``cupy.RawKernel`` by (file, function) name. CuPy is imported only
when a kernel is first requested, so importing this module is safe without CuPy.

The sources are found through ``importlib.resources`` (installed package) and, failing
that, next to the source tree (``<repo>/kernels``) so that ``bench/gpu_check.py`` runs
from a bare checkout.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Any

from gpuvec.errors import GpuvecError, NotFoundError

__all__ = ["get_kernel", "kernel_source"]


def kernel_source(filename: str) -> str:
    """The text of ``kernels/<filename>``."""
    try:
        res = importlib.resources.files("gpuvec.kernels").joinpath(filename)
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except ModuleNotFoundError:
        pass
    local = Path(__file__).resolve().parents[2] / "kernels" / filename
    if local.is_file():
        return local.read_text(encoding="utf-8")
    raise NotFoundError(f"CUDA source kernels/{filename} not found (package data or {local})")


@functools.cache
def _module(filename: str, device_id: int) -> Any:
    import cupy

    with cupy.cuda.Device(device_id):
        try:
            mod = cupy.RawModule(code=kernel_source(filename))
            mod.compile()
        except cupy.cuda.compiler.CompileException as e:
            raise GpuvecError(f"compiling kernels/{filename} failed: {e}") from e
    return mod


def get_kernel(filename: str, name: str) -> Any:
    """``cupy.RawKernel`` ``name`` from ``kernels/<filename>``, compiled for the current
    device (cached)."""
    import cupy

    return _module(filename, cupy.cuda.Device().id).get_function(name)
