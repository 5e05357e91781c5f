"""``MilvusClient``: the pymilvus-compatible Python API over a runtime
(:class:`gpuvec.runtime.base.Runtime`).

Names, parameters, defaults and result shapes follow pymilvus's ``MilvusClient``; a local
directory ``uri`` opens the embedded runtime (:class:`~gpuvec.runtime.embedded.Engine`)
there, ``engine=`` serves any other runtime (a cluster proxy's ``ClusterEngine``). Every
mutation returns its timestamp, which the client remembers for Session consistency
(DESIGN §3).

The client works inside one database (``db_name``, ``use_database``): every collection
name it is given, or an alias of the database, is resolved to the engine's name by
:mod:`gpuvec.proxy.names`; results show user-facing names. This module holds collections,
partitions and data; databases, aliases, load states and other administration are in
:mod:`.admin`, indexes and compaction in :mod:`.indexes`, service calls in :mod:`.service`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec import ops
from gpuvec.client.access import AccessMethods
from gpuvec.client.admin import AdminMethods, LoadState
from gpuvec.client.analyzers import AnalyzerMethods
from gpuvec.client.fields import FieldMethods
from gpuvec.client.grouping import GroupingMethods
from gpuvec.client.hybrid import HybridMethods
from gpuvec.client.imports import ImportMethods
from gpuvec.client.indexes import IndexMethods, _check_index_fields
from gpuvec.client.iterators import IteratorMethods
from gpuvec.client.partitions import PartitionMethods
from gpuvec.client.searching import SearchMethods
from gpuvec.client.segments import SegmentMethods
from gpuvec.client.service import ServiceMethods
from gpuvec.columns_rules import last_of_each_key
from gpuvec.config import Config
from gpuvec.coord.namespaces import Namespaces
from gpuvec.errors import (
    CollectionNotFoundError,
    InvalidArgumentError,
)
from gpuvec.index.params import IndexParams
from gpuvec.observability.metrics import count_calls
from gpuvec.proxy.fetch import fetch_rows
from gpuvec.proxy.filters import CompiledFilter, FilterCompiler
from gpuvec.proxy.names import NameResolver, user_name
from gpuvec.proxy.params import (
    np_keys,
    window,
)
from gpuvec.records import DEFAULT_DB, CollectionView
from gpuvec.rows import pks_from_ids, resolve_output_fields, rows_to_table, table_to_rows
from gpuvec.runtime.base import Runtime
from gpuvec.schema import CollectionSchema, DataType, validate_name
from gpuvec.text.bm25 import check_analyzers

__all__ = ["LoadState", "MilvusClient"]


_REMOTE = ("http://", "https://", "tcp://", "grpc://", "unix:")


class MilvusClient(
    SearchMethods,  # first: other mixins declare a search stub they call
    AccessMethods,
    AdminMethods,
    AnalyzerMethods,
    PartitionMethods,
    FieldMethods,
    GroupingMethods,
    HybridMethods,
    IndexMethods,
    ImportMethods,
    IteratorMethods,
    SegmentMethods,
    ServiceMethods,
):
    def __new__(cls, uri: str = "./gpuvec-data", *args: Any, **kwargs: Any) -> Any:
        """A remote URI (``http://host:19530`` — a ``gpuvec serve`` or any Milvus) gives
        pymilvus's own client; anything else opens the embedded runtime."""
        if isinstance(uri, str) and uri.startswith(_REMOTE):
            from pymilvus import MilvusClient as RemoteClient

            kwargs.pop("config", None)
            return RemoteClient(uri, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        uri: str = "./gpuvec-data",
        user: str = "",
        password: str = "",
        db_name: str = DEFAULT_DB,
        token: str = "",
        timeout: float | None = None,
        *,
        config: Config | None = None,
        engine: Any = None,
        **kwargs: Any,
    ) -> None:
        """``engine``: serve another :class:`~gpuvec.runtime.base.Runtime` (a cluster proxy
        passes its :class:`~gpuvec.cluster.proxy.ClusterEngine`; ``uri`` is then ignored).
        Keywords named after a :class:`~gpuvec.config.Config` field set that option."""
        if engine is None:
            from gpuvec.runtime.embedded import Engine

            path = Path(uri.removeprefix("file://"))
            if path.suffix == ".db":  # Milvus Lite style "./x.db": a directory name
                path = path.with_suffix(".gpuvec")
            engine = Engine(path, Config.for_client(config, kwargs))
        self._engine: Runtime = engine
        self._session_ts = 0
        self._filters = FilterCompiler()
        self._ns = Namespaces(self._engine.catalog)
        self._names = NameResolver(self._engine.catalog, self._ns, self._engine.serves)
        self._owns_engine = True
        try:
            self._db = self._names.require_db(db_name)
        except Exception:
            self._engine.close()
            raise

    def _coll(self, name: str) -> CollectionView:
        """The collection (or alias target) ``name`` of the current database."""
        return self._engine.get(self._names.resolve(self._db, name))

    # --- schema helpers ----------------------------------------------------------------------
    @staticmethod
    def create_schema(**kwargs: Any) -> CollectionSchema:
        return CollectionSchema(**kwargs)

    @staticmethod
    def create_field_schema(name: str, data_type: Any, desc: str = "", **kwargs: Any) -> Any:
        """A field (pymilvus's ``create_field_schema``), e.g. for ``add_collection_field``
        or ``CollectionSchema(fields=[...])``."""
        from gpuvec.schema import FieldSchema

        return FieldSchema(name, data_type, desc, **kwargs)

    @staticmethod
    def prepare_index_params(field_name: str = "", **kwargs: Any) -> IndexParams:
        return IndexParams(field_name, **kwargs)

    # --- collections -------------------------------------------------------------------------
    def create_collection(
        self,
        collection_name: str,
        dimension: int | None = None,
        primary_field_name: str = "id",
        id_type: str = "int",
        vector_field_name: str = "vector",
        metric_type: str = "COSINE",
        auto_id: bool = False,
        timeout: float | None = None,
        schema: CollectionSchema | None = None,
        index_params: IndexParams | None = None,
        **kwargs: Any,
    ) -> None:
        validate_name("collection", collection_name)
        if schema is None:
            if dimension is None:
                raise InvalidArgumentError("create_collection needs dimension or schema")
            if id_type not in ("int", "string", "str"):
                raise InvalidArgumentError(f"id_type must be 'int' or 'string': {id_type!r}")
            schema = CollectionSchema(auto_id=auto_id, enable_dynamic_field=True)
            if id_type == "int":
                schema.add_field(primary_field_name, DataType.INT64, is_primary=True)
            else:
                schema.add_field(
                    primary_field_name,
                    DataType.VARCHAR,
                    is_primary=True,
                    max_length=int(kwargs.get("max_length", 65535)),
                )
            schema.add_field(vector_field_name, DataType.FLOAT_VECTOR, dim=dimension)
            index_params = IndexParams(vector_field_name, metric_type=metric_type)
        with self._engine.lock:  # name checks and creation as one step
            name = self._names.check_free(self._db, collection_name)
            if self._engine.catalog.exists(name):
                existing = self._engine.get(name).schema
                if existing.to_dict() == schema.to_dict():
                    return  # Milvus: creating the same collection again is a no-op
                raise InvalidArgumentError(  # Milvus's words and code (1100)
                    "create duplicate collection with different parameters, collection: "
                    f"{collection_name}"
                )
            check_analyzers(schema)
            indexes = [] if index_params is None else _check_index_fields(schema, index_params)
            self._engine.create_collection(
                name,
                schema,
                num_shards=int(kwargs.get("num_shards", self._engine.config.default_shards)),
                consistency_level=str(kwargs.get("consistency_level", "Bounded")),
                index_params=indexes,
                load=bool(indexes),
            )

    def has_collection(self, collection_name: str, **kwargs: Any) -> bool:
        try:
            self._names.resolve(self._db, collection_name)
        except CollectionNotFoundError:
            return False
        return True

    def list_collections(self, **kwargs: Any) -> list[str]:
        return self._names.collections(self._names.require_db(self._db))

    def describe_collection(self, collection_name: str, **kwargs: Any) -> dict[str, Any]:
        coll = self._coll(collection_name)
        m = coll.meta
        return {
            "collection_name": user_name(m.name),
            "collection_id": m.id,
            **coll.schema.describe(),
            "num_shards": m.num_shards,
            "num_partitions": len(m.partitions),
            "consistency_level": m.consistency_level,
            "properties": dict(m.properties),
            "created_timestamp": m.created_ts,
            "aliases": self._names.aliases_of(m.name),
            "search_backend": ops.backend_name(),
        }

    def get_collection_stats(self, collection_name: str, **kwargs: Any) -> dict[str, Any]:
        coll = self._coll(collection_name)
        live = set(coll.meta.partitions.values())
        return {
            "row_count": self._row_count(coll, live),
            "search_backend": ops.backend_name(),
            **self._engine.segment_stats(coll.meta.id),
        }

    def flush(self, collection_name: str, **kwargs: Any) -> None:
        self._engine.flush(self._names.resolve(self._db, collection_name))

    # --- writes ------------------------------------------------------------------------------
    def _note(self, ts: int) -> int:
        self._session_ts = max(self._session_ts, ts)
        return ts

    def _write_rows(
        self, op: str, collection_name: str, data: Any, partition_name: str | None
    ) -> dict[str, Any]:
        """insert/upsert: validate every row first, then route; an upsert deletes the old
        rows of its keys and inserts the new ones at one timestamp. Column data (an Arrow
        table, a DataFrame, a dict of columns: :func:`gpuvec.columns.is_column_data`) is
        validated column by column (:func:`gpuvec.columns.columns_to_table`), rows one by
        one (:func:`gpuvec.rows.rows_to_table`); both give the same table."""
        from gpuvec.columns import column_data_rows, columns_to_table, is_column_data

        coll = self._coll(collection_name)
        columnar = is_column_data(coll.schema, data)
        rows: list[dict] = [] if columnar else [data] if isinstance(data, dict) else list(data)
        n = column_data_rows(data) if columnar else len(rows)
        if not n:
            return {f"{op}_count": 0, "ids": [], "timestamp": 0}
        auto = None
        if op == "insert" and coll.schema.auto_id:
            first = self._engine.catalog.allocate_ids(n)
            auto = np.arange(first, first + n, dtype=np.int64)
        if columnar:
            table = columns_to_table(coll.schema, data, operation=op, auto_ids=auto)
        else:
            table = rows_to_table(coll.schema, rows, operation=op, auto_ids=auto)
        pk_name = coll.schema.primary_field.name  # type: ignore[union-attr]
        ids = table.column(pk_name).to_pylist()
        table = last_of_each_key(op, table, ids)
        replaced = ids
        if op == "upsert" and coll.schema.auto_id:  # Milvus: the rows get new keys
            first = self._engine.catalog.allocate_ids(table.num_rows)
            new = pa.array(np.arange(first, first + table.num_rows, dtype=np.int64))
            at = table.schema.get_field_index(pk_name)
            table = table.set_column(at, table.schema.field(at), new)
            ids = new.to_pylist()
        ts = self._engine.write(
            coll,
            inserts=table,
            delete_pks=np_keys(replaced) if op == "upsert" else None,
            partition=partition_name or None,
        )
        return {f"{op}_count": n, "ids": ids, "timestamp": self._note(ts)}

    def insert(
        self,
        collection_name: str,
        data: Any,
        timeout: float | None = None,
        partition_name: str | None = "",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Insert rows, as pymilvus does (a dict or a list of dicts), or column data: a
        pyarrow Table/RecordBatch, a pandas DataFrame (vectors as a column of lists or
        arrays), or a dict of columns (NumPy arrays — a vector field as one 2-D
        ``[n, dim]`` array, ``np.memmap`` included —, pyarrow arrays, pandas Series or
        lists). A dict is columns when its first vector field's value is 2-D and every
        value is a column, else one row. Returns ``{"insert_count", "ids", "timestamp"}``."""
        return self._write_rows("insert", collection_name, data, partition_name)

    def upsert(
        self,
        collection_name: str,
        data: Any,
        timeout: float | None = None,
        partition_name: str | None = "",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Insert or replace by primary key; ``data`` as for :meth:`insert` (rows or column
        data, the primary key always included). With ``partial_update=True`` rows carry
        only the fields to change (:mod:`gpuvec.client.partial`). Returns
        ``{"upsert_count", "ids", "timestamp"}``."""
        if kwargs.get("partial_update"):
            from gpuvec.client.partial import merge_rows

            schema = self._coll(collection_name).schema
            data = merge_rows(self, collection_name, schema, data)
        return self._write_rows("upsert", collection_name, data, partition_name)

    def delete(
        self,
        collection_name: str,
        ids: Any = None,
        timeout: float | None = None,
        filter: str | None = None,
        partition_name: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        coll = self._coll(collection_name)
        if filter and ids is not None:
            raise InvalidArgumentError(
                "delete takes ids or a filter, not both (Milvus: ambiguous filter parameter)"
            )
        if ids is None and not filter:
            raise InvalidArgumentError("delete needs ids or a filter")
        parts = self._parts(coll, [partition_name] if partition_name else None)
        if ids is not None:
            pks = pks_from_ids(coll.schema, ids)
            if partition_name and pks:  # Milvus: the delete applies in that partition only
                ts = self._engine.read_ts(coll, "Strong", 0)
                pks = _keys_of(self._engine.lookup(coll, np_keys(pks), parts, ts))
        else:
            flt = self._compile(coll, filter, kwargs.get("filter_params"))
            if flt is None:  # a blank filter: Milvus refuses an empty delete expression
                raise InvalidArgumentError(f"delete: the filter {filter!r} is empty")
            found = self._engine.match(coll, flt, parts, self._engine.read_ts(coll, "Strong", 0))
            pks = _keys_of(found)
        if not pks:
            return {"delete_count": 0}
        ts = self._engine.write(
            coll, inserts=None, delete_pks=np_keys(pks), partition=partition_name or None
        )
        return {"delete_count": len(pks), "timestamp": self._note(ts)}

    # --- reads -------------------------------------------------------------------------------
    def _read_ts(self, coll: CollectionView, kwargs: dict[str, Any]) -> int:
        """Read timestamp; a ``guarantee_timestamp`` (the gRPC endpoint passes the one
        pymilvus sends for Session reads) joins this client's own last write."""
        snapshot = kwargs.get("_snapshot_ts")  # an iterator's pinned read (iterators.py)
        if snapshot is not None:
            return int(snapshot)
        session = max(self._session_ts, int(kwargs.get("guarantee_timestamp") or 0))
        return self._engine.read_ts(coll, kwargs.get("consistency_level"), session)

    def get(
        self,
        collection_name: str,
        ids: Any,
        output_fields: list[str] | None = None,
        timeout: float | None = None,
        partition_names: list[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        coll = self._coll(collection_name)
        pks = pks_from_ids(coll.schema, ids)
        if not pks:
            return []
        spec = resolve_output_fields(coll.schema, output_fields or ["*"])
        parts = self._parts(coll, partition_names)
        found = self._engine.lookup(
            coll, np_keys(pks), parts, self._read_ts(coll, kwargs), spec.columns
        )
        if not found:
            return []
        segs = [s for s, _ in found]
        seg_idx = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(found)])
        rows = np.concatenate([r for _, r in found])
        table = fetch_rows(coll.schema, segs, seg_idx, rows, spec.columns)
        return table_to_rows(table, coll.schema, output_fields or ["*"])

    def query(
        self,
        collection_name: str,
        filter: str = "",
        output_fields: list[str] | None = None,
        timeout: float | None = None,
        ids: Any = None,
        partition_names: list[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        if filter and ids is not None:
            raise InvalidArgumentError(
                "query takes ids or a filter, not both (Milvus: ambiguous parameter)"
            )
        coll = self._coll(collection_name)
        limit, offset = window(kwargs.get("limit"), kwargs.get("offset"), "query")
        fields = list(output_fields or [])
        counting = any(f.replace(" ", "").lower() == "count(*)" for f in fields)
        if counting and len(fields) > 1:
            raise InvalidArgumentError("count(*) cannot be combined with other output fields")
        if ids is not None:
            pks = pks_from_ids(coll.schema, ids)
            flt = None
        else:
            flt = self._compile(coll, filter, kwargs.get("filter_params"))
            if flt is None and limit is None and not counting:
                raise InvalidArgumentError(
                    "empty expression should be used with limit (Milvus): pass a filter or limit"
                )
        parts = self._parts(coll, partition_names)
        read_ts = self._read_ts(coll, kwargs)
        cols = () if counting else resolve_output_fields(coll.schema, fields or ["*"]).columns
        if ids is not None:
            found = self._engine.lookup(coll, np_keys(pks), parts, read_ts, cols) if pks else []
        else:
            found = self._engine.match(coll, flt, parts, read_ts, cols)
        if counting:
            return [{"count(*)": int(sum(len(r) for _, r in found))}]
        return self._rows_of(coll, found, fields or ["*"], limit, offset)

    def _rows_of(
        self,
        coll: CollectionView,
        found: list,
        output_fields: list[str],
        limit: int | None,
        offset: int,
    ) -> list[dict[str, Any]]:
        """Entities of the matched rows in primary-key order, ``offset``/``limit`` applied."""
        if not found:
            return []
        spec = resolve_output_fields(coll.schema, output_fields)
        segs = [s for s, _ in found]
        seg_idx = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(found)])
        rows = np.concatenate([r for _, r in found])
        keys = np.concatenate([s.pks[r] for s, r in found])
        order = np.argsort(keys, kind="stable")
        stop = len(order) if limit is None else offset + limit
        order = order[offset:stop]
        if not len(order):
            return []
        table = fetch_rows(coll.schema, segs, seg_idx[order], rows[order], spec.columns)
        return table_to_rows(table, coll.schema, output_fields)

    def _compile(self, coll: CollectionView, text: Any, params: Any) -> CompiledFilter | None:
        return self._filters.compile(coll.meta.id, coll.schema, text or None, params)

    @property
    def dashboard_link(self) -> str | None:
        """The URL of gpuvec's page on the Dask dashboard (None until the data nodes run;
        ``MilvusClient(dir, dashboard_address=":8787")`` starts them at open)."""
        return self._engine.dashboard_link

    def open_dashboard(self) -> str | None:
        """Start the data nodes' Dask dashboard now if it is not up (it otherwise starts
        with the first index build or compaction); return :attr:`dashboard_link`."""
        return self._engine.open_dashboard()

    def close(self) -> None:
        if self._owns_engine:  # a for_database view shares its parent's engine
            self._engine.close()


# Public methods counted in the proxy request metrics, by the Milvus RPC pymilvus sends for
# them (``get`` is a Query RPC). A call made inside a gRPC request, or inside another counted
# call, is not counted again (gpuvec.observability.metrics.count_calls).
COUNTED_CALLS = {
    "insert": "Insert", "upsert": "Upsert", "delete": "Delete", "get": "Query",
    "query": "Query", "search": "Search", "flush": "Flush",
    "create_collection": "CreateCollection", "drop_collection": "DropCollection",
    "describe_collection": "DescribeCollection", "has_collection": "HasCollection",
    "list_collections": "ShowCollections", "get_collection_stats": "GetCollectionStatistics",
    "load_collection": "LoadCollection", "release_collection": "ReleaseCollection",
    "create_index": "CreateIndex", "compact": "ManualCompaction",
}  # fmt: skip
for _method, _rpc_name in COUNTED_CALLS.items():
    setattr(MilvusClient, _method, count_calls(_rpc_name)(getattr(MilvusClient, _method)))


def _keys_of(found: list[tuple[Any, Any]]) -> list[Any]:
    """The primary keys of ``(segment, rows)`` pairs a match or lookup returned."""
    return [k for seg, rows in found for k in seg.pks[rows].tolist()]
