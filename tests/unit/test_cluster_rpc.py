"""Cluster RPC (gpuvec.cluster.rpc) and the wire forms roles exchange (gpuvec.cluster.wire)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from gpuvec import errors
from gpuvec.cluster.rpc import (
    ClientPool,
    RpcClient,
    RpcServer,
    Tables,
    decode,
    encode,
    last_server_seconds,
)
from gpuvec.cluster.wire import (
    array_table,
    dump_compare,
    dump_op,
    dump_result,
    load_compare,
    load_op,
    load_result,
    table_array,
)
from gpuvec.errors import (
    CollectionNotFoundError,
    GpuvecError,
    InvalidArgumentError,
    NotFoundError,
    NotLeaderError,
    NotOwnerError,
    UnavailableError,
)
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    Get,
    KeyValue,
    Put,
    TxnResult,
)

NON_UTF8 = b"\xff\xfe\x00\x80binary\xc3"


def _vectors(n: int, dim: int) -> pa.Table:
    flat = pa.array(np.arange(n * dim, dtype=np.float32))
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def _strings() -> pa.Table:
    return pa.table(
        {"name": ["a", "", "ünïcødé 中文", None], "n": pa.array([1, 2, 3, 4], pa.int32())}
    )


def _empty() -> pa.Table:
    schema = pa.schema([("pk", pa.int64()), ("score", pa.float32())])
    return schema.empty_table()


# --- frames --------------------------------------------------------------------------------
ARGS = {
    "collection": "c1",
    "limit": 10,
    "big": 2**62,
    "neg": -7,
    "ratio": 0.25,
    "flag": True,
    "none": None,
    "nested": {"list": [1, "two", [3.5, None]], "empty": {}},
    "text": 'ünïcødé "quoted" {braces} \\ back\nslash',
}


def test_frame_without_tables() -> None:
    args, tables = decode(encode(ARGS))
    assert args == ARGS
    assert tables == {}


def test_frame_with_empty_args() -> None:
    assert decode(encode({})) == ({}, {})


def test_frame_with_one_table() -> None:
    t = _vectors(5, 4)
    args, tables = decode(encode({"k": 1}, {"hits": t}))
    assert args == {"k": 1}
    assert list(tables) == ["hits"]
    assert tables["hits"].schema == t.schema
    assert tables["hits"].equals(t)
    assert pa.types.is_fixed_size_list(tables["hits"].schema.field("vec").type)


def test_frame_with_three_tables_of_different_schemas() -> None:
    sent = {"vectors": _vectors(3, 8), "strings": _strings(), "empty": _empty()}
    body = encode(ARGS, sent)
    # decode accepts an Arrow buffer as well as bytes
    for raw in (body, pa.py_buffer(body)):
        args, got = decode(raw)
        assert args == ARGS
        assert list(got) == ["vectors", "strings", "empty"]  # order kept
        for name, t in sent.items():
            assert got[name].schema == t.schema, name
            assert got[name].equals(t), name
        assert got["empty"].num_rows == 0
        assert got["strings"].column("name").to_pylist() == ["a", "", "ünïcødé 中文", None]


# --- a live server ---------------------------------------------------------------------------
def _echo(args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    return {"echo": args}, tables


def _double(args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    t = tables["x"]
    doubled = pa.table({"x": pa.array(t.column("x").to_numpy() * 2)})
    return {"who": args["who"], "n": args["n"] * 2}, {"x": doubled}


def _raise(args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    cls = getattr(errors, args["cls"])
    if "code" in args:
        raise cls(args["message"], code=args["code"])
    raise cls(args["message"])


def _crash(args: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    raise ZeroDivisionError("secret divisor")


HANDLERS = {"echo": _echo, "double": _double, "raise": _raise, "crash": _crash}


@pytest.fixture(scope="module")
def server() -> Iterator[RpcServer]:
    srv = RpcServer(HANDLERS)
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: RpcServer) -> Iterator[RpcClient]:
    c = RpcClient(server.address(), timeout=10)
    yield c
    c.close()


def test_server_address(server: RpcServer) -> None:
    assert server.port > 0
    assert server.address() == f"127.0.0.1:{server.port}"
    assert server.address("node-7.svc") == f"node-7.svc:{server.port}"


def test_call_round_trips_args_and_tables(client: RpcClient) -> None:
    sent = {"vectors": _vectors(4, 16), "strings": _strings(), "empty": _empty()}
    args, tables = client.call("echo", ARGS, sent)
    assert args == {"echo": ARGS}
    assert 0 < last_server_seconds() < 30  # the node's own time on the call, in its frame
    assert list(tables) == list(sent)
    for name, t in sent.items():
        assert tables[name].equals(t), name


def test_call_without_args(client: RpcClient) -> None:
    assert client.call("echo") == ({"echo": {}}, {})


@pytest.mark.parametrize(
    "cls, message",
    [
        (CollectionNotFoundError, "collection 'books' not found in database 'default'"),
        (NotOwnerError, "node sn-1 does not own channel 'gpuvec-dml-0'"),
        (NotLeaderError, "coordinator lost leadership at revision 42"),
        (InvalidArgumentError, 'bad "quoted" value \\ ünïcødé'),
        (NotFoundError, "segment 17 not found"),
        (GpuvecError, "plain"),
    ],
)
def test_gpuvec_error_keeps_class_message_and_code(
    client: RpcClient, cls: type[GpuvecError], message: str
) -> None:
    with pytest.raises(GpuvecError) as info:
        client.call("raise", {"cls": cls.__name__, "message": message})
    assert type(info.value) is cls
    assert info.value.message == message
    assert str(info.value) == message
    assert info.value.code == cls.code


def test_gpuvec_error_keeps_explicit_code(client: RpcClient) -> None:
    with pytest.raises(NotOwnerError) as info:
        client.call("raise", {"cls": "NotOwnerError", "message": "moved", "code": 4321})
    assert type(info.value) is NotOwnerError
    assert info.value.code == 4321
    assert info.value.message == "moved"


def test_gpuvec_error_message_with_braces_keeps_class(client: RpcClient) -> None:
    message = "bad index params {'nlist': 0}"
    with pytest.raises(GpuvecError) as info:
        client.call("raise", {"cls": "InvalidArgumentError", "message": message})
    assert type(info.value) is InvalidArgumentError
    assert info.value.message == message


def test_unexpected_exception_becomes_gpuvec_error_naming_method(client: RpcClient) -> None:
    with pytest.raises(GpuvecError) as info:
        client.call("crash", {"x": 1})
    assert type(info.value) is GpuvecError
    assert "crash" in info.value.message
    assert "ZeroDivisionError" in info.value.message
    assert "secret divisor" in info.value.message


def test_unknown_method_is_gpuvec_error_naming_it(client: RpcClient) -> None:
    with pytest.raises(GpuvecError) as info:
        client.call("no_such_method", {})
    assert type(info.value) is GpuvecError
    assert "no_such_method" in info.value.message


def test_stopped_server_is_unavailable_naming_address() -> None:
    srv = RpcServer({"echo": _echo})
    address = srv.address()
    c = RpcClient(address, timeout=2)
    try:
        assert c.call("echo", {"a": 1}) == ({"echo": {"a": 1}}, {})
        srv.stop()
        start = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            c.call("echo", {"a": 1}, timeout=1)
        assert time.monotonic() - start < 5
        assert address in info.value.message
        assert "echo" in info.value.message
    finally:
        c.close()


def test_concurrent_calls_get_their_own_answers(server: RpcServer) -> None:
    c = RpcClient(server.address(), timeout=10)
    threads, calls = 8, 25
    barrier = threading.Barrier(threads)
    failures: list[str] = []

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(calls):
            n = w * 1000 + i
            x = np.arange(n, n + 50, dtype=np.int64)
            try:
                args, tables = c.call("double", {"who": w, "n": n}, {"x": pa.table({"x": x})})
                assert args == {"who": w, "n": 2 * n}, args
                assert np.array_equal(tables["x"].column("x").to_numpy(), x * 2)
            except Exception as e:  # collected: asserts in threads would be lost
                failures.append(f"worker {w} call {i}: {e!r}")

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    c.close()
    assert not any(t.is_alive() for t in pool)
    assert failures == []


def test_client_pool_reuses_and_drops(server: RpcServer) -> None:
    pool = ClientPool(timeout=7)
    address = server.address()
    try:
        first = pool.get(address)
        assert pool.get(address) is first
        assert first.address == address
        assert first.timeout == 7
        other = pool.get("127.0.0.1:1")
        assert other is not first
        assert other.address == "127.0.0.1:1"

        pool.drop(address)
        fresh = pool.get(address)
        assert fresh is not first
        assert pool.get(address) is fresh
        assert fresh.call("echo", {"v": 1}) == ({"echo": {"v": 1}}, {})

        pool.drop("never-seen:9")  # no-op
        pool.close()
        assert pool.get(address) is not fresh  # close() forgot every client
    finally:
        pool.close()


# --- wire: meta transactions ----------------------------------------------------------------
def _via_json(d: dict[str, Any]) -> dict[str, Any]:
    """What the other side sees: the dump must survive a JSON round trip."""
    return json.loads(json.dumps(d))


@pytest.mark.parametrize(
    "compare",
    [
        Compare("a/key", "value", "==", NON_UTF8),
        Compare("a/key", "value", "!=", b""),
        Compare("k", "version", "==", 0),
        Compare("k", "mod_revision", "<", 123456789012),
        Compare("k", "create_revision", ">", -1),
        Compare("k", "lease", "==", 7),
    ],
)
def test_compare_round_trip(compare: Compare) -> None:
    back = load_compare(_via_json(dump_compare(compare)))
    assert back == compare
    assert type(back.value) is type(compare.value)


@pytest.mark.parametrize(
    "op",
    [
        Put("cluster/channels/ch-0", b"sn-1"),
        Put("k", NON_UTF8, 0),
        Put("k", b"", 987654321),
        Delete("cluster/segments/1/2"),
        DeletePrefix("cluster/segments/1/"),
        Get("ünïcødé/key"),
    ],
)
def test_op_round_trip(op: Any) -> None:
    back = load_op(_via_json(dump_op(op)))
    assert back == op
    assert type(back) is type(op)


def test_dump_op_refuses_non_ops() -> None:
    with pytest.raises(TypeError):
        dump_op(Compare("k", "version", "==", 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_op({"frobnicate": "k"})


@pytest.mark.parametrize(
    "result",
    [
        TxnResult(True, 17, []),
        TxnResult(False, 3),
        TxnResult(
            True,
            99,
            [
                KeyValue("a", NON_UTF8, 5, 9, 3, 0),
                None,
                KeyValue("b/ünï", b"", 1, 1, 1, 424242),
                None,
            ],
        ),
    ],
)
def test_txn_result_round_trip(result: TxnResult) -> None:
    back = load_result(_via_json(dump_result(result)))
    assert back == result
    assert [type(r) for r in back.responses] == [type(r) for r in result.responses]


# --- wire: numpy arrays as Arrow columns -----------------------------------------------------
def _through_frame(t: pa.Table) -> pa.Table:
    return decode(encode({}, {"t": t}))[1]["t"]


def test_int64_array_round_trip() -> None:
    a = np.array([0, -1, 2**62, 7], dtype=np.int64)
    t = array_table("ids", a)
    assert t.column_names == ["ids"]
    for table in (t, _through_frame(t)):
        back = table_array(table, "ids")
        assert back.dtype == np.int64
        assert np.array_equal(back, a)


@pytest.mark.parametrize("shape", [(6, 4), (1, 128), (0, 3)])
def test_float32_matrix_round_trip(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    t = array_table("vec", a)
    assert pa.types.is_fixed_size_list(t.schema.field("vec").type)
    assert t.schema.field("vec").type.list_size == shape[1]
    for table in (t, _through_frame(t)):
        back = table_array(table, "vec")
        assert back.shape == shape
        assert back.dtype == np.float32
        assert np.array_equal(back, a)


def test_non_contiguous_matrix_round_trip() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]  # a strided view
    back = table_array(array_table("v", a), "v")
    assert back.shape == (4, 3)
    assert np.array_equal(back, a)


def test_object_string_array_round_trip() -> None:
    a = np.array(["a", "", "ünïcødé 中文", "x" * 1000], dtype=object)
    t = array_table("s", a)
    assert pa.types.is_string(t.schema.field("s").type)
    for table in (t, _through_frame(t)):
        back = table_array(table, "s")
        assert back.dtype == object
        assert back.tolist() == a.tolist()


def test_table_array_combines_chunks() -> None:
    t = pa.concat_tables([array_table("x", np.arange(3)), array_table("x", np.arange(3, 5))])
    assert t.column("x").num_chunks == 2
    assert np.array_equal(table_array(t, "x"), np.arange(5))
