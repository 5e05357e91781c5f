"""Hostile requests with known answers: each malformed RPC that once ended in "unexpected"
(65535) now gets its Milvus code and a message naming the culprit, and a request over
``--max-recv-size`` is refused by gRPC before decoding while the server keeps serving."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2
from serve_process import spawn_serve  # type: ignore[import-not-found]

from gpuvec.coord.tso import compose
from gpuvec.errors import DatabaseAlreadyExistsError, InvalidArgumentError, NotSupportedYetError
from gpuvec.server.app import DEFAULT_MAX_RECV_SIZE, Server, ServerOptions, start_server
from gpuvec.server.status import status_of

DIM = 4
DEEP = "[" * 1000 + "]" * 1000
BIG = "9" * 5000
KV = common_pb2.KeyValuePair


def _group(ptype: int = common_pb2.FloatVector) -> bytes:
    group = common_pb2.PlaceholderGroup()
    group.placeholders.add(tag="$0", type=ptype, values=[np.zeros(DIM, "<f4").tobytes()])
    return group.SerializeToString()


def _search(params: dict[str, str], ptype: int = common_pb2.FloatVector, **kw: Any) -> Any:
    pairs = [KV(key=k, value=v) for k, v in {"topk": "3", **params}.items()]
    return milvus_pb2.SearchRequest(
        collection_name="c", placeholder_group=_group(ptype), search_params=pairs, nq=1, **kw
    )


def _column(name: str, dtype: int, values: list[Any], dim: int = DIM) -> schema_pb2.FieldData:
    fd = schema_pb2.FieldData(type=dtype, field_name=name, is_dynamic=name == "$meta")
    if dtype == DataType.FLOAT_VECTOR:
        fd.vectors.dim = dim
        fd.vectors.float_vector.data.extend(values)
    elif dtype == DataType.JSON:
        fd.scalars.json_data.data.extend(values)
    else:
        fd.scalars.long_data.data.extend(values)
    return fd


def _insert(*columns: schema_pb2.FieldData, num_rows: int = 0) -> Any:
    return milvus_pb2.InsertRequest(collection_name="c", fields_data=columns, num_rows=num_rows)


def _in_a_second() -> int:
    return compose(int(time.time() * 1000) + 1000)


def _deep_template() -> schema_pb2.TemplateValue:
    value = schema_pb2.TemplateValue()
    value.array_val.json_data.data.append(DEEP.encode())
    return value


ID, VEC = _column("id", DataType.INT64, [100]), _column("vec", DataType.FLOAT_VECTOR, [0.5] * DIM)
CASES: list[tuple[str, str, Callable[[], Any], int, str]] = [
    ("deep search params", "Search", lambda: _search({"params": DEEP}), 1100, "nested deeper"),
    ("huge int in params", "Search", lambda: _search({"params": f'{{"nprobe": {BIG}}}'}), 1100,
     "too many digits"),
    ("unknown placeholder", "Search", lambda: _search({}, ptype=999), 1100, "placeholder type"),
    ("round_decimal 400", "Search", lambda: _search({"round_decimal": "400"}), 1100,
     "round_decimal"),
    ("future guarantee ts", "Search", lambda: _search({}, guarantee_timestamp=2**63), 1100,
     "guarantee_timestamp"),
    ("guarantee ts 1 s ahead", "Query",  # what pymilvus's iterators send: served, not 65535
     lambda: milvus_pb2.QueryRequest(
         collection_name="c", expr="id >= 0", output_fields=["id"], consistency_level=1,
         use_default_consistency=False, guarantee_timestamp=_in_a_second()),
     0, ""),
    ("unknown dsl_type", "Search", lambda: _search({}, dsl_type=7), 1100, "dsl_type"),
    ("+-5 as nprobe", "Search", lambda: _search({"params": '{"nprobe": "+-5"}'}), 1100, "nprobe"),
    ("deep JSON field", "Insert",
     lambda: _insert(ID, VEC, _column("j", DataType.JSON, [DEEP.encode()])), 1100, "'j'"),
    ("deep dynamic field", "Insert",
     lambda: _insert(ID, VEC, _column("$meta", DataType.JSON, [f'{{"x": {DEEP}}}'.encode()])),
     1100, "$meta"),
    ("columns of different lengths", "Insert",
     lambda: _insert(_column("id", DataType.INT64, [1, 2]), VEC), 1100, "'vec'"),
    ("num_rows disagrees", "Insert", lambda: _insert(ID, VEC, num_rows=5), 1100, "num_rows"),
    ("vector dim 0", "Insert",
     lambda: _insert(_column("vec", DataType.FLOAT_VECTOR, [0.5] * DIM, dim=0), ID), 1100,
     "'vec'"),
    ("vector field missing", "Insert", lambda: _insert(ID, num_rows=2**31), 1100, "num_rows"),
    ("required field missing", "Insert", lambda: _insert(ID), 1100, "missing field 'vec'"),
    ("unknown field type", "Insert",
     lambda: _insert(schema_pb2.FieldData(type=9999, field_name="id"), VEC), 1100, "'id'"),
    ("deep index params", "CreateIndex",
     lambda: milvus_pb2.CreateIndexRequest(
         collection_name="c", field_name="vec", extra_params=[KV(key="params", value=DEEP)]),
     1100, "nested deeper"),
    ("huge nlist", "CreateIndex",
     lambda: milvus_pb2.CreateIndexRequest(
         collection_name="c", field_name="vec",
         extra_params=[KV(key="index_type", value="IVF_FLAT"), KV(key="nlist", value=BIG)]),
     1100, "nlist"),
    ("delete by a 5000-digit key", "Delete",
     lambda: milvus_pb2.DeleteRequest(collection_name="c", expr=f"id in [{BIG}]"), 1100,
     "out of the int64 range"),
    ("unknown consistency level", "CreateCollection",
     lambda: milvus_pb2.CreateCollectionRequest(collection_name="x", consistency_level=99),
     1100, "consistency_level"),
    ("deep filter template", "Query",
     lambda: milvus_pb2.QueryRequest(
         collection_name="c", expr="id in {x}", expr_template_values={"x": _deep_template()}),
     1100, "nested deeper"),
]  # fmt: skip


@pytest.fixture
def stub(server: Server, milvus: MilvusClient) -> Iterator[Any]:
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("j", DataType.JSON, nullable=True)
    index = milvus.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    milvus.create_collection("c", schema=schema, index_params=index, consistency_level="Strong")
    milvus.insert("c", [{"id": i, "vec": [float(i)] * DIM} for i in range(10)])
    with grpc.insecure_channel(server.address) as channel:
        yield milvus_pb2_grpc.MilvusServiceStub(channel)
    assert milvus.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 10


@pytest.mark.parametrize(
    ("what", "method", "make", "code", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_request_gets_its_milvus_code(
    stub: Any, what: str, method: str, make: Callable[[], Any], code: int, needle: str
) -> None:
    resp = getattr(stub, method)(make(), timeout=30)
    status = resp if isinstance(resp, common_pb2.Status) else resp.status
    assert (status.code, needle in status.reason) == (code, True), status.reason


def test_status_codes_of_errors_without_their_own_code() -> None:
    assert status_of(NotSupportedYetError("x")).code == 10  # ErrServiceUnimplemented
    assert status_of(DatabaseAlreadyExistsError("database already exist: d")).code == 1100
    last_resort = status_of(ValueError("boom"), "Search")  # a server bug, never input
    assert last_resort.code == 65535 and "Search: unexpected ValueError" in last_resort.reason


def test_max_recv_size_default_and_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert DEFAULT_MAX_RECV_SIZE == 64 << 20  # Milvus's proxy.grpc.serverMaxRecvSize
    assert ServerOptions().max_recv_size == DEFAULT_MAX_RECV_SIZE
    monkeypatch.setenv("GPUVEC_MAX_RECV_SIZE", "1048576")
    assert ServerOptions().max_recv_size == 1 << 20
    monkeypatch.setenv("GPUVEC_MAX_RECV_SIZE", "lots")
    with pytest.raises(InvalidArgumentError, match="GPUVEC_MAX_RECV_SIZE"):
        ServerOptions()
    for bad in (0, -1, 1 << 31):
        with pytest.raises(InvalidArgumentError, match="max_recv_size"):
            start_server(str(tmp_path / "d"), ServerOptions(port=0, max_recv_size=bad))


def test_oversize_request_is_refused_before_decoding(tmp_path: Path) -> None:
    limit = 1 << 20
    proc, port = spawn_serve(tmp_path / "d", tmp_path / "serve.log", "--max-recv-size", str(limit))
    address = f"127.0.0.1:{port}"
    client = MilvusClient(uri=f"http://{address}", timeout=30)
    try:
        client.create_collection("c", dimension=DIM, consistency_level="Strong")
        with grpc.insecure_channel(address) as channel:
            raw = channel.unary_unary(
                "/milvus.proto.milvus.MilvusService/Insert",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            # garbage would be a decode error (INTERNAL) if it were decoded at all
            with pytest.raises(grpc.RpcError) as err:
                raw(b"\xff" * (2 * limit), timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            big = _insert(
                _column("id", DataType.INT64, list(range(70_000))),
                _column("vector", DataType.FLOAT_VECTOR, [0.25] * (70_000 * DIM)),
            )
            big.collection_name = "c"
            with pytest.raises(grpc.RpcError) as err:
                raw(big.SerializeToString(), timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # nothing of it was applied, and data RPCs work right after
        assert client.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 0
        res = client.insert("c", [{"id": i, "vector": [0.1 * i] * DIM} for i in range(5)])
        assert res["insert_count"] == 5
        rows = client.query("c", filter="id >= 0", output_fields=["id"])
        assert sorted(r["id"] for r in rows) == [0, 1, 2, 3, 4]
        assert proc.poll() is None
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=60)
