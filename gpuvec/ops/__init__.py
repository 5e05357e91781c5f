"""Array backend and vector-search primitives: the only package that knows CuPy.

* :mod:`gpuvec.ops.backend` — picks CuPy or NumPy once; transfers; device memory.
* :mod:`gpuvec.ops.search` — ``knn`` (exact brute force) and ``merge_topk``; CPU path.
* :mod:`gpuvec.ops.gpu` — the CuPy path of ``knn`` (imported only for CuPy input).
* :mod:`gpuvec.ops.kernels` — loads ``kernels/*.cu`` with ``cupy.RawModule``.
* :mod:`gpuvec.ops.common` — input checks and the metric algebra shared by both paths.
* :mod:`gpuvec.ops.binary` — exact HAMMING/JACCARD search over packed binary vectors.

Importing this package never imports CuPy.
"""

from gpuvec.ops.backend import (
    backend_name,
    check_requested,
    device_memory,
    is_gpu,
    to_device,
    to_host,
    xp,
)
from gpuvec.ops.binary import binary_distances, binary_knn, binary_range
from gpuvec.ops.search import knn, knn_numpy, merge_topk, pad_value, sq_norms

__all__ = [
    "backend_name",
    "binary_distances",
    "binary_knn",
    "binary_range",
    "check_requested",
    "device_memory",
    "is_gpu",
    "knn",
    "knn_numpy",
    "merge_topk",
    "pad_value",
    "sq_norms",
    "to_device",
    "to_host",
    "xp",
]
