"""``gpuvec.MilvusClient``: the pymilvus-compatible Python API, in parts over one runtime
interface (:class:`gpuvec.runtime.base.Runtime`): :mod:`.facade` (the class: collections,
partitions, writes, queries, searches), :mod:`.admin` (databases, aliases, properties,
load state), :mod:`.indexes` (indexes, compaction) and :mod:`.service` (what the Milvus
gRPC server needs besides pymilvus's surface)."""

from gpuvec.client.admin import LoadState
from gpuvec.client.facade import MilvusClient

__all__ = ["LoadState", "MilvusClient"]
