"""gpuvec.server.convert against pymilvus's own request builders and result parsers.

Requests are built by ``pymilvus.client.prepare.Prepare`` (what the real client sends);
responses are read back by pymilvus's own code: its ``GrpcHandler`` (insert, upsert,
delete, search, query, describe) runs over a stub that answers with the converters and a
real embedded ``gpuvec.MilvusClient`` (:class:`Wire`, a test harness). The rows, hits and
schemas pymilvus then shows must equal what the embedded client returns directly.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pymilvus import DataType as PDT
from pymilvus import MilvusClient as PyClient
from pymilvus.client.grpc_handler import GrpcHandler
from pymilvus.client.prepare import Prepare
from pymilvus.client.search_result import SearchResult
from pymilvus.client.ts_utils import construct_guarantee_ts
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import DataError, InvalidArgumentError, NotSupportedYetError, SchemaError
from gpuvec.expr.errors import FilterError
from gpuvec.schema import CollectionSchema
from gpuvec.server.convert import (
    default_from_proto,
    field_data_from_rows,
    parse_delete_request,
    parse_query_request,
    parse_search_request,
    query_result_to_proto,
    rows_from_field_data,
    schema_from_proto,
    schema_to_proto,
    search_result_to_proto,
    template_values,
)

DIM = 4
ENDPOINT = "127.0.0.1:19530"


def add_fields(s: Any) -> Any:
    """The same fields on a pymilvus or a gpuvec schema (both take pymilvus's arguments)."""
    s.add_field("id", PDT.INT64, is_primary=True)
    s.add_field("vec", PDT.FLOAT_VECTOR, dim=DIM)
    s.add_field("b", PDT.BOOL)
    s.add_field("i8", PDT.INT8)
    s.add_field("i16", PDT.INT16, description="sixteen")
    s.add_field("i32", PDT.INT32, nullable=True)
    s.add_field("i64", PDT.INT64, default_value=7)
    s.add_field("f", PDT.FLOAT, default_value=1.5)
    s.add_field("d", PDT.DOUBLE, nullable=True, default_value=2.25)
    s.add_field("s", PDT.VARCHAR, max_length=32, nullable=True)
    s.add_field("tag", PDT.VARCHAR, max_length=16, default_value="dflt", mmap_enabled=True)
    s.add_field("j", PDT.JSON, nullable=True)
    s.add_field("ai", PDT.ARRAY, element_type=PDT.INT64, max_capacity=8)
    s.add_field(
        "astr", PDT.ARRAY, element_type=PDT.VARCHAR, max_capacity=4, max_length=8, nullable=True
    )
    return s


def py_schema() -> Any:
    return add_fields(PyClient.create_schema(enable_dynamic_field=True, description="all"))


def gv_schema() -> CollectionSchema:
    return add_fields(MilvusClient.create_schema(enable_dynamic_field=True, description="all"))


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    vecs = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    rows = []
    for k in range(n):
        i = start + k
        row: dict[str, Any] = {"id": i, "vec": vecs[k].tolist(), "b": i % 2 == 0}
        row.update(i8=i % 100 - 50, i16=3 * i, ai=list(range(i % 4)))
        if i % 3 == 1:
            row["i32"] = i
        elif i % 3 == 2:
            row["i32"] = None
        if i % 4 == 0:
            row["i64"] = 10 * i
        if i % 2:
            row["f"] = i / 4
        row["d"] = None if i % 5 == 0 else i / 8
        row["s"] = None if i % 6 == 0 else f"s{i}"
        if i % 5 != 1:
            row["tag"] = f"t{i % 3}"
        row["j"] = [None, {"k": i, "arr": ["x", i]}, [1, 2.5], '"text"', None][i % 5]
        row["astr"] = None if i % 4 == 3 else ["a", f"b{i % 10}"][: i % 3]
        if i % 2 == 0:
            row["color"] = f"c{i % 3}"
        if i % 3 == 0:
            row["score"] = i * 0.5
        rows.append(row)
    return rows


class Unary:
    """A stub's RPC: callable, and with ``.future()`` as gRPC's stubs have it."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, request: Any, **_: Any) -> Any:
        return self.fn(request)

    def future(self, request: Any, **_: Any) -> Any:
        response = self.fn(request)
        return SimpleNamespace(result=lambda: response)


class Wire:
    """A stub with the data RPCs of a Milvus server, built from the converters over an
    embedded client: pymilvus's GrpcHandler talks to it instead of a gRPC channel."""

    def __init__(self, client: MilvusClient) -> None:
        self.client = client
        self.requests: list[Any] = []
        self.Delete = Unary(self.Delete)  # type: ignore[method-assign]

    def schema(self, name: str) -> CollectionSchema:
        return self.client._engine.get(name).schema

    def DescribeCollection(self, request: Any, **_: Any) -> Any:
        name = request.collection_name
        info = self.client.describe_collection(name)
        return milvus_pb2.DescribeCollectionResponse(
            status=common_pb2.Status(),
            schema=schema_to_proto(self.schema(name), name, info["description"]),
            collectionID=info["collection_id"],
            collection_name=name,
            shards_num=info["num_shards"],
            num_partitions=info["num_partitions"],
            consistency_level=2,
        )

    def _mutation(self, name: str, res: dict[str, Any], **counts: int) -> Any:
        out = milvus_pb2.MutationResult(status=common_pb2.Status(), timestamp=res["timestamp"])
        ids = res.get("ids", [])
        if ids and isinstance(ids[0], str):
            out.IDs.str_id.data.extend(ids)
        else:
            out.IDs.int_id.data.extend(ids)
        for key, value in counts.items():
            setattr(out, key, value)
        return out

    def Insert(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        name = request.collection_name
        rows = rows_from_field_data(request.fields_data, request.num_rows, self.schema(name))
        res = self.client.insert(name, rows, partition_name=request.partition_name)
        return self._mutation(name, res, insert_cnt=res["insert_count"])

    def Upsert(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        name = request.collection_name
        rows = rows_from_field_data(request.fields_data, request.num_rows, self.schema(name))
        res = self.client.upsert(name, rows, partition_name=request.partition_name)
        return self._mutation(name, res, upsert_cnt=res["upsert_count"])

    def Delete(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        args = parse_delete_request(request, self.schema(request.collection_name))
        res = self.client.delete(**args.kwargs())
        res.setdefault("timestamp", 0)
        return self._mutation(request.collection_name, res, delete_cnt=res["delete_count"])

    def Search(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        args = parse_search_request(request)
        hits = self.client.search(**args.kwargs())
        schema = self.schema(args.collection_name)
        data = search_result_to_proto(
            hits, schema, args.output_fields, args.nq, args.limit, args.round_decimal
        )
        return milvus_pb2.SearchResults(status=common_pb2.Status(), results=data)

    def Query(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        schema = self.schema(request.collection_name)
        args = parse_query_request(request, schema)
        rows = self.client.query(**args.kwargs())
        out = query_result_to_proto(rows, schema, args.output_fields, args.collection_name)
        out.status.CopyFrom(common_pb2.Status())
        return out


@pytest.fixture
def client(tmp_path: Path) -> Iterator[MilvusClient]:
    c = MilvusClient(
        str(tmp_path / "db"), config=Config(dashboard_address="", datanode_processes=False)
    )
    yield c
    c.close()


@pytest.fixture
def wire(client: MilvusClient) -> Wire:
    return Wire(client)


@pytest.fixture
def handler(wire: Wire) -> GrpcHandler:
    h = GrpcHandler(uri=f"http://{ENDPOINT}")
    h._stub = wire
    return h


def create(client: MilvusClient, name: str, schema: CollectionSchema | None = None) -> None:
    index = MilvusClient.prepare_index_params("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema or gv_schema(), index_params=index)


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((dict(r) for r in rows), key=lambda r: r["id"])


def close_vectors(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Rows equal, vectors compared as float32 (pymilvus' lists hold float32 values)."""
    g, w = dict(got), dict(want)
    gv, wv = g.pop("vec", None), w.pop("vec", None)
    return g == w and (gv is None) == (wv is None) and np.array_equal(gv, wv)


# -- schema ---------------------------------------------------------------------------------
def create_request_schema(name: str, schema: Any) -> schema_pb2.CollectionSchema:
    req = Prepare.create_collection_request(name, schema)
    return schema_pb2.CollectionSchema.FromString(req.schema)


def test_schema_from_pymilvus_create_request_equals_the_embedded_schema() -> None:
    got = schema_from_proto(create_request_schema("c", py_schema()))
    want = gv_schema()
    assert got == want
    assert got.field("tag").params == {"max_length": 16, "mmap_enabled": True}
    assert got.field("f").default_value == 1.5 and got.field("tag").default_value == "dflt"
    assert got.field("astr").element_type == PDT.VARCHAR and got.field("s").nullable
    got.validate("c")  # a schema the embedded create_collection accepts


def test_schema_from_proto_auto_id_and_varchar_pk() -> None:
    s = PyClient.create_schema(auto_id=True)
    s.add_field("pk", PDT.INT64, is_primary=True, auto_id=True)
    s.add_field("v", PDT.FLOAT_VECTOR, dim=8)
    s.add_field("cat", PDT.VARCHAR, max_length=8, is_partition_key=True)
    got = schema_from_proto(create_request_schema("c", s))
    assert got.auto_id and got.primary_field.name == "pk" and not got.enable_dynamic_field
    assert got.partition_key_field.name == "cat"
    s2 = PyClient.create_schema()
    s2.add_field("pk", PDT.VARCHAR, is_primary=True, max_length=64)
    s2.add_field("v", PDT.FLOAT_VECTOR, dim=8)
    got2 = schema_from_proto(create_request_schema("c", s2))
    assert got2.primary_field.dtype == PDT.VARCHAR and got2.primary_field.max_length == 64


@pytest.mark.parametrize(
    ("dtype", "kwargs"),
    [
        (PDT.GEOMETRY, {}),
        (PDT.TIMESTAMPTZ, {}),
    ],
)
def test_schema_from_proto_refuses_unsupported_types_naming_the_field(dtype: Any, kwargs) -> None:
    s = PyClient.create_schema()
    s.add_field("pk", PDT.INT64, is_primary=True)
    s.add_field("v", PDT.FLOAT_VECTOR, dim=8)
    s.add_field("odd_field", dtype, **kwargs)
    with pytest.raises(SchemaError, match=r"odd_field.*not supported"):
        schema_from_proto(create_request_schema("c", s))


def test_schema_from_proto_refuses_dynamic_fields_functions_and_bad_arrays() -> None:
    pb = create_request_schema("c", py_schema())
    dyn = schema_pb2.CollectionSchema()
    dyn.CopyFrom(pb)
    dyn.fields.add(name="$meta", data_type=int(PDT.JSON), is_dynamic=True)
    with pytest.raises(SchemaError, match=r"'\$meta'.*dynamic field"):
        schema_from_proto(dyn)
    fn = schema_pb2.CollectionSchema()
    fn.CopyFrom(pb)
    fn.functions.add(name="bm25")
    with pytest.raises(NotSupportedYetError, match="bm25"):
        schema_from_proto(fn)
    arr = schema_pb2.CollectionSchema()
    arr.CopyFrom(pb)
    arr.fields.add(name="aj", data_type=int(PDT.ARRAY), element_type=int(PDT.JSON))
    with pytest.raises(SchemaError, match=r"'aj'.*element type JSON"):
        schema_from_proto(arr)
    bad_dim = schema_pb2.CollectionSchema()
    bad_dim.CopyFrom(pb)
    bad_dim.fields[1].type_params[0].value = "eight"
    with pytest.raises(SchemaError, match=r"'vec'.*dim must be an integer"):
        schema_from_proto(bad_dim)


def test_describe_through_pymilvus_equals_the_embedded_describe(
    client: MilvusClient, handler: GrpcHandler, unique: str
) -> None:
    create(client, unique)
    embedded = client.describe_collection(unique)
    seen = handler.describe_collection(unique)
    assert seen["collection_name"] == unique and seen["enable_dynamic_field"] is True
    assert seen["description"] == embedded["description"] == "all"
    assert seen["auto_id"] is embedded["auto_id"] is False
    assert [f["name"] for f in seen["fields"]] == [f["name"] for f in embedded["fields"]]
    for got, want in zip(seen["fields"], embedded["fields"], strict=True):
        got = dict(got)
        if "default_value" in got:  # pymilvus shows the ValueField message, as with Milvus
            got["default_value"] = default_from_proto(got["name"], got["default_value"])
        assert got == want, got["name"]
    pb = schema_to_proto(client._engine.get(unique).schema, unique)
    assert [f.fieldID for f in pb.fields] == list(range(100, 100 + len(pb.fields)))
    assert {kv.key: kv.value for kv in pb.fields[1].type_params} == {"dim": str(DIM)}
    assert "$meta" not in [f.name for f in pb.fields]  # Milvus's proxy leaves it out
    assert schema_from_proto(pb) == client._engine.get(unique).schema


def test_schema_to_proto_can_include_the_dynamic_field() -> None:
    pb = schema_to_proto(gv_schema(), "c", include_dynamic=True)
    meta = pb.fields[-1]
    assert (meta.name, meta.is_dynamic, meta.data_type) == ("$meta", True, PDT.JSON)
    assert meta.fieldID == 100 + len(gv_schema().fields)


# -- insert / upsert ------------------------------------------------------------------------
def test_insert_through_pymilvus_stores_what_the_embedded_insert_stores(
    client: MilvusClient, handler: GrpcHandler, wire: Wire, unique: str
) -> None:
    direct, remote = unique + "_d", unique + "_w"
    create(client, direct)
    create(client, remote)
    rows = make_rows(30)
    client.insert(direct, rows)
    res = handler.insert_rows(remote, rows)
    assert res.insert_count == 30 and list(res.primary_keys) == list(range(30))
    req = wire.requests[-1]
    sent = {fd.field_name: fd for fd in req.fields_data}
    assert sent["$meta"].is_dynamic and len(sent["i32"].valid_data) == 30
    assert len(sent["i32"].scalars.int_data.data) == 10  # pymilvus sends nullable data compact
    converted = rows_from_field_data(
        req.fields_data, req.num_rows, client._engine.get(remote).schema
    )
    assert converted[0]["i32"] is None and converted[1]["i32"] == 1 and converted[2]["i32"] is None
    assert converted[0]["color"] == "c0" and "color" not in converted[1]
    assert converted[1]["j"] == '{"k":1,"arr":["x",1]}'  # JSON text, as pymilvus encodes it
    assert isinstance(converted[3]["vec"], np.ndarray) and converted[3]["vec"].dtype == np.float32
    everything = {"filter": "id >= 0", "output_fields": ["*"]}
    want = by_id(client.query(direct, **everything))
    got = by_id(client.query(remote, **everything))
    assert len(got) == 30 and got == want
    assert got[5]["i64"] == 7 and got[0]["d"] == 2.25 and got[4]["f"] == 1.5  # defaults


def test_upsert_through_pymilvus_replaces_rows(
    client: MilvusClient, handler: GrpcHandler, unique: str
) -> None:
    create(client, unique)
    handler.insert_rows(unique, make_rows(10))
    new = make_rows(4, start=100)
    for k, row in enumerate(new):
        row["id"] = 2 * k
    res = handler.upsert_rows(unique, new)
    assert res.upsert_count == 4
    got = by_id(client.query(unique, filter="id in [0, 2, 4, 6]", output_fields=["*"]))
    assert [r["i16"] for r in got] == [300, 303, 306, 309]
    assert client.query(unique, filter="", output_fields=["count(*)"]) == [{"count(*)": 10}]


def test_rows_from_field_data_accepts_full_length_nullable_columns() -> None:
    schema = gv_schema()
    fd = schema_pb2.FieldData(type=int(PDT.INT32), field_name="i32", valid_data=[True, False, True])
    fd.scalars.int_data.data.extend([5, 0, 9])
    assert [r["i32"] for r in rows_from_field_data([fd], 3, schema)] == [5, None, 9]
    fd2 = schema_pb2.FieldData(type=int(PDT.INT32), field_name="i32", valid_data=[True, False])
    fd2.scalars.int_data.data.extend([5])
    assert rows_from_field_data([fd2], 0, schema) == [{"i32": 5}, {"i32": None}]


def _column(name: str, dtype: Any, values: list[Any], slot: str = "") -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(type=int(dtype), field_name=name)
    if dtype == PDT.FLOAT_VECTOR:
        fd.vectors.dim = len(values[0])
        fd.vectors.float_vector.data.extend(np.ravel(values).tolist())
    else:
        getattr(fd.scalars, slot).data.extend(values)
    return fd


@pytest.mark.parametrize(
    ("fields", "rows", "match"),
    [
        ([_column("i16", PDT.INT32, [1, 2], "int_data")], 2, "'i16'.*INT32.*INT16"),
        ([_column("i16", PDT.INT16, [1, 2], "long_data")], 2, "'i16'.*int_data.*long_data"),
        ([_column("i16", PDT.INT16, [1, 2, 3], "int_data")], 2, "'i16': 3 values for 2 rows"),
        ([_column("vec", PDT.FLOAT_VECTOR, [[1.0, 2.0]])], 1, "'vec'.*dim 2.*4"),
        ([_column("nope", PDT.INT64, [1], "long_data")], 1, "'nope' does not exist"),
        ([_column("j", PDT.JSON, [b"\xff"], "json_data")], 1, "'j', row 0.*UTF-8"),
        ([_column("$meta", PDT.JSON, [b"[1]"], "json_data")], 1, r"'\$meta', row 0.*object"),
        ([_column("$meta", PDT.JSON, [b'{"i8": 1}'], "json_data")], 1, "'i8' is a field"),
        ([_column("$meta", PDT.JSON, [b"{x"], "json_data")], 1, "row 0: not valid JSON"),
        ([_column("i8", PDT.INT8, [1], "int_data")] * 2, 1, "'i8' is sent more than once"),
    ],
)
def test_rows_from_field_data_errors_name_the_field(fields: list, rows: int, match: str) -> None:
    with pytest.raises(DataError, match=match):
        rows_from_field_data(fields, rows, gv_schema())


def test_rows_from_field_data_refuses_dynamic_data_without_a_dynamic_field() -> None:
    schema = gv_schema()
    schema.enable_dynamic_field = False
    meta = _column("$meta", PDT.JSON, [b"{}"], "json_data")
    meta.is_dynamic = True
    with pytest.raises(DataError, match="dynamic field is not enabled"):
        rows_from_field_data([meta], 1, schema)


def test_rows_from_field_data_checks_num_rows_and_required_fields_first() -> None:
    schema = gv_schema()
    ids = _column("id", PDT.INT64, [1, 2], "long_data")
    with pytest.raises(DataError, match=r"'id': 2 values for 3 rows \(num_rows\)"):
        rows_from_field_data([ids], 3, schema)
    with pytest.raises(DataError, match="no field data"):
        rows_from_field_data([], 2**31, schema)  # no rows are built for a bare num_rows
    with pytest.raises(DataError, match="insert: missing field 'vec'"):
        rows_from_field_data([ids], 2, schema, operation="insert")
    zero = _column("vec", PDT.FLOAT_VECTOR, [[1.0, 2.0, 3.0, 4.0]])
    zero.vectors.dim = 0
    with pytest.raises(DataError, match=r"'vec'.*dim must be positive"):
        rows_from_field_data([zero], 0, schema)
    binary = schema_pb2.FieldData(type=int(PDT.FLOAT_VECTOR), field_name="vec")
    binary.vectors.dim, binary.vectors.binary_vector = DIM, b"\x01"
    with pytest.raises(DataError, match=r"'vec'.*binary_vector"):
        rows_from_field_data([binary], 0, schema)
    deep = _column("$meta", PDT.JSON, [b'{"a":' + b"[" * 100 + b"]" * 100 + b"}"], "json_data")
    deep.is_dynamic = True
    with pytest.raises(DataError, match=r"row 0.*nested deeper than 64"):
        rows_from_field_data([deep], 1, schema)


# -- search ---------------------------------------------------------------------------------
def search_request(name: str, data: Any, **kw: Any) -> milvus_pb2.SearchRequest:
    """What pymilvus's MilvusClient.search → GrpcHandler.search sends."""
    kw["expr_params"] = kw.pop("filter_params", {})
    use_default = construct_guarantee_ts(name, kw, ENDPOINT)
    return Prepare.search_requests_with_expr(
        collection_name=name,
        anns_field=kw.pop("anns_field", None) or "",
        param=kw.pop("search_params", None) or {},
        limit=kw.pop("limit", 10),
        data=data,
        expr=kw.pop("filter", ""),
        partition_names=kw.pop("partition_names", None),
        output_fields=kw.pop("output_fields", None),
        round_decimal=kw.pop("round_decimal", -1),
        use_default_consistency=use_default,
        **kw,
    )


def test_parse_search_request_recovers_the_client_arguments() -> None:
    q = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0]]
    req = search_request(
        "c",
        q,
        filter="i16 > {lo} and s in {names}",
        filter_params={"lo": 3, "names": ["a", "b"]},
        limit=7,
        output_fields=["s", "color"],
        search_params={"metric_type": "L2", "params": {"nprobe": 16}, "offset": 2},
        partition_names=["p1"],
        anns_field="vec",
        consistency_level="Strong",
        round_decimal=3,
    )
    args = parse_search_request(req)
    assert args.data.dtype == np.float32 and np.array_equal(args.data, np.float32(q))
    assert (args.limit, args.offset, args.anns_field, args.round_decimal) == (7, 2, "vec", 3)
    assert args.filter == "i16 > {lo} and s in {names}"
    assert args.filter_params == {"lo": 3, "names": ["a", "b"]}
    assert args.search_params == {"metric_type": "L2", "params": {"nprobe": 16}}
    assert args.output_fields == ["s", "color"] and args.partition_names == ["p1"]
    assert args.consistency_level == "Strong" and not args.use_default_consistency
    kwargs = args.kwargs()
    assert kwargs["filter_params"] == {"lo": 3, "names": ["a", "b"]} and kwargs["offset"] == 2
    assert "round_decimal" not in kwargs and kwargs["consistency_level"] == "Strong"


def test_parse_search_request_defaults_and_range_params() -> None:
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    args = parse_search_request(
        search_request("c", data, search_params={"params": {"radius": 9.5, "range_filter": 1}})
    )
    assert np.array_equal(args.data, data) and args.nq == 2
    assert args.search_params == {"params": {"radius": 9.5, "range_filter": 1}}
    assert (args.limit, args.offset, args.anns_field, args.filter) == (10, 0, None, "")
    assert args.consistency_level is None and args.use_default_consistency
    assert args.kwargs()["output_fields"] is None and args.kwargs()["partition_names"] is None
    top = parse_search_request(search_request("c", data, search_params={"ef": 64, "offset": 1}))
    assert top.search_params == {"params": {"ef": 64}} and top.offset == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"search_params": {"params": {}, "ignore_growing": True}}, "ignore_growing"),
        ({"order_by_fields": [{"field": "i8"}]}, "order_by_fields"),
    ],
)
def test_parse_search_request_refuses_unsupported_features(kw: dict, match: str) -> None:
    with pytest.raises(NotSupportedYetError, match=match):
        parse_search_request(search_request("c", [[1.0, 2.0, 3.0, 4.0]], **kw))


def test_parse_search_request_refuses_other_query_kinds() -> None:
    binary = search_request("c", [b"\x01\x02"])  # raw rows, checked by the client's search
    assert parse_search_request(binary).data == [b"\x01\x02"]
    sparse = search_request("c", [{1: 0.5}])  # one cell per query: (index, value) pairs
    assert parse_search_request(sparse).data == [struct.pack("<If", 1, 0.5)]
    by_ids = Prepare.search_requests_with_expr("c", "vec", {}, 3, ids=[1, 2])
    with pytest.raises(NotSupportedYetError, match="primary keys"):
        parse_search_request(by_ids)
    hybrid = search_request("c", [[1.0, 2.0, 3.0, 4.0]])
    hybrid.sub_reqs.add()
    with pytest.raises(NotSupportedYetError, match="sub_reqs"):
        parse_search_request(hybrid)
    ragged = search_request("c", [[1.0, 2.0, 3.0, 4.0]])
    group = common_pb2.PlaceholderGroup.FromString(ragged.placeholder_group)
    group.placeholders[0].values.append(b"\x00" * 8)
    ragged.placeholder_group = group.SerializeToString()
    with pytest.raises(InvalidArgumentError, match="same number"):
        parse_search_request(ragged)


def test_parse_search_request_refuses_hostile_values() -> None:
    def req(**params: str) -> milvus_pb2.SearchRequest:
        r = search_request("c", [[1.0, 2.0, 3.0, 4.0]])
        r.search_params.extend(common_pb2.KeyValuePair(key=k, value=v) for k, v in params.items())
        return r

    cases = [
        ({"params": "[" * 1000 + "]" * 1000}, "nested deeper than 64"),
        ({"params": '{"nprobe": ' + "9" * 5000 + "}"}, "too many digits"),
        ({"params": '{"nprobe": NaN}'}, "NaN"),
        ({"params": '{"nprobe": "+-5"}'}, "'nprobe'"),
        ({"params": '{"metric_type": [1]}'}, "metric_type must be a string"),
        ({"round_decimal": "400"}, "round_decimal 400"),
        ({"offset": "9" * 5000}, "offset.*out of range"),
    ]
    for params, match in cases:
        with pytest.raises(InvalidArgumentError, match=match):
            parse_search_request(req(**params))
    unknown = search_request("c", [[1.0, 2.0, 3.0, 4.0]])
    group = common_pb2.PlaceholderGroup.FromString(unknown.placeholder_group)
    group.placeholders[0].type = 999
    unknown.placeholder_group = group.SerializeToString()
    with pytest.raises(InvalidArgumentError, match="unknown placeholder type 999"):
        parse_search_request(unknown)
    odd_dsl = search_request("c", [[1.0, 2.0, 3.0, 4.0]])
    odd_dsl.dsl_type = 7
    with pytest.raises(InvalidArgumentError, match="dsl_type"):
        parse_search_request(odd_dsl)


def test_template_values_round_trip_pymilvus_encoding() -> None:
    values = {
        "i": 3,
        "f": 2.5,
        "b": True,
        "s": "x",
        "ints": [1, 2],
        "strs": ["a"],
        "floats": [0.5],
        "nested": [[1, 2], [3]],
        "mixed": [1, 2.5, {"k": 1}],
        "empty": [],
    }
    assert template_values(Prepare.prepare_expression_template(values)) == values


@pytest.mark.parametrize(
    "output_fields",
    [None, ["s", "color"], ["*"], ["$meta", "id"], ["vec", "j", "astr", "i32"]],
)
def test_search_through_pymilvus_sees_the_embedded_hits(
    client: MilvusClient, handler: GrpcHandler, unique: str, output_fields: list | None
) -> None:
    create(client, unique)
    client.insert(unique, make_rows(40))
    q = np.random.default_rng(7).standard_normal((3, DIM)).astype(np.float32)
    kw: dict[str, Any] = {"filter": "i16 >= {lo}", "limit": 5, "output_fields": output_fields}
    want = client.search(unique, q, filter_params={"lo": 6}, **kw)
    seen = handler.search(
        unique, "", {"metric_type": "L2"}, data=q.tolist(), expr_params={"lo": 6}, **_search(kw)
    )
    assert len(seen) == 3
    pk_shown = output_fields is not None and ("*" in output_fields or "id" in output_fields)
    for hits_seen, hits_want in zip(seen, want, strict=True):
        assert hits_seen.ids == [h["id"] for h in hits_want]
        assert np.allclose(hits_seen.distances, [h["distance"] for h in hits_want], rtol=1e-6)
        for hit, w in zip(hits_seen, hits_want, strict=True):
            entity = dict(w["entity"])
            if pk_shown:  # Milvus returns the key among the fields for "*" or its name
                entity["id"] = w["id"]
            assert close_vectors(hit["entity"], entity), (hit, entity)


def _search(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "expression": kw["filter"],
        "limit": kw["limit"],
        "output_fields": kw["output_fields"],
    }


def test_search_result_to_proto_shape_rounding_and_varchar_ids() -> None:
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("pk", PDT.VARCHAR, is_primary=True, max_length=8)
    schema.add_field("vec", PDT.FLOAT_VECTOR, dim=2)
    schema.add_field("n", PDT.INT32, nullable=True)
    hits = [
        [{"id": "a", "distance": 0.123456, "entity": {"n": 1, "k": "x"}}],
        [],
        [
            {"id": "b", "distance": 1.98765, "entity": {"n": None}},
            {"id": "c", "distance": 2.5, "entity": {"n": 3, "k": [1]}},
        ],
    ]
    out = search_result_to_proto(hits, schema, ["n", "k"], 3, 2, round_decimal=2)
    assert (out.num_queries, out.top_k, list(out.topks)) == (3, 2, [1, 0, 2])
    assert list(out.ids.str_id.data) == ["a", "b", "c"] and out.primary_field_name == "pk"
    assert np.allclose(out.scores, [0.12, 1.99, 2.5])
    assert [fd.field_name for fd in out.fields_data] == ["n", "$meta"]
    assert list(out.fields_data[0].valid_data) == [True, False, True]
    parsed = SearchResult(out)
    assert [[h["entity"] for h in q] for q in parsed] == [
        [{"n": 1, "k": "x"}],
        [],
        [{"n": None}, {"n": 3, "k": [1]}],
    ]
    assert parsed[2][0].id == "b" and parsed[2][0]["pk"] == "b"
    empty = search_result_to_proto([[]], schema, None, 1, 5)
    assert list(empty.topks) == [0] and not empty.fields_data and len(SearchResult(empty)[0]) == 0


# -- query ----------------------------------------------------------------------------------
def query_request(name: str, **kw: Any) -> milvus_pb2.QueryRequest:
    """What pymilvus's MilvusClient.query → GrpcHandler.query sends."""
    kw["expr_params"] = kw.pop("filter_params", {})
    use_default = construct_guarantee_ts(name, kw, ENDPOINT)
    output_fields = kw.pop("output_fields", None) or ["*"]
    partitions = kw.pop("partition_names", None)
    expr = kw.pop("filter", "")
    return Prepare.query_request(name, expr, output_fields, partitions, use_default, **kw)


def test_parse_query_request_recovers_the_client_arguments() -> None:
    req = query_request(
        "c",
        filter="i8 in {vals}",
        filter_params={"vals": [1, 2]},
        output_fields=["s", "color"],
        limit=5,
        offset=3,
        partition_names=["p"],
        consistency_level="Eventually",
    )
    args = parse_query_request(req, gv_schema())
    assert (args.filter, args.filter_params) == ("i8 in {vals}", {"vals": [1, 2]})
    assert (args.limit, args.offset, args.output_fields) == (5, 3, ["s", "color"])
    assert args.partition_names == ["p"] and args.consistency_level == "Eventually"
    assert args.kwargs() == {
        "collection_name": "c",
        "filter": "i8 in {vals}",
        "output_fields": ["s", "color"],
        "partition_names": ["p"],
        "limit": 5,
        "offset": 3,
        "consistency_level": "Eventually",
        "filter_params": {"vals": [1, 2]},
    }
    bare = Prepare.query_request("c", "id > 0", [], None)
    plain = parse_query_request(bare, gv_schema())
    assert plain.output_fields == ["id"] and plain.limit is None and plain.consistency_level is None
    it = parse_query_request(
        query_request("c", filter="id > 0", iterator="True", limit=2), gv_schema()
    )
    assert it.iterator and it.limit == 2


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"order_by_fields": "i8:asc"}, NotSupportedYetError, "order_by_fields"),
        ({"group_by_fields": ["s"]}, NotSupportedYetError, "group_by_fields"),
        ({"ignore_growing": True}, NotSupportedYetError, "ignore_growing"),
        ({"query_iter_last_pk": 5}, NotSupportedYetError, "element-level"),
        ({"limit": "many"}, InvalidArgumentError, "limit: 'many' is not an integer"),
    ],
)
def test_parse_query_request_refuses_what_it_cannot_serve(
    kw: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_query_request(query_request("c", filter="id > 0", **kw), gv_schema())


@pytest.mark.parametrize(
    ("output_fields", "filter"),
    [
        (["*"], "id >= 0"),
        (["s", "color", "ai"], "i16 < {hi}"),
        (["$meta"], "id in [1, 2, 3]"),
        (["vec", "j", "astr", "b", "f", "d", "tag"], "id < 12"),
        (["id"], "id > 1000"),
    ],
)
def test_query_through_pymilvus_sees_the_embedded_rows(
    client: MilvusClient, handler: GrpcHandler, unique: str, output_fields: list, filter: str
) -> None:
    create(client, unique)
    client.insert(unique, make_rows(25))
    want = by_id(client.query(unique, filter, output_fields, filter_params={"hi": 30}))
    seen = handler.query(unique, filter, output_fields, expr_params={"hi": 30})
    got = by_id(seen)
    assert len(got) == len(want)
    assert all(close_vectors(g, w) for g, w in zip(got, want, strict=True)), (got, want)


def test_query_count_limit_offset_and_ids_through_pymilvus(
    client: MilvusClient, handler: GrpcHandler, unique: str
) -> None:
    create(client, unique)
    client.insert(unique, make_rows(25))
    assert list(handler.query(unique, "", ["count(*)"])) == [{"count(*)": 25}]
    assert list(handler.query(unique, "i16 > 30", ["count(*)"])) == [{"count(*)": 14}]
    page = handler.query(unique, "id >= 0", ["i16"], limit=4, offset=3)
    assert list(page) == client.query(unique, "id >= 0", ["i16"], limit=4, offset=3)
    assert [r["id"] for r in page] == [3, 4, 5, 6]
    rows = field_data_from_rows([{"count(*)": 9}], gv_schema(), ["count(*)"])
    assert rows[0].field_name == "count(*)" and list(rows[0].scalars.long_data.data) == [9]


def test_query_result_of_no_rows_keeps_one_column_per_field() -> None:
    out = query_result_to_proto([], gv_schema(), ["vec", "s", "color"])
    assert [fd.field_name for fd in out.fields_data] == ["id", "vec", "s", "$meta"]
    assert out.fields_data[1].vectors.dim == DIM
    assert list(out.output_fields) == ["vec", "s", "color"] and out.primary_field_name == "id"


# -- delete ---------------------------------------------------------------------------------
def delete_request(expr: str, **kw: Any) -> milvus_pb2.DeleteRequest:
    return Prepare.delete_request("c", expr, kw.pop("partition_name", None), 0, **kw)


def varchar_schema() -> CollectionSchema:
    s = MilvusClient.create_schema()
    s.add_field("pk", PDT.VARCHAR, is_primary=True, max_length=16)
    s.add_field("vec", PDT.FLOAT_VECTOR, dim=2)
    return s


def test_parse_delete_request_turns_primary_key_lists_into_ids() -> None:
    schema = gv_schema()
    assert parse_delete_request(delete_request("id in [1,2,3]"), schema).ids == [1, 2, 3]
    assert parse_delete_request(delete_request(" id in [ -4 , 5 ] "), schema).ids == [-4, 5]
    tmpl = delete_request("id in {keys}", expr_params={"keys": [7, 8]})
    args = parse_delete_request(tmpl, schema)
    assert args.ids == [7, 8] and args.filter is None
    assert args.kwargs() == {"collection_name": "c", "partition_name": None, "ids": [7, 8]}
    vs = varchar_schema()
    quoted = delete_request("""pk in ['a','b,c',"d"]""", partition_name="p")
    args = parse_delete_request(quoted, vs)
    assert args.ids == ["a", "b,c", "d"] and args.partition_name == "p"


@pytest.mark.parametrize(
    "expr",
    ["id in [1, 2] or i8 > 3", "i8 in [1, 2]", "id not in [1]", "id in [1] and i8 > 0"],
)
def test_parse_delete_request_keeps_other_expressions_as_filters(expr: str) -> None:
    args = parse_delete_request(delete_request(expr, expr_params={"x": 1}), gv_schema())
    assert args.ids is None and args.filter == expr and args.filter_params == {"x": 1}
    assert args.kwargs()["filter"] == expr


def test_parse_delete_request_refuses_keys_past_int64() -> None:
    with pytest.raises(FilterError, match="int64 range"):
        parse_delete_request(delete_request("id in [" + "9" * 5000 + "]"), gv_schema())


def test_parse_delete_request_reads_keys_as_the_filter_language_does() -> None:
    """The key fast path and a query of the same expression must mean the same rows."""
    schema = gv_schema()
    assert parse_delete_request(delete_request("id in [010, 0x10]"), schema).ids == [8, 16]
    assert parse_delete_request(delete_request("id == 7"), schema).ids == [7]
    for bad in ("id in [1,\u30002]", "id in [٣]", "id in [1.5]", "id in ['a']"):
        with pytest.raises(FilterError):
            parse_delete_request(delete_request(bad), schema)


def test_delete_through_pymilvus(client: MilvusClient, handler: GrpcHandler, unique: str) -> None:
    create(client, unique)
    client.insert(unique, make_rows(20))
    by_keys = handler.delete(unique, "id in [1,2,3,99]")
    assert by_keys.delete_count == 4  # Milvus's simple delete counts every listed key
    by_filter = handler.delete(unique, "i16 >= {lo}", expr_params={"lo": 45})
    assert by_filter.delete_count == 5
    left = client.query(unique, "id >= 0", ["id"])
    assert sorted(r["id"] for r in left) == [0, *range(4, 15)]


def test_dynamic_values_survive_json_packing() -> None:
    schema = gv_schema()
    rows = [{"id": 1, "color": "ü", "n": {"a": [1, None]}}, {"id": 2}]
    cols = field_data_from_rows(rows, schema, ["$meta"])
    meta = cols[-1]
    assert meta.is_dynamic and meta.field_name == "$meta"
    assert [json.loads(b) for b in meta.scalars.json_data.data] == [
        {"color": "ü", "n": {"a": [1, None]}},
        {},
    ]
    named = field_data_from_rows(rows, schema, ["color", "missing"])  # only the named keys
    assert [fd.field_name for fd in named] == ["id", "$meta"]
    assert [json.loads(b) for b in named[-1].scalars.json_data.data] == [{"color": "ü"}, {}]


def test_parse_search_request_passes_grouping() -> None:
    req = search_request("c", [[1.0, 2.0, 3.0, 4.0]], group_by_field="s", group_size=3,
                         strict_group_size=True)  # fmt: skip
    kwargs = parse_search_request(req).kwargs()
    assert (kwargs["group_by_field"], kwargs["group_size"], kwargs["strict_group_size"]) == (
        "s", 3, True)  # fmt: skip
    plain = parse_search_request(search_request("c", [[1.0, 2.0, 3.0, 4.0]])).kwargs()
    assert "group_by_field" not in plain
