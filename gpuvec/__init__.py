"""gpuvec: a GPU-accelerated, Milvus-compatible vector database.

The package layout follows ``DESIGN.md`` §7: storage layers under :mod:`gpuvec.storage`,
roles under their own subpackages, and the one error tree in :mod:`gpuvec.errors`.
"""

import os

# DESIGN §9: idle OpenMP threads must not spin (faiss/BLAS after a batch-1 search); this
# has to be set before anything loads an OpenMP runtime, so it lives at the package root.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gpuvec.errors import GpuvecError

__all__ = ["DataType", "GpuvecError", "MilvusClient", "__version__", "build_index_artifact"]


def __getattr__(name: str):  # lazy: importing gpuvec.storage alone stays light
    if name == "MilvusClient":
        from gpuvec.client import MilvusClient

        return MilvusClient
    if name == "build_index_artifact":  # offline index builds of files (no collection)
        from gpuvec.coord.artifacts import build_artifact

        return build_artifact
    if name == "DataType":
        from gpuvec.schema import DataType

        return DataType
    raise AttributeError(name)


__version__ = "0.1.0"
