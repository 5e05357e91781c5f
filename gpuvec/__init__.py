"""gpuvec: a GPU-accelerated, Milvus-compatible vector database.

The package layout follows ``DESIGN.md`` §7: storage layers under :mod:`gpuvec.storage`,
roles under their own subpackages, and the one error tree in :mod:`gpuvec.errors`.
"""

from gpuvec.errors import GpuvecError

__all__ = ["GpuvecError", "__version__"]
__version__ = "0.1.0"
